import numpy as np

from tfcs3.layers import MixedAttention


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    session = rng.normal(size=(2, 3, 4)).astype(np.float32)
    history = rng.normal(size=(2, 5, 4)).astype(np.float32)
    intent = rng.normal(size=(2, 4)).astype(np.float32)
    session_ids = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    history_ids = np.array([[0, 0, 0, 6, 7], [1, 2, 3, 4, 5]], np.int32)
    return session, session_ids, intent, history, history_ids


def test_masks_make_padded_positions_irrelevant():
    layer = MixedAttention(num_heads=2, ffn_units=8, attention_units=8)
    session, session_ids, intent, history, history_ids = _inputs()
    out = layer((session, session_ids, intent, history, history_ids)).numpy()
    assert out.shape == (2, 8)
    session2, history2 = session.copy(), history.copy()
    session2[0, 0] = 9.0
    history2[0, :3] = -9.0
    np.testing.assert_allclose(
        layer((session2, session_ids, intent, history2, history_ids)).numpy(), out, rtol=1e-5, atol=1e-6
    )


def test_the_intent_token_changes_the_session_interest():
    layer = MixedAttention(num_heads=2, ffn_units=8, attention_units=8)
    session, session_ids, intent, history, history_ids = _inputs(1)
    with_intent = layer((session, session_ids, intent, history, history_ids)).numpy()
    other = layer((session, session_ids, intent + 1.0, history, history_ids)).numpy()
    without = layer((session, session_ids, None, history, history_ids)).numpy()
    assert not np.allclose(with_intent, other) and not np.allclose(with_intent, without)
    assert MixedAttention.from_config(layer.get_config()).ffn_units == 8
