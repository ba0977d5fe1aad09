import json

import harness
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfcs3.cs3.ranker import Ranker, cross_pairs, fit_ranker
from tfcs3.data.features import CATEGORICAL, SEQUENCE, Feature, FeatureSpec, Vocabulary
from tfcs3.data.pipeline import LABEL, make_dataset
from tfcs3.evaluation.ranking import auc
from tfcs3.layers.hashed_cross import HashedCrossEmbedding, hashed_cross_ids
from tfcs3.layers.target_attention import TargetAttention

SMALL = dict(embedding_dim=8, hidden_units=(16, 8), cross_buckets=101)


def _data(request, mode):
    return request.getfixturevalue(f"synthetic_{mode}")


@pytest.mark.parametrize("mode", ["preranking", "retrieval"])
@pytest.mark.parametrize("kind", ["dnn", "dcn"])
def test_shapes(request, kind, mode):
    data = _data(request, mode)
    ranker = Ranker(data.spec, kind=kind, mode=mode, **SMALL)
    batch = harness.batch(data.train, 32)
    assert ranker(batch).shape == (32,)
    assert ranker.penultimate(batch).shape == (32, 8)
    assert ranker.output_dim == 8
    loss = ranker.compute_loss(batch)
    assert loss.shape == () and np.isfinite(float(loss))
    # D = d * (plain features + target + one attention pool per sequence + cross pairs)
    plain = len(data.spec.query) - 1 + len(data.spec.candidate) - 1
    assert ranker.input_vector(batch).shape == (32, 8 * (plain + 1 + 1 + len(cross_pairs(data.spec))))


@pytest.mark.parametrize("kind", ["dnn", "dcn"])
def test_gradients_reach_every_weight(synthetic_preranking, kind):
    ranker = Ranker(synthetic_preranking.spec, kind=kind, **SMALL)
    batch = harness.batch(synthetic_preranking.train, 64)
    with tf.GradientTape() as tape:
        loss = ranker.compute_loss(batch, training=True)
    variables = ranker.trainable_variables
    grads = tape.gradient(loss, variables)
    for var, grad in zip(variables, grads, strict=True):
        assert grad is not None, var.name
        assert float(tf.norm(tf.convert_to_tensor(grad))) > 0, var.name
    # The groups the brief names are all among them.
    names = {v.name for v in variables}
    owners = [ranker.item_embedding, ranker.feature_embedding, *ranker.crosses, *ranker.hidden_layers]
    owners += ranker.cross_layers
    assert len(ranker.cross_layers) == (2 if kind == "dcn" else 0)
    for layer in owners:
        assert layer.trainable_variables and all(v.name in names for v in layer.trainable_variables), layer.name


def _attention_numpy(history, ids, target):
    out = np.zeros_like(target)
    for b in range(len(ids)):
        real = ids[b] != 0
        if not real.any():
            continue
        scores = history[b][real] @ target[b] / np.sqrt(target.shape[-1])
        w = np.exp(scores - scores.max())
        out[b] = (w / w.sum()) @ history[b][real]
    return out


def test_target_attention_matches_numpy_and_ignores_padding():
    rng = np.random.default_rng(0)
    history = rng.normal(size=(3, 4, 5)).astype(np.float32)
    target = rng.normal(size=(3, 5)).astype(np.float32)
    ids = np.array([[0, 3, 5, 7], [0, 0, 2, 0], [0, 0, 0, 0]], np.int32)
    out = TargetAttention()((tf.constant(history), tf.constant(ids), tf.constant(target))).numpy()
    np.testing.assert_allclose(out, _attention_numpy(history, ids, target), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out[2], np.zeros(5))
    # Values at padding positions do not matter, however large.
    history[ids == 0] = 1e6
    again = TargetAttention()((tf.constant(history), tf.constant(ids), tf.constant(target))).numpy()
    np.testing.assert_allclose(again, out, rtol=1e-6)


