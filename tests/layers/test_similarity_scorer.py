import numpy as np
import tensorflow as tf

from tfcs3.layers import LightweightSimilarityScorer, head_similarity


def _numpy_lss(s, layer):
    (wr, br), (wc, bc), (wo, bo) = (d.get_weights() for d in (layer.row, layer.column, layer.out))
    relu = lambda x: np.maximum(x, 0)  # noqa: E731
    out = []
    for m in s.reshape(-1, *s.shape[-2:]):
        r = relu(m @ wr + br)  # [H_u, d_r]
        c = relu(r.T @ wc + bc)  # [d_r, d_c]
        out.append(c.reshape(-1) @ wo[:, 0] + bo[0])
    return np.array(out).reshape(s.shape[:-2])


def test_scorer_computes_row_then_column_layers():
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(2, 3, 4, 6)), rng.normal(size=(2, 3, 5, 6))
    s = head_similarity(tf.constant(users, tf.float32), tf.constant(items, tf.float32)).numpy()
    np.testing.assert_allclose(s, np.einsum("bchp,bcvp->bchv", users, items), rtol=1e-5, atol=1e-5)
    layer = LightweightSimilarityScorer(3, 2)
    out = layer(tf.constant(s)).numpy()
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out, _numpy_lss(s, layer), rtol=1e-5, atol=1e-5)


def test_gradients_flow_to_every_weight_and_to_both_towers():
    rng = np.random.default_rng(1)
    users = tf.Variable(rng.normal(size=(8, 4, 6)), dtype=tf.float32)
    items = tf.Variable(rng.normal(size=(8, 4, 6)), dtype=tf.float32)
    layer = LightweightSimilarityScorer(4, 4)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(head_similarity(users, items)))
    grads = tape.gradient(loss, [users, items, *layer.trainable_variables])
    assert len(layer.trainable_variables) == 6
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)


def test_config_round_trip():
    layer = LightweightSimilarityScorer(3, 5, name="lss")
    clone = LightweightSimilarityScorer.from_config(layer.get_config())
    s = tf.random.normal([2, 4, 4])
    layer(s), clone(s)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(s).numpy(), layer(s).numpy(), rtol=1e-6)
    assert (clone.row_units, clone.column_units) == (3, 5)
