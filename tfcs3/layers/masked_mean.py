"""Masked mean pooling over padded id sequences."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class MaskedMeanPooling(tf_keras.layers.Layer):
    """Mean of the embeddings at non-padding positions.

    ``out[b] = sum_t m[b,t] * x[b,t] / max(1, sum_t m[b,t])`` with ``m = (ids != 0)``. An empty
    history (all padding) gives the zero vector, a documented fallback rather than NaN.

    Input shape:
        ``(embeddings [batch, len, dim], ids [batch, len])``; id 0 is padding.
    Output shape:
        ``[batch, dim]``.

    Example:
        >>> pool = MaskedMeanPooling()
        >>> pool((tf.ones([2, 3, 4]), tf.constant([[1, 2, 0], [0, 0, 0]])))  # -> [[1,1,1,1],[0,0,0,0]]
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.built = True  # no weights: a tower that never calls it still saves without a warning

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        embeddings, ids = inputs
        mask = tf.cast(tf.not_equal(ids, 0), embeddings.dtype)[..., None]
        total = tf.reduce_sum(embeddings * mask, axis=1)
        count = tf.reduce_sum(mask, axis=1)
        return total / tf.maximum(count, 1.0)
