import numpy as np
import pytest
import tensorflow as tf

from tfcs3.retrieval import BruteForceIndex, ScannIndex, ScannOptions, block_top_k, mask_rows


def _clustered(n, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(n // 100, 10), d))
    return (centers[rng.integers(len(centers), size=n)] + 0.5 * rng.normal(size=(n, d))).astype(np.float32)


def test_mask_rows_ignores_negative_padding():
    scores = tf.zeros([2, 4])
    out = mask_rows(scores, tf.constant([[1, -1], [3, 0]])).numpy()
    assert np.isneginf(out[0, 1]) and np.isneginf(out[1, 3]) and np.isneginf(out[1, 0])
    assert np.isfinite(out).sum() == 5


def test_brute_force_is_exact_and_honours_exclusions():
    emb = _clustered(500)
    q = _clustered(7, seed=1)
    index = BruteForceIndex(emb)
    scores, rows = index.search(q, 10, tf.constant([[0, 1]] * 7))
    full = q @ emb.T
    full[:, [0, 1]] = -np.inf
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(rows.numpy(), expected)
    np.testing.assert_allclose(scores.numpy(), np.take_along_axis(full, expected, 1), rtol=1e-5)


@pytest.mark.parametrize("width", [3_200, 2_999])  # blocks by reshape, and by pooling with a shorter last block
def test_block_top_k_is_top_k_ties_and_exclusions_included(width):
    rng = np.random.default_rng(width)
    for _ in range(12):
        scores = tf.constant(rng.integers(0, 20, size=(5, width)).astype(np.float32))  # many ties
        exclude = tf.constant(rng.integers(-1, width, size=(5, int(rng.integers(1, 40)))))
        k = int(rng.integers(1, 300))
        expected = tf.math.top_k(mask_rows(scores, exclude), k)
        values, rows = block_top_k(scores, k, exclude)
        np.testing.assert_array_equal(values.numpy(), expected.values.numpy())
        np.testing.assert_array_equal(rows.numpy(), expected.indices.numpy())  # no row ran out: all finite
        np.testing.assert_array_equal(block_top_k(scores, k)[1].numpy(), tf.math.top_k(scores, k).indices.numpy())
    everything = tf.constant(np.tile(np.arange(width), (5, 1)))
    values, rows = block_top_k(scores, 10, everything)  # nothing left: padding, -1 with -inf
    assert np.isneginf(values.numpy()).all() and (rows.numpy() == -1).all()
    nothing = tf.zeros([5, 0], tf.int64)  # an empty exclusion list
    np.testing.assert_array_equal(block_top_k(scores, 7, nothing)[1].numpy(), tf.math.top_k(scores, 7).indices.numpy())
    small = tf.constant(rng.normal(size=(2, 20)).astype(np.float32))  # narrower than one block
    np.testing.assert_array_equal(block_top_k(small, 5)[1].numpy(), tf.math.top_k(small, 5).indices.numpy())


def test_a_large_catalog_is_searched_by_blocks_with_the_same_answer():
    emb = _clustered(60_000, d=8)
    q = _clustered(6, d=8, seed=3)
    index = BruteForceIndex(emb)
    exclude = tf.constant(np.random.default_rng(0).integers(-1, 60_000, size=(6, 25)))
    scores, rows = index.search(q, 50, exclude)
    full = tf.linalg.matmul(q, emb, transpose_b=True)
    expected = tf.math.top_k(mask_rows(full, exclude), 50)
    np.testing.assert_array_equal(rows.numpy(), expected.indices.numpy())
    np.testing.assert_allclose(scores.numpy(), expected.values.numpy())


def _learned_like(n, d=64, seed=0):
    """Gaussian shaped like trained tfcs3 item embeddings: a large common offset and a fast-decaying
    spectrum (about 97% of the variance in 16 of 64 directions)."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(np.random.default_rng(99).normal(size=(d, d)))[0]
    scales = np.sqrt(0.8 ** np.arange(d))
    offset = np.random.default_rng(98).normal(size=d) * 2.0
    return (offset + (rng.normal(size=(n, d)) * scales) @ basis.T).astype(np.float32)


def test_scann_recall_at_100_on_a_100k_catalog():
    emb = _learned_like(100_000)
    q = _learned_like(200, seed=2)
    exact = BruteForceIndex(emb).search(q, 100)[1].numpy()
    approx = ScannIndex(emb, k=100).search(q, 100)[1].numpy()
    recall = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(exact, approx, strict=True)])
    assert recall >= 0.95


def test_scann_exclusions_are_removed():
    emb = _clustered(2000)
    q = _clustered(4, seed=3)
    index = ScannIndex(emb, k=10)
    _, top = index.search(q, 10)
    _, rows = index.search(q, 10, tf.constant(top.numpy()[:, :3]))
    for kept, banned in zip(rows.numpy(), top.numpy()[:, :3], strict=True):
        assert not set(kept) & set(banned)


def test_scann_defaults_by_catalog_size():
    assert ScannOptions.for_catalog(10_000).num_leaves == 0
    big = ScannOptions.for_catalog(1_000_000)
    assert 512 <= big.num_leaves <= 2048 and big.reorder >= 100
    with pytest.raises(ValueError, match="non-empty"):
        BruteForceIndex(np.zeros((0, 3)))
