import numpy as np
import pytest
import tensorflow as tf

from tfcs3.layers import LightSE, contrastive_interaction_loss, multi_head_sum_max, paired_sum_max


def test_light_se_with_zero_weights_scales_fields_uniformly():
    layer = LightSE(3)
    fields = tf.random.normal([2, 3, 4], seed=0)
    layer(fields)
    layer.set_weights([np.zeros((3, 3), np.float32)])
    np.testing.assert_allclose(layer(fields).numpy(), fields.numpy() * (1 + 1 / 3), rtol=1e-6)


def test_light_se_reweights_fields_and_round_trips():
    layer = LightSE(2)
    fields = tf.constant([[[1.0, 1.0], [3.0, 3.0]]])
    layer(fields)
    layer.set_weights([np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)])  # logits = (z2, 0) = (3, 0)
    a = np.exp([3.0, 0.0]) / np.exp([3.0, 0.0]).sum()
    np.testing.assert_allclose(layer(fields).numpy()[0], [[1 + a[0]] * 2, [3 * (1 + a[1])] * 2], rtol=1e-6)
    assert LightSE.from_config(layer.get_config()).num_fields == 2
    with pytest.raises(ValueError, match="field embeddings"):
        layer(tf.zeros([1, 3, 2]))


def test_sum_max_equals_brute_force():
    rng = np.random.default_rng(0)
    users = rng.normal(size=(3, 6, 4)).astype(np.float32)  # 3 users, M = 6 heads (L=3 x H_u=2)
    items = rng.normal(size=(5, 2, 4)).astype(np.float32)  # 5 items, H_v = 2
    expected = np.zeros((3, 5))
    for b in range(3):
        for n in range(5):
            expected[b, n] = sum(max(users[b, m] @ items[n, h] for h in range(2)) for m in range(6))
    np.testing.assert_allclose(multi_head_sum_max(users, items).numpy(), expected, rtol=1e-5)
    lists = np.stack([items[[0, 4]], items[[2, 2]], items[[1, 3]]])  # [3, C=2, H_v, d]
    paired = paired_sum_max(users, lists).numpy()
    np.testing.assert_allclose(paired, expected[[[0], [1], [2]], [[0, 4], [2, 2], [1, 3]]], rtol=1e-5)


def test_cir_prefers_aligned_pairs_and_ignores_negatives():
    eye = tf.eye(4)
    aligned = float(contrastive_interaction_loss(eye, eye, tf.ones(4)))
    shuffled = float(contrastive_interaction_loss(eye, tf.roll(eye, 1, axis=0), tf.ones(4)))
    assert aligned < 0.01 < shuffled
    only_first = contrastive_interaction_loss(eye, tf.roll(eye, 1, axis=0), tf.constant([1.0, 0, 0, 0]))
    assert float(only_first) == pytest.approx(shuffled, rel=1e-5)  # every row is equally wrong
    user = tf.Variable(tf.random.normal([4, 3], seed=1))
    item = tf.Variable(tf.random.normal([4, 3], seed=2))
    with tf.GradientTape() as tape:
        loss = contrastive_interaction_loss(user, item, tf.ones(4))
    assert all(g is not None for g in tape.gradient(loss, [user, item]))