def test_ranker_attention_uses_the_item_table(synthetic_preranking):
    data = synthetic_preranking
    ranker = Ranker(data.spec, kind="dnn", **SMALL)
    batch = harness.batch(data.train, 16)
    history = batch["history"].numpy()
    history[0] = 0  # an all-padding history
    batch["history"] = tf.constant(history)
    x0 = ranker.input_vector(batch).numpy()
    table = ranker.item_embedding.embeddings.numpy()
    target = table[batch["item_id"].numpy()]
    plain = (len(data.spec.query) - 1 + len(data.spec.candidate) - 1) * 8
    np.testing.assert_allclose(x0[:, plain : plain + 8], target, rtol=1e-6)
    expected = _attention_numpy(table[history], history, target)
    np.testing.assert_allclose(x0[:, plain + 8 : plain + 16], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x0[0, plain + 8 : plain + 16], np.zeros(8))
    assert np.isfinite(ranker(batch).numpy()).all()

    # The padding row of the item table never reaches the output.
    before = ranker.penultimate(batch).numpy()
    table[0] = 100.0
    ranker.item_embedding.embeddings.assign(table)
    np.testing.assert_allclose(ranker.penultimate(batch).numpy(), before, rtol=1e-6)


def test_cross_buckets_on_a_tiny_example():
    a = tf.constant([2, 3])
    np.testing.assert_array_equal(hashed_cross_ids(a, tf.constant([4, 6]), 7, 10).numpy(), [8, 7])
    # (2*7+4) % 10, (2*7+0) % 10 | (3*7+6) % 10, (3*7+5) % 10
    multi = tf.constant([[4, 0], [6, 5]])
    np.testing.assert_array_equal(hashed_cross_ids(a, multi, 7, 10).numpy(), [[8, 4], [7, 6]])
    # No collisions when the product fits: the table then has |V_p| * |V_q| rows.
    assert HashedCrossEmbedding("p", "q", "categorical", 3, 7, 1000, 4).table.input_dim == 21
    assert HashedCrossEmbedding("p", "q", "categorical", 3, 7, 10, 4).table.input_dim == 10

    layer = HashedCrossEmbedding("p", "q", "multi", 4, 7, 10, 4)
    out = layer({"p": a, "q": multi}).numpy()
    table = layer.table.embeddings.numpy()
    np.testing.assert_allclose(out[0], table[8], rtol=1e-6)  # the padding entry is left out
    np.testing.assert_allclose(out[1], (table[7] + table[6]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(layer({"p": a, "q": tf.zeros([2, 2], tf.int32)}).numpy(), np.zeros((2, 4)))


def test_layer_configs_round_trip():
    layer = HashedCrossEmbedding("p", "q", "multi", 4, 7, 10, 4, name="pq")
    again = HashedCrossEmbedding.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()
    assert TargetAttention.from_config(TargetAttention(name="att").get_config()).name == "att"


def test_cross_pairs_skip_ids_and_sequences(synthetic_preranking):
    pairs = [(p.name, q.name) for p, q in cross_pairs(synthetic_preranking.spec)]
    assert pairs == [("segment", "category"), ("segment", "tags")]


@pytest.mark.parametrize("with_user", [True, False])
def test_ids_only_spec_has_no_crosses_and_still_works(with_user):
    users = Feature("user_id", CATEGORICAL, Vocabulary(["a", "b", "c"]))
    history = Feature("history", SEQUENCE, None, max_len=3)
    items = Feature("item_id", CATEGORICAL, Vocabulary(["x", "y", "z", "w"]))
    spec = FeatureSpec(query=[users, history] if with_user else [history], candidate=[items])
    batch = {"history": tf.constant([[0, 2, 3], [0, 0, 0], [4, 5, 2]]), "item_id": tf.constant([2, 4, 5])}
    if with_user:
        batch["user_id"] = tf.constant([2, 3, 4])
    for kind in ("dnn", "dcn"):
        for mode in ("preranking", "retrieval"):
            ranker = Ranker(spec, kind=kind, mode=mode, **SMALL)
            assert ranker.cross_feature_pairs == []
            assert ranker.penultimate(batch).shape == (3, 8)
            loss = ranker.compute_loss({**batch, LABEL: tf.constant([1.0, 0.0, 1.0])})
            assert np.isfinite(float(loss))


def test_retrieval_pairs_roll_candidates_and_drop_accidental_hits(synthetic_retrieval):
    ranker = Ranker(synthetic_retrieval.spec, mode="retrieval", num_negatives=2, **SMALL)
    batch = harness.batch(synthetic_retrieval.train, 3)
    items = np.array([5, 7, 5], np.int32)
    batch["item_id"] = tf.constant(items)
    pairs, labels, weights = ranker.retrieval_pairs(batch)
    np.testing.assert_array_equal(pairs["item_id"].numpy(), [5, 7, 5, 5, 5, 7, 7, 5, 5])
    np.testing.assert_array_equal(pairs["user_id"].numpy(), np.tile(batch["user_id"].numpy(), 3))
    np.testing.assert_array_equal(pairs["tags"].numpy()[6:], np.roll(batch["tags"].numpy(), 2, axis=0))
    np.testing.assert_array_equal(labels.numpy(), [1, 1, 1, 0, 0, 0, 0, 0, 0])
    # shift 1: (5 vs 5) hit, (7 vs 5), (5 vs 7); shift 2: (5 vs 7), (7 vs 5), (5 vs 5) hit
    np.testing.assert_array_equal(weights.numpy(), [1, 1, 1, 0, 1, 1, 1, 1, 0])
    # A batch of one has no negatives at all.
    _, _, weights = ranker.retrieval_pairs(harness.batch(synthetic_retrieval.train, 1))
    np.testing.assert_array_equal(weights.numpy(), [1, 0, 0])


def test_preranking_training_beats_chance(synthetic_preranking):
    data = synthetic_preranking
    ranker = Ranker(data.spec, kind="dcn", **SMALL)
    result = fit_ranker(ranker, data, epochs=6, batch_size=128, learning_rate=3e-3, patience=2)
    assert set(result) >= {"best_epoch", "validation_auc", "epochs_run", "train_seconds"}
    assert 1 <= result["best_epoch"] <= result["epochs_run"] <= 6
    assert result["validation_auc"] > 0.65
    test_auc = auc(data.test.labels, ranker.predict(data.test.features, batch_size=1024, verbose=0))
    assert test_auc > 0.65
    # The best epoch's weights were restored: evaluating reproduces the reported AUC.
    val = ranker.evaluate(make_dataset(data.validation, 128), return_dict=True, verbose=0)
    assert abs(val["auc"] - result["validation_auc"]) < 1e-5


def test_retrieval_training_beats_chance(synthetic_retrieval):
    ranker = Ranker(synthetic_retrieval.spec, kind="dnn", mode="retrieval", **SMALL)
    result = fit_ranker(ranker, synthetic_retrieval, epochs=4, batch_size=128, learning_rate=3e-3)
    assert result["validation_auc"] > 0.6
    assert "val_auc" in result["history"]


def test_dropout_only_in_training(synthetic_preranking):
    ranker = Ranker(synthetic_preranking.spec, dropout=0.5, **SMALL)
    batch = harness.batch(synthetic_preranking.train, 16)
    np.testing.assert_array_equal(ranker.penultimate(batch).numpy(), ranker.penultimate(batch).numpy())
    assert not np.allclose(ranker.penultimate(batch, training=True).numpy(), ranker.penultimate(batch).numpy())


def test_config_round_trip(synthetic_preranking):
    spec = synthetic_preranking.spec
    ranker = Ranker(spec, kind="dcn", mode="retrieval", num_cross_layers=3, num_negatives=2, dropout=0.1, **SMALL)
    config = json.loads(json.dumps(ranker.get_config()))
    again = Ranker(spec, **{k: v for k, v in config.items() if k != "spec"})
    restored = Ranker.from_config(config)
    batch = harness.batch(synthetic_preranking.train, 4)
    shapes = []
    for model in (ranker, again, restored):
        model.penultimate(batch)  # builds the weights
        shapes.append([tuple(v.shape) for v in model.weights])
    assert shapes[0] == shapes[1] == shapes[2]
    assert again.get_config() == restored.get_config() == ranker.get_config()
    assert restored.spec.to_json() == spec.to_json()
    assert tf_keras.utils.get_registered_name(Ranker) == "tfcs3>Ranker"


@pytest.mark.parametrize("kind", ["dnn", "dcn"])
def test_weights_round_trip(tmp_path, synthetic_preranking, kind):
    spec = synthetic_preranking.spec
    batch = harness.batch(synthetic_preranking.train, 16)
    tf_keras.utils.set_random_seed(1)
    ranker = Ranker(spec, kind=kind, **SMALL)
    expected = ranker.penultimate(batch).numpy()
    ranker.save_weights(str(tmp_path / "ranker"))
    tf_keras.utils.set_random_seed(2)
    again = Ranker(spec, kind=kind, **SMALL)
    assert not np.allclose(again.penultimate(batch).numpy(), expected)
    again.load_weights(str(tmp_path / "ranker"))
    np.testing.assert_array_equal(again.penultimate(batch).numpy(), expected)


def test_bad_arguments_and_inputs_are_clear_errors(synthetic_preranking, synthetic_retrieval):
    spec = synthetic_preranking.spec
    with pytest.raises(ValueError, match="kind"):
        Ranker(spec, kind="bst")
    with pytest.raises(ValueError, match="mode"):
        Ranker(spec, mode="ranking")
    with pytest.raises(ValueError, match="hidden_units"):
        Ranker(spec, hidden_units=())
    with pytest.raises(ValueError, match="num_cross_layers"):
        Ranker(spec, kind="dcn", num_cross_layers=0)
    ranker = Ranker(spec, **SMALL)
    batch = harness.batch(synthetic_preranking.train, 4)
    for name in ("history", "item_id", "segment", "tags"):
        with pytest.raises(ValueError, match=name):
            ranker({k: v for k, v in batch.items() if k != name})
    with pytest.raises(ValueError, match=LABEL):
        ranker.compute_loss({k: v for k, v in batch.items() if k != LABEL})
    with pytest.raises(ValueError, match="mode"):
        fit_ranker(Ranker(synthetic_retrieval.spec, **SMALL), synthetic_retrieval, epochs=1)


def test_online_pass_takes_activations_before_learning_each_batch(synthetic_preranking):
    """learn_ranker_online: a batch's activations do not depend on that batch's labels (taken
    before the ranker learns it), but do depend on earlier labels (it learns as it goes)."""
    from tfcs3.cs3.ranker import learn_ranker_online

    stream = synthetic_preranking.train.subset(synthetic_preranking.train.time_order())
    bs = 512
    last = (len(stream) - 1) // bs * bs

    def outputs(flip):
        labels = stream.labels.copy()
        labels[flip] = 1.0 - labels[flip]
        flipped = stream.subset(np.arange(len(stream)))
        flipped.labels = labels
        ranker = Ranker(synthetic_preranking.spec, mode="preranking", **SMALL)
        return learn_ranker_online(ranker, flipped, batch_size=bs, seed=3)

    base = outputs(slice(0, 0))
    assert base.shape == (len(stream), 8)
    np.testing.assert_allclose(outputs(slice(last, None))[last:], base[last:], rtol=1e-5, atol=1e-6)
    assert np.abs(outputs(slice(0, last))[last:] - base[last:]).max() > 1e-4


def test_supplied_negatives_replace_rolled_rows(synthetic_retrieval):
    from tfcs3.cs3.ranker import NEGATIVES

    ranker = Ranker(synthetic_retrieval.spec, mode="retrieval", num_negatives=2, **SMALL)
    batch = harness.batch(synthetic_retrieval.train, 8)
    negatives = {NEGATIVES + f.name: tf.concat([batch[f.name]] * 2, axis=0) for f in synthetic_retrieval.spec.candidate}
    negatives[NEGATIVES + "item_id"] = tf.concat([batch["item_id"], tf.roll(batch["item_id"], 1, axis=0)], axis=0)
    pairs, labels, weights = ranker.retrieval_pairs({**batch, **negatives})
    assert pairs["item_id"].shape[0] == 24 and float(tf.reduce_sum(labels)) == 8
    # The first negative block repeats each row's own item: accidental hits, weight 0.
    assert float(tf.reduce_sum(weights[8:16])) == 0 and float(tf.reduce_min(weights[:8])) == 1
