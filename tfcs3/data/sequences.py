"""Behaviour-sequence features: a user's last items split into the current session and the
longer history (T2Diff, after DSIN's session split), and the bucketised time gap between each
history item and the moment of the request."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the data layer runs without importing TensorFlow
    import tensorflow as tf

#: Query feature of the time-gap buckets, aligned with the history (``prepare(history_gaps=True)``).
HISTORY_GAP = "history_gap"
#: Number of time-gap buckets: bucket ``b`` holds gaps of ``2^b - 1`` to ``2^(b+1) - 1`` minutes;
#: the last one everything from about two years on.
GAP_BUCKETS = 21


def gap_buckets(gaps: np.ndarray, num_buckets: int = GAP_BUCKETS) -> np.ndarray:
    """Log-scale bucket of each time gap (seconds, ``>= 0``), int32 in ``[0, num_buckets)``:

        b = min(num_buckets - 1, floor(log2(1 + gap / 60)))

    so bucket 0 is under a minute, 1 under three, ... (T2Diff's time-lag feature, a bucketised
    log time-lag; the bucket edges are this library's choice).
    """
    gaps = np.asarray(gaps, dtype=np.float64)
    if np.any(gaps < 0):
        raise ValueError(f"time gaps must be >= 0 seconds (history before the request); got min {gaps.min()}")
    return np.minimum(num_buckets - 1, np.floor(np.log2(1.0 + gaps / 60.0))).astype(np.int32)


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
