import harness
import numpy as np
import pytest
import tensorflow as tf

from tfcs3.data.protocols import prepare_user_split
from tfcs3.evaluation import evaluate, represent, retrieval_ranks
from tfcs3.export import export_model, raw_requests
from tfcs3.models import AugmentedTower, DATModel, build_model, load_model, save_model
from tfcs3.models.dat import default_category_feature
from tfcs3.training import train

SMALL = dict(embedding_dim=16, hidden_units=[32])


@pytest.fixture(scope="module")
def trained_dat(synthetic_retrieval):
    model = build_model("dat", synthetic_retrieval, **SMALL)
    train(model, synthetic_retrieval, epochs=8, batch_size=128, learning_rate=1e-2, verbose=0)
    return model


def test_dat_beats_popularity(synthetic_retrieval, trained_dat):
    pop = evaluate(build_model("popularity", synthetic_retrieval), synthetic_retrieval, "validation")
    ours = evaluate(trained_dat, synthetic_retrieval, "validation")
    assert ours["ndcg@10"] > pop["ndcg@10"] + 0.02


def test_training_moves_augmented_vectors_towards_the_other_tower(synthetic_retrieval):
    data = synthetic_retrieval
    model = build_model("dat", data, cal_weight=0.0, **SMALL)
    batch = harness.features(data.train, 256)

    def mimic_gap():
        c = model.candidate_model(batch)
        return float(tf.reduce_mean(tf.reduce_sum((model.query_model.augmented(batch) - c) ** 2, -1)))

    before = mimic_gap()
    train(model, data, epochs=3, batch_size=128, learning_rate=1e-2, verbose=0)
    assert mimic_gap() < before


def test_preranking_dat_uses_only_positives(synthetic_preranking):
    model = build_model("dat", synthetic_preranking, cal_weight=0.0, **SMALL)
    batch = harness.features(synthetic_preranking.train, 64)
    batch["label"] = tf.constant(synthetic_preranking.train.labels[:64])
    q, c = model.query_model(batch), model.candidate_model(batch)
    aux = model.auxiliary_loss(batch, q, c, batch["label"])
    no_positives = model.auxiliary_loss(batch, q, c, tf.zeros(64))
    assert float(aux) > 0 and float(no_positives) == 0.0


def test_save_load_and_export_agree(tmp_path, synthetic_retrieval, trained_dat):
    data = synthetic_retrieval
    save_model(trained_dat, tmp_path / "saved", "dat", SMALL)
    again = load_model(tmp_path / "saved", data)
    np.testing.assert_array_equal(retrieval_ranks(again, data, "test"), retrieval_ranks(trained_dat, data, "test"))
    path = export_model(trained_dat, data, tmp_path / "exports", "dat", k=5)
    serving = tf.saved_model.load(str(path)).signatures["query_embedding"]
    request = raw_requests(data, trained_dat.query_feature_names, "test", rows=range(4), exclude_earlier=False)
    exported = serving(**{k: tf.constant(v) for k, v in request.items()})["embedding"].numpy()
    expected = represent(trained_dat.query_model, harness.head(data.test, 4)).numpy()
    np.testing.assert_allclose(exported, expected, rtol=1e-5, atol=1e-6)


def test_augmented_tower_config_round_trip():
    features = [{"name": "user_id", "kind": "categorical", "input_dim": 9}]
    tower = AugmentedTower(features, 4, [8], 4, augment_feature="user_id", augment_input_dim=9)
    clone = AugmentedTower.from_config(tower.get_config())
    inputs = {"user_id": tf.constant([2, 3])}
    tower(inputs), clone(inputs)
    clone.set_weights(tower.get_weights())
    np.testing.assert_allclose(clone(inputs).numpy(), tower(inputs).numpy())


def test_category_feature_default_and_errors(synthetic_retrieval):
    assert default_category_feature(synthetic_retrieval.spec) == "tags"
    with pytest.raises(KeyError, match="nope"):
        DATModel(synthetic_retrieval.spec, category_feature="nope")


def test_models_keyed_by_user_id_refuse_data_without_it(synthetic_raw):
    data = prepare_user_split(synthetic_raw, max_history=10)  # held-out users: no user id
    for name in ("dat", "cs3_youtubednn"):
        with pytest.raises(ValueError, match="user id"):
            build_model(name, data)
    build_model("youtubednn", data)  # a model without per-user state is fine
