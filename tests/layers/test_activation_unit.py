import numpy as np

from tfcs3.layers import ActivationUnitAttention


def _naive(layer, queries, history, ids):
    """Dense over the explicit concatenation [q; x; q - x; q * x], masked softmax, weighted sum."""
    w, b, v, c = (x.numpy() for x in (layer.kernel, layer.bias, layer.score_kernel, layer.score_bias))
    out = np.zeros(queries.shape)
    for i in range(queries.shape[0]):
        real = np.flatnonzero(ids[i])
        for n in range(queries.shape[1]):
            if not len(real):
                continue
            q = queries[i, n]
            a = np.array([np.maximum(np.r_[q, x, q - x, q * x] @ w + b, 0) @ v[:, 0] + c[0] for x in history[i, real]])
            p = np.exp(a - a.max())
            out[i, n] = (p / p.sum()) @ history[i, real]
    return out


def test_matches_the_explicit_activation_unit_and_ignores_padding():
    rng = np.random.default_rng(0)
    queries = rng.normal(size=(3, 4, 5)).astype(np.float32)
    history = rng.normal(size=(3, 6, 5)).astype(np.float32)
    ids = np.array([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [0] * 6], np.int32)
    layer = ActivationUnitAttention(7)
    out = layer((queries, history, ids)).numpy()
    np.testing.assert_allclose(out, _naive(layer, queries, history, ids), rtol=1e-4, atol=1e-5)
    assert np.all(out[2] == 0.0)  # an empty history pools to zero
    changed = history.copy()
    changed[0, :2] = 100.0  # padded positions
    np.testing.assert_array_equal(layer((queries, changed, ids)).numpy(), out)
    # Several queries at once = each query on its own.
    single = layer((queries[:, 1:2], history, ids)).numpy()
    np.testing.assert_allclose(single[:, 0], out[:, 1], rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    layer = ActivationUnitAttention(9, name="att")
    assert ActivationUnitAttention.from_config(layer.get_config()).units == 9
