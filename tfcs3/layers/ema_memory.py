"""A per-id memory written by an exponential moving average, read before it is written.

The state CS3's two memory mechanisms keep (:mod:`tfcs3.cs3.cross_tower_sync`,
:mod:`tfcs3.cs3.cascade_sharing`), and what any tower with per-id side inputs owns
(:class:`tfcs3.models.tower.MemoryTower`): ``m[id] <- decay * m[id] + (1 - decay) * value``, a
non-trainable ``[num_rows, dim]`` table saved and exported with the model.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras


def ordered_ema(
    table: tf.Variable, ids: tf.Tensor, values: tf.Tensor, decay: float, mask: tf.Tensor | None = None
) -> None:
    """Applies ``m[id] <- decay * m[id] + (1 - decay) * value`` row by row, in batch order.

    An id that appears ``k`` times in the batch (rows ``r_0 < ... < r_{k-1}``) ends, exactly as if
    the rows had been applied one after another, at

        m[id] <- decay^k * m[id] + (1 - decay) * sum_j decay^(k-1-j) * value[r_j]

    so the latest row weighs most. Rows with ``mask == 0`` are skipped. One scatter per batch.

    Args:
        table: the memory, ``[num_rows, dim]``.
        ids: int row of each example, ``[batch]``.
        values: ``[batch, dim]``.
        decay: the EMA coefficient in [0, 1).
        mask: optional ``[batch]``; rows where it is 0 (or False) are not applied.
    """
    ids = tf.cast(tf.reshape(ids, [-1]), tf.int64)
    values = tf.stop_gradient(tf.cast(values, table.dtype))
    if mask is not None:
        keep = tf.reshape(tf.cast(mask, tf.bool), [-1])
        ids, values = tf.boolean_mask(ids, keep), tf.boolean_mask(values, keep)
    unique, slot = tf.unique(ids)
    n = tf.shape(ids)[0]
    counts = tf.math.unsorted_segment_sum(tf.ones([n], tf.int32), slot, tf.shape(unique)[0])
    # Position j of each row among the earlier rows with the same id: a stable sort by slot puts
    # each id's rows together in batch order.
    order = tf.argsort(slot, stable=True)
    first = tf.cumsum(counts, exclusive=True)
    position_sorted = tf.range(n) - tf.gather(first, tf.gather(slot, order))
    position = tf.scatter_nd(order[:, None], position_sorted, [n])
    k = tf.gather(counts, slot)
    decay_t = tf.constant(decay, table.dtype)
    weight = (1.0 - decay_t) * tf.pow(decay_t, tf.cast(k - 1 - position, table.dtype))
    added = tf.math.unsorted_segment_sum(weight[:, None] * values, slot, tf.shape(unique)[0])
    kept = tf.pow(decay_t, tf.cast(counts, table.dtype))[:, None] * tf.gather(table, unique)
    table.scatter_update(tf.IndexedSlices(kept + added, unique))


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class EMAMemory(tf_keras.layers.Layer):
    """A per-id vector memory updated by an exponential moving average, never by gradients.

    ``call(ids)`` reads ``stop_gradient(m[ids])``; :meth:`update` writes (see :func:`ordered_ema`);
    :meth:`reset` zeroes it. The table is a non-trainable weight, so it is saved, restored and
    exported with the model that owns the layer.

    Args:
        num_rows: number of ids (the key feature's vocabulary size, padding and OOV included).
        dim: width of a stored vector.
        decay: EMA coefficient (``alpha`` or ``beta`` in CS3).
        key: name of the input feature holding the ids (used by the towers that own memories).

    Input shape:
        int ids ``[batch]``.
    Output shape:
        ``[batch, dim]``.

    Example:
        >>> memory = EMAMemory(10, 4)
        >>> memory.update(tf.constant([3]), tf.ones([1, 4]))   # m[3] = 0.2
        >>> memory(tf.constant([3, 5]))                         # [[.2, .2, .2, .2], [0, 0, 0, 0]]
    """

    def __init__(self, num_rows: int, dim: int, decay: float = 0.8, key: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if int(num_rows) < 1 or int(dim) < 1:
            raise ValueError(f"num_rows and dim must be >= 1, got {num_rows}, {dim}")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.num_rows, self.dim, self.decay, self.key = int(num_rows), int(dim), float(decay), key
        self.table = self.add_weight(
            name="table", shape=[self.num_rows, self.dim], initializer="zeros", trainable=False
        )

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        ids = tf.cast(ids, tf.int64)
        if ids.shape.rank is not None and ids.shape.rank != 1:
            raise ValueError(f"{self.name}: ids must have shape [batch], got {ids.shape}")
        return tf.stop_gradient(tf.gather(self.table, ids))

    def update(self, ids: tf.Tensor, values: tf.Tensor, mask: tf.Tensor | None = None) -> None:
        """EMA-writes ``values`` (``[batch, dim]``) at ``ids``, in batch order; see :func:`ordered_ema`."""
        if values.shape.rank is not None and values.shape[-1] not in (None, self.dim):
            raise ValueError(f"{self.name}: values must have width {self.dim}, got {values.shape}")
        ordered_ema(self.table, ids, values, self.decay, mask)

    def reset(self) -> None:
        """Sets every stored vector back to zero (the state before any data)."""
        self.table.assign(tf.zeros_like(self.table))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(num_rows=self.num_rows, dim=self.dim, decay=self.decay, key=self.key)
        return config
