import numpy as np
import pytest
import tensorflow as tf

from tfcs3.layers import AllToAllInteraction, sparse_sum


def test_mlp_scores_a_query_token_against_all_item_tokens():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(3, 4, 5)).astype(np.float32)
    v = rng.normal(size=(3, 2, 5)).astype(np.float32)
    layer = AllToAllInteraction([8, 6])
    s = layer((q, v)).numpy()
    assert s.shape == (3, 4)
    # f over the explicit concatenation [z_k ; v_1 ; v_2] with the same weights.
    w1 = np.concatenate([layer.query_kernel.numpy(), layer.item_kernel.numpy()])
    (w2, b2), (wo, bo) = layer.deep[0].get_weights(), layer.out.get_weights()
    for b in range(3):
        for k in range(4):
            x = np.concatenate([q[b, k], v[b].reshape(-1)])
            h = np.maximum(x @ w1 + layer.first_bias.numpy(), 0)
            h = np.maximum(h @ w2 + b2, 0)
            assert s[b, k] == pytest.approx(float(h @ wo[:, 0] + bo[0]), rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("scorer", ["mlp", "attention"])
def test_all_pairs_and_candidate_lists_agree_with_row_pairs(scorer):
    rng = np.random.default_rng(1)
    q = tf.constant(rng.normal(size=(3, 2, 4)), tf.float32)
    items = tf.constant(rng.normal(size=(5, 2, 4)), tf.float32)
    layer = AllToAllInteraction([8], scorer=scorer, num_heads=2)
    full = layer.all_pairs(q, items).numpy()  # [3, 2, 5]
    for i in range(5):
        row = layer((q, tf.repeat(items[i : i + 1], 3, axis=0))).numpy()
        np.testing.assert_allclose(full[:, :, i], row, rtol=1e-4, atol=1e-5)
    lists = layer.candidates(q, tf.gather(items, [[0, 4], [1, 1], [3, 2]])).numpy()
    np.testing.assert_allclose(lists[1, :, 0], full[1, :, 1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lists[2, :, 1], full[2, :, 2], rtol=1e-4, atol=1e-5)


def test_sparse_sum_and_its_leaky_gradient():
    s = tf.Variable([[1.0, -2.0, 0.5]])
    with tf.GradientTape(persistent=True) as tape:
        plain = sparse_sum(s, -0.7)
        leaky = sparse_sum(s, -0.7, leak=0.1)
    assert float(plain[0]) == pytest.approx(0.3) and float(leaky[0]) == pytest.approx(0.3)
    np.testing.assert_allclose(tape.gradient(plain, s).numpy(), [[1, 0, 0]])
    np.testing.assert_allclose(tape.gradient(leaky, s).numpy(), [[1.1, 0.1, 0.1]])


def test_config_round_trip():
    layer = AllToAllInteraction([16, 8], scorer="attention", num_layers=2, num_heads=2, dropout=0.1)
    clone = AllToAllInteraction.from_config(layer.get_config())
    assert (clone.hidden_units, clone.scorer, clone.num_layers, clone.num_heads) == ([16, 8], "attention", 2, 2)
    with pytest.raises(ValueError, match="scorer"):
        AllToAllInteraction(scorer="max")
