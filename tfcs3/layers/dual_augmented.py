"""Dual Augmented Two-tower (DAT): adaptive-mimic vectors and the category alignment loss.

Yu et al., "A Dual Augmented Two-tower Model for Online Large-scale Recommendation", DLP-KDD 2021.

Each query id and each item id owns a learned *augmented vector* (``a_u``, ``a_v``), appended to
its own tower's input. The Adaptive-Mimic Mechanism trains ``a_u`` to imitate the other tower's
output on positive pairs and vice versa, so each tower carries a summary of the other side
learned offline, while the towers stay independent at serving time:

    L_u = mean over positive pairs of || a_u - sg(p_v) ||^2
    L_v = mean over positive pairs of || a_v - sg(p_u) ||^2        (sg = stop-gradient)

The Category Alignment Loss aligns the spread of item vectors across categories in a batch:

    L_CA = sum_{i != major} || C(S_major) - C(S_i) ||_F^2

with ``C(S_i)`` the covariance of the batch's item vectors of category ``i`` and ``major`` the
category with most items. INTERPRETATION (where the DAT paper leaves it open): only categories with at least two
items in the batch take part; a multi-valued category feature uses its first value.

Note: some public reproductions (the IntTower/HIT repositories) feed fresh random noise as the
"augmented vectors"; here they are learned embeddings, as the paper describes.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class AdaptiveMimicVector(tf_keras.layers.Layer):
    """A learned augmented vector per id, ``a = A[id]``, with its mimic loss.

    Args:
        input_dim: number of ids (vocabulary size, padding and OOV included).
        output_dim: width of ``a``; equal to the other tower's output width.

    Input shape:
        ``[batch]`` int ids.
    Output shape:
        ``[batch, output_dim]``.

    Example:
        >>> aug = AdaptiveMimicVector(100, 8)
        >>> a = aug(tf.constant([3, 4]))                       # [2, 8]
        >>> loss = aug.mimic_loss(a, tf.ones([2, 8]), tf.constant([1.0, 0.0]))
    """

    def __init__(self, input_dim: int, output_dim: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.table = tf_keras.layers.Embedding(
            self.input_dim,
            self.output_dim,
            embeddings_initializer=tf_keras.initializers.RandomNormal(stddev=0.05),
            name="augmented_vectors",
        )

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        return self.table(tf.cast(ids, tf.int32))

    @staticmethod
    def mimic_loss(augmented: tf.Tensor, target: tf.Tensor, positive: tf.Tensor) -> tf.Tensor:
        """``mean_{rows with positive = 1} ||augmented - stop_gradient(target)||^2`` (0 with none)."""
        positive = tf.cast(positive, augmented.dtype)
        squared = tf.reduce_sum(tf.square(augmented - tf.stop_gradient(target)), axis=-1)
        return tf.math.divide_no_nan(tf.reduce_sum(squared * positive), tf.reduce_sum(positive))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(input_dim=self.input_dim, output_dim=self.output_dim)
        return config


def category_alignment_loss(vectors: tf.Tensor, categories: tf.Tensor) -> tf.Tensor:
    """``sum_{i != major} ||C_major - C_i||_F^2`` over the batch's categories with >= 2 items.

    Args:
        vectors: ``[batch, d]`` item representations.
        categories: ``[batch]`` int category of each row.
    """
    unique, segment = tf.unique(tf.cast(categories, tf.int32))
    n = tf.shape(unique)[0]
    counts = tf.math.unsorted_segment_sum(tf.ones_like(segment, vectors.dtype), segment, n)
    means = tf.math.unsorted_segment_sum(vectors, segment, n) / tf.maximum(counts, 1.0)[:, None]
    centred = vectors - tf.gather(means, segment)
    outer = centred[:, :, None] * centred[:, None, :]  # [batch, d, d]
    cov = tf.math.unsorted_segment_sum(outer, segment, n) / tf.maximum(counts - 1.0, 1.0)[:, None, None]
    major = tf.argmax(counts)
    valid = tf.cast(counts >= 2.0, vectors.dtype) * tf.cast(tf.range(n) != tf.cast(major, tf.int32), vectors.dtype)
    gaps = tf.reduce_sum(tf.square(cov - cov[major][None]), axis=[1, 2])
    return tf.reduce_sum(gaps * valid) * tf.cast(counts[major] >= 2.0, vectors.dtype)
