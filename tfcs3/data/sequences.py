"""Behaviour-sequence features: a user's last items split into the current session and the
longer history (T2Diff, after DSIN's session split)."""

from __future__ import annotations

import tensorflow as tf


def split_session(sequence: tf.Tensor, session_length: int = 10) -> tuple[tf.Tensor, tf.Tensor]:
    """``(session, history)`` of a left-padded, time-ordered sequence ``[B, n, ...]``: the last
    ``k = session_length`` positions (the most recent behaviours) and the ``n - k`` before them.

    Padding stays where it is (id 0 on the left), so ``ids != 0`` is the mask of either part.
    INTERPRETATION (as T2Diff's code): a fixed-size session, not one cut at time gaps.
    """
    n = sequence.shape[1]
    if n is not None and not 0 < session_length < n:
        raise ValueError(f"session_length must be in (0, {n}) for sequences of length {n}, got {session_length}")
    return sequence[:, -session_length:], sequence[:, :-session_length]
