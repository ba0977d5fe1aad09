import numpy as np
import pytest
import tensorflow as tf

from tfcs3.layers import ProductQuantizer, codewords, nearest_codes


def _quantizer(m=2, n=4, d=6, **kwargs):
    pq = ProductQuantizer(m, n, **kwargs)
    pq.build(tf.TensorShape([None, d]))
    return pq


def test_codes_are_the_nearest_codeword_of_each_sub_vector():
    pq = _quantizer()
    rng = np.random.default_rng(0)
    pq.codebook.assign(rng.normal(size=(2, 4, 3)).astype(np.float32))
    z = rng.normal(size=(10, 6)).astype(np.float32)
    codes = pq.encode(z).numpy()
    book = pq.codebook.numpy()
    for m in range(2):
        dist = ((z[:, None, 3 * m : 3 * m + 3] - book[m][None]) ** 2).sum(-1)
        np.testing.assert_array_equal(codes[:, m], dist.argmin(1))
    expected = np.concatenate([book[0][codes[:, 0]], book[1][codes[:, 1]]], 1)
    np.testing.assert_allclose(pq.decode(codes).numpy(), expected)
    # Flat ids enumerate all N^M codes in all_codes order; a quantized vector is its own code.
    ids = pq.code_ids(tf.constant(codes)).numpy()
    np.testing.assert_array_equal(pq.all_codes()[ids], codes)
    np.testing.assert_array_equal(nearest_codes(pq.codebook, codewords(pq.codebook, codes)).numpy(), codes)


def test_straight_through_gradient_and_no_codebook_gradient():
    pq = _quantizer()
    z = tf.Variable(tf.random.normal([5, 6], seed=1))
    w = tf.random.normal([5, 6], seed=2)
    with tf.GradientTape(persistent=True) as tape:
        z_st, codes = pq(z)
        loss = tf.reduce_sum(z_st * w)
    np.testing.assert_allclose(z_st.numpy(), pq.decode(codes).numpy(), atol=1e-6)  # forward: z_q
    np.testing.assert_allclose(tape.gradient(loss, z).numpy(), w.numpy(), atol=1e-6)  # backward: copied
    assert not pq.trainable_weights
    assert tape.gradient(loss, pq.codebook) is None
    # The commitment loss pulls z toward its (fixed) codeword.
    with tf.GradientTape() as tape:
        commit = pq.commitment_loss(z, codes)
    grad = tape.gradient(commit, z).numpy()
    np.testing.assert_allclose(grad, 2 * (z.numpy() - pq.decode(codes).numpy()) / z.numpy().size, atol=1e-6)


def test_ema_update_follows_the_vq_vae_ema_equations():
    pq = _quantizer(decay=0.9, restart_threshold=0.0)
    rng = np.random.default_rng(3)
    pq.ema_count.assign(np.full((2, 4), 2.0, np.float32))
    pq.ema_sum.assign(rng.normal(size=(2, 4, 3)).astype(np.float32))
    count0, sum0 = pq.ema_count.numpy(), pq.ema_sum.numpy()
    z = rng.normal(size=(8, 6)).astype(np.float32)
    codes = pq.encode(z).numpy()
    assert int(pq.update(z, codes)) == 0
    for m in range(2):
        onehot = np.eye(4)[codes[:, m]]
        count = 0.9 * count0[m] + 0.1 * onehot.sum(0)
        total = 0.9 * sum0[m] + 0.1 * onehot.T @ z[:, 3 * m : 3 * m + 3]
        n = count.sum()
        smoothed = (count + 1e-5) / (n + 4 * 1e-5) * n
        np.testing.assert_allclose(pq.ema_count.numpy()[m], count, rtol=1e-5)
        np.testing.assert_allclose(pq.codebook.numpy()[m], total / smoothed[:, None], rtol=1e-4, atol=1e-6)


def test_dead_codes_restart_on_a_collapsed_codebook():
    pq = _quantizer(n=8, restart_threshold=1.0)
    z = tf.random.normal([64, 6], seed=4)
    pq.initialize(z)
    # Collapse: every codeword but the first is far away, so the whole batch uses code 0.
    book = pq.codebook.numpy()
    book[:, 1:] = 100.0
    pq.codebook.assign(book)
    pq.ema_count.assign(np.full((2, 8), 0.5, np.float32))
    codes = pq.encode(z)
    assert np.all(codes.numpy() == 0) and float(pq.perplexity(codes)) == pytest.approx(1.0)
    restarted = int(pq.update(z, codes))
    assert restarted == 2 * 7
    parts = z.numpy().reshape(64, 2, 3)
    for m in range(2):
        for j in range(1, 8):  # restarted rows are sub-vectors of the batch
            assert np.min(np.abs(parts[:, m] - pq.codebook.numpy()[m, j]).sum(1)) < 1e-5
    assert float(pq.perplexity(pq.encode(z))) > 2.0


def test_kmeans_initialisation_finds_the_clusters():
    pq = _quantizer(m=1, n=3, d=2, kmeans_iterations=10)
    centers = np.array([[-5.0, 0.0], [0.0, 5.0], [5.0, 0.0]], np.float32)
    rng = np.random.default_rng(5)
    data = np.concatenate([c + 0.1 * rng.normal(size=(50, 2)) for c in centers]).astype(np.float32)
    tf.random.set_seed(0)
    assert float(pq.initialized) == 0.0
    pq.initialize(tf.constant(data))
    assert float(pq.initialized) == 1.0
    found = pq.codebook.numpy()[0]
    # Each true center has a codeword next to it (k-means from random seeds may need several
    # Lloyd steps but separates well-spread clusters).
    assert max(np.min(np.linalg.norm(found - c, axis=1)) for c in centers) < 0.5


def test_perplexity_and_config():
    pq = _quantizer(m=1, n=4, d=2)
    assert float(pq.perplexity(tf.constant([[0], [1], [2], [3]]))) == pytest.approx(4.0, rel=1e-4)
    clone = ProductQuantizer.from_config(pq.get_config())
    assert (clone.num_codebooks, clone.codebook_size, clone.decay) == (1, 4, pq.decay)
    with pytest.raises(ValueError, match="divisible"):
        _quantizer(m=4, d=6)
