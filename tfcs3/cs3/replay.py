"""The replay's arithmetic: each row's final item memory with its own write removed exactly.

Used by :meth:`tfcs3.cs3.model.CS3Mixin.replay_memories` (see there for why the item side reads
the final memory less the row's own write rather than a causal read).

Example:
    >>> later_writes(np.array([3, 5, 3]), np.array([True, True, True]))
    array([1, 0, 0])
"""

from __future__ import annotations

import numpy as np


def later_writes(ids: np.ndarray, wrote: np.ndarray) -> np.ndarray:
    """For each row, how many later rows (in array order) wrote to the same id."""
    rows = np.flatnonzero(wrote)
    order = rows[np.argsort(ids[rows], kind="stable")]  # grouped by id, in row order within a group
    sorted_ids = ids[order]
    starts = np.r_[0, np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    position = np.arange(len(order)) - np.repeat(starts, sizes)
    later = np.zeros(len(ids), np.int64)
    later[order] = np.repeat(sizes, sizes) - 1 - position
    return later


def leave_own_write_out(
    final: np.ndarray, ids: np.ndarray, values: np.ndarray, wrote: np.ndarray, decay: float
) -> np.ndarray:
    """Per row, the final memory of its id as if that row had not written.

    With ``A`` the memory just before the row's write, ``x`` its value and ``n`` the later writes
    to the same id, the write moved the memory from ``A`` to ``decay * A + (1 - decay) * x`` and
    every later write scaled that by ``decay``; so, by linearity, removing it gives
    ``final - (1 - decay) * decay^n * (x - A)``. Rows that did not write get ``final`` as is.
    (Only the row's own write is removed: its label can still reach the memory along diffuse
    second-order paths, through its user's later outputs stored by other items, the same way any
    training label reaches the weights.)
    """
    states = np.zeros_like(final)
    before = np.zeros_like(values)
    for r in np.flatnonzero(wrote):
        i = ids[r]
        before[r] = states[i]
        states[i] = decay * states[i] + (1.0 - decay) * values[r]
    later = later_writes(ids, wrote)
    own = (1.0 - decay) * np.power(decay, later)[:, None] * (values - before) * wrote[:, None]
    return final[ids] - own
