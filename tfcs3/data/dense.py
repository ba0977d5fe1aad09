"""Dense next-item supervision: each position of a user's training sequence predicts the next item.

A retrieval training split holds one row per training interaction, with the user's strictly
earlier items as its left-padded history ``h`` (length ``L``) and the interaction's item as its
target. The rows of one user are consecutive and in time order, so row ``j`` of a user holds the
window ``s_{j-L} .. s_{j-1}`` of the user's sequence ``s`` and targets ``s_j``.

:func:`dense_split` keeps, per user, the last training row and every ``L``-th row before it, and
gives each kept row the feature :data:`NEXT_ITEMS`:

    next[t] = h[t + 1] for t < L - 1,   next[L - 1] = target,   next[t] = 0 (padding) where h[t] = 0

Position ``t`` of a causal encoder reads ``h[0..t]`` and learns to predict ``next[t]`` (the
SASRec / GRU4Rec recipe). Together the kept rows predict each of the user's training items once,
except the first (nothing precedes it). Nothing crosses the protocol's boundary: every item in a
kept row, input or next item, is a training interaction of the row's user, so no validation or
test target (the user's last two interactions) is ever an input or a label.

Example:
    >>> dense = dense_split(data.train, "history", "item_id")
    >>> dense.features["next_items"].shape  # (kept rows, L)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfcs3.data.features import PAD
from tfcs3.data.prepared import Split

#: Feature of a dense-supervision row: the item each history position predicts (0: none).
NEXT_ITEMS = "next_items"


def dense_rows(users: np.ndarray, window: int) -> np.ndarray:
    """Row positions kept for dense supervision: per run of equal ``users`` (one user's rows, in
    time order), the last row and every ``window``-th row before it, except the user's first row
    (its history is empty); in ascending order."""
    if window < 1:
        raise ValueError(f"the history window must be >= 1, got {window}")
    users = np.asarray(users)
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    last = ends - 1
    # distance of each row from its user's last row; keep multiples of the window, not the first row
    owner = np.repeat(np.arange(len(starts)), ends - starts)
    from_end = last[owner] - np.arange(len(users))
    keep = (from_end % window == 0) & (np.arange(len(users)) > starts[owner])
    return np.flatnonzero(keep).astype(np.int64)


def dense_split(split: Split, history: str, item_id: str, per_position: Sequence[str] = ()) -> Split:
    """The rows of ``split`` that dense supervision trains on (:func:`dense_rows`), with
    :data:`NEXT_ITEMS` added (see the module docstring). ``history`` names the sequence feature,
    ``item_id`` the target's item feature.

    ``per_position`` names per-row features (``[N, ...]``, such as the memory reads a CS3 replay
    gives every training row) that become per-position features ``[kept, L, ...]``: position ``t``
    of a kept row ``j`` gets the value of the row whose target it predicts, row
    ``j - (L - 1 - t)`` of the same user (zeros where ``next[t]`` is padding). So each position
    sees what its own training row would have seen, and nothing later.
    """
    if history not in split.features:
        raise ValueError(
            f"dense supervision needs the history feature {history!r}; the split has {sorted(split.features)}"
        )
    hist = split.features[history]
    kept = split.subset(dense_rows(split.users, hist.shape[1]))
    window = kept.features[history]
    following = np.concatenate([window[:, 1:], kept.features[item_id][:, None]], axis=1)
    kept.features[NEXT_ITEMS] = np.where(window != PAD, following, PAD).astype(np.int32)
    if per_position:
        length = hist.shape[1]
        valid = kept.features[NEXT_ITEMS] != PAD
        source = dense_rows(split.users, length)[:, None] - (length - 1 - np.arange(length))[None, :]
        source = np.where(valid, source, 0)
        targets = split.features[item_id]
        if not np.array_equal(np.where(valid, targets[source], PAD), kept.features[NEXT_ITEMS]):
            raise ValueError(
                "per-position features need each user's rows consecutive and in time order (row j - 1 targets "
                "the last history item of row j); this split's rows are not"
            )
        for name in per_position:
            values = split.features[name][source]
            kept.features[name] = np.where(valid.reshape(valid.shape + (1,) * (values.ndim - 2)), values, 0)
    return kept
