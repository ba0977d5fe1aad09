import numpy as np
import tensorflow as tf

from tfcs3.layers import MetaQueryModule


def _module(num_meta=6, dim=5, seed=0):
    tf.random.set_seed(seed)
    mqm = MetaQueryModule(num_meta)
    mqm.build(tf.TensorShape([None, dim]))
    return mqm


def test_query_group_and_hard_query_follow_the_equations():
    mqm = _module()
    q = mqm.meta.numpy()
    group = (q @ q.T) @ q
    np.testing.assert_allclose(mqm.query_group().numpy(), group, rtol=1e-5, atol=1e-7)
    e = np.random.default_rng(0).normal(size=(8, 5)).astype(np.float32)
    index = np.argmax(e @ q.T, axis=1)  # against the raw Q, not Q*
    np.testing.assert_array_equal(mqm.hard_index(e).numpy(), index)
    np.testing.assert_allclose(mqm.hard_query(e).numpy(), group[index], rtol=1e-5, atol=1e-7)
    assert np.abs(mqm.meta.numpy()).max() <= 1 / np.sqrt(5)  # Kaiming-uniform(a = sqrt 5) bound


def test_soft_query_converges_to_the_hard_query_as_tau_goes_to_zero():
    mqm = _module()
    e = tf.constant(np.random.default_rng(1).normal(size=(32, 5)), tf.float32)
    hard = mqm.hard_query(e).numpy()
    taus = (1.0, 0.1, 0.01, 1e-3, 1e-5)
    logits = mqm.assignment_logits(e).numpy()
    # The soft weight on the hard row rises monotonically to 1 as tau falls ...
    top = [tf.nn.softmax(logits / tau).numpy().max(axis=1) for tau in taus]
    assert all(np.all(b >= a - 1e-6) for a, b in zip(top, top[1:], strict=False))
    # ... so the soft query ends at the hard one.
    gaps = [np.abs(mqm.soft_query(e, tau).numpy() - hard).max() for tau in taus]
    assert gaps[0] > 1e-2 and gaps[-1] < 1e-6, gaps
    mqm.temperature.assign(1e-5)
    np.testing.assert_allclose(mqm.query_similarity(e).numpy(), 1.0, atol=1e-5)
    # call: the soft query (current temperature) in training, the hard one otherwise.
    np.testing.assert_allclose(mqm(e, training=True).numpy(), hard, atol=1e-6)
    np.testing.assert_array_equal(mqm(e, training=False).numpy(), hard)


def test_gradients_reach_every_meta_row_through_the_soft_query():
    mqm = _module()
    e = tf.constant(np.random.default_rng(2).normal(size=(16, 5)), tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(mqm(e, training=True)))
    grad = tape.gradient(loss, mqm.meta).numpy()
    assert np.all(np.abs(grad).sum(axis=1) > 0)
    assert not mqm.temperature.trainable


def test_config_round_trip():
    mqm = MetaQueryModule(7, name="m")
    clone = MetaQueryModule.from_config(mqm.get_config())
    assert clone.num_meta == 7 and clone.name == "m"
