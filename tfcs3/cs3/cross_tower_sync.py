"""Cross-Tower Synchronization (CTS), the second mechanism of CS3 (its memory is an
:class:`~tfcs3.layers.ema_memory.EMAMemory`).

Wang et al., "Efficient Online Capability Synergy for Two-Tower Recommendation" (CS3), 2026.
Each user keeps a running summary ``c_u`` of the item-tower outputs of the items it interacted
with positively, and each item a summary ``c_v`` of the user-tower outputs of its positive users:

    on a positive (u, v):   c_u <- alpha * c_u + (1 - alpha) * v
                            c_v <- alpha * c_v + (1 - alpha) * u

with ``alpha = 0.8`` and zero initial vectors; negatives change nothing. ``c_u`` is concatenated
(stop-gradient) to the user tower's input and ``c_v`` to the item tower's, so each tower sees a
summary of the other one while the item side still depends on item-keyed inputs only.

INTERPRETATION (where the CS3 paper leaves it open): the memories are non-trainable variables written
only by the EMA; a batch is *read before it is written* (the model computes its forward pass and
loss with the pre-batch memories, then updates them), so the label of an example never reaches its
own prediction; the stored tower outputs are detached.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from tfcs3.layers.ema_memory import EMAMemory, ordered_ema

__all__ = ["CrossTowerMemory", "EMAMemory", "ordered_ema"]


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class CrossTowerMemory(EMAMemory):
    """CTS: per id, the EMA (``alpha``, default 0.8) of the *other* tower's outputs on positives.

    A user tower owns one keyed by the user id (holding item-tower outputs ``v``); an item tower
    owns one keyed by the item id (holding user-tower outputs ``u``). :meth:`update` takes the
    positive mask: rows with label 0 never change the memory.

    Args:
        num_rows, dim, key: as for :class:`EMAMemory` (``dim`` = the other tower's output width).
        decay: ``alpha``.
    """

    def update(self, ids: tf.Tensor, values: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        """Writes the other tower's (detached) outputs of the positive rows (``mask`` = label)."""
        if mask is None:
            raise ValueError(f"{self.name}: Cross-Tower Synchronization updates need the positive mask")
        super().update(ids, values, mask)
