import harness
import numpy as np
import pytest
import tensorflow as tf

from tfcs3.evaluation import evaluate, represent
from tfcs3.export import export_model, raw_requests
from tfcs3.models import InteractionTower, build_model
from tfcs3.training import train

SMALL = dict(embedding_dim=16, hidden_units=[32], num_heads=2, head_dim=8)


@pytest.fixture(scope="module")
def trained_preranking(synthetic_preranking):
    model = build_model("inttower", synthetic_preranking, **SMALL)
    train(model, synthetic_preranking, epochs=6, batch_size=128, learning_rate=1e-2, verbose=0)
    return model


def test_preranking_beats_popularity(synthetic_preranking, trained_preranking):
    data = synthetic_preranking
    ours = evaluate(trained_preranking, data, "test")
    pop = evaluate(build_model("popularity", data), data, "test")
    assert ours["auc"] > 0.6 and ours["auc"] > pop["auc"]


def test_retrieval_with_sum_max_beats_popularity(synthetic_retrieval):
    data = synthetic_retrieval
    model = build_model("inttower_youtubednn", data, **SMALL)
    train(model, data, epochs=8, batch_size=128, learning_rate=1e-2, verbose=0)
    assert (
        evaluate(model, data, "validation")["ndcg@10"]
        > evaluate(build_model("popularity", data), data, "validation")["ndcg@10"]
    )


def test_representations_have_heads_then_hidden_state(synthetic_retrieval):
    model = build_model("inttower", synthetic_retrieval, **SMALL)
    q = represent(model.query_model, harness.head(synthetic_retrieval.test, 3))
    c = represent(model.candidate_model, synthetic_retrieval.catalog)
    layers = len(SMALL["hidden_units"]) + 1
    assert q.shape == (3, layers * 2 * 8 + 16) and c.shape[1] == 2 * 8 + 16
    assert model.score(q, c).shape == (3, synthetic_retrieval.num_items)
    assert model.score_width == layers * 2 * 2


def test_candidate_scoring_export_matches_the_model(tmp_path, synthetic_preranking, trained_preranking):
    data, model = synthetic_preranking, trained_preranking
    path = export_model(model, data, tmp_path, "inttower", index="brute_force", k=5)
    loaded = tf.saved_model.load(str(path))
    request = raw_requests(data, model.query_feature_names, "test", rows=range(4), exclude_earlier=False)
    cands = [list(data.catalog_ids[[0, 3, 9]])] * 4
    scores = loaded.signatures["score_candidates"](
        **{k: tf.constant(v) for k, v in request.items()}, candidate_ids=tf.constant(cands)
    )["scores"].numpy()
    q = represent(model.query_model, harness.head(data.test, 4))
    c = represent(model.candidate_model, data.catalog)
    np.testing.assert_allclose(scores, model.score(q, c).numpy()[:, [0, 3, 9]], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="dot product"):
        export_model(model, data, tmp_path, "inttower", index="scann")


def test_dot_variant_is_a_dot_backbone(synthetic_retrieval):
    model = build_model("inttower_dot", synthetic_retrieval, **SMALL)
    assert model.is_dot and model.score_width == 1
    batch = harness.features(synthetic_retrieval.train, 32)
    assert np.isfinite(float(model.compute_loss(batch, training=True)))


def test_tower_config_round_trip():
    features = [
        {"name": "a", "kind": "categorical", "input_dim": 5},
        {"name": "b", "kind": "categorical", "input_dim": 4},
    ]
    tower = InteractionTower(features, 4, [8], 6, num_heads=2, head_dim=3, side="query")
    inputs = {"a": tf.constant([1, 2]), "b": tf.constant([3, 0])}
    clone = InteractionTower.from_config(tower.get_config())
    tower(inputs), clone(inputs)
    clone.set_weights(tower.get_weights())
    np.testing.assert_allclose(clone(inputs).numpy(), tower(inputs).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="scorer"):
        InteractionTower(features, 4, [8], 6, scorer="cosine")
