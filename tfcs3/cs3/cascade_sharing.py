"""Cascade-Model Sharing (CMS), the third mechanism of CS3.

Wang et al., "Efficient Online Capability Synergy for Two-Tower Recommendation" (CS3), 2026.
A downstream ranking model sees user-item cross features and target attention that a two-tower
model cannot. CMS hands its knowledge to the two-tower through inputs, not through a distillation
loss: per user and per item, an EMA of the ranker's penultimate activations ``h_uv`` over every
labelled (u, v) sample, positive or negative:

    s_u <- beta * s_u + (1 - beta) * h_uv        s_v <- beta * s_v + (1 - beta) * h_uv

with ``beta = 0.8`` and zero initial vectors. ``s_u`` is concatenated (stop-gradient) to the user
tower's input, ``s_v`` to the item tower's; the item side still depends on item-keyed inputs only.

INTERPRETATION (where the CS3 paper leaves it open): offline, the ranker is trained first on the
training split (:mod:`tfcs3.cs3.ranker`) and then frozen; the memories are read before a batch
is written (the two-tower sees the previous values, as in production); with in-batch negatives
(retrieval) only the logged pairs update the memories, never the sampled negatives, which the
ranker never scored.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from tfcs3.layers.ema_memory import EMAMemory


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class CascadeMemory(EMAMemory):
    """CMS: per id, the EMA (``beta``, default 0.8) of the ranker's penultimate activations.

    Unlike :class:`~tfcs3.cs3.cross_tower_sync.CrossTowerMemory` every labelled sample updates
    it, so :meth:`update` takes no mask by default.

    Args:
        num_rows, key: as for :class:`~tfcs3.layers.ema_memory.EMAMemory`.
        dim: the ranker's penultimate width ``d_r``.
        decay: ``beta``.

    Input shape:
        int ids ``[batch]``.
    Output shape:
        ``[batch, d_r]``.
    """

    def update(self, ids: tf.Tensor, values: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        """Writes the ranker's activations ``h_uv`` (``[batch, d_r]``) of every row at ``ids``."""
        super().update(ids, values, mask)
