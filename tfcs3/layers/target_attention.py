"""DIN-style target attention over a padded history (used by the CMS ranker)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class TargetAttention(tf_keras.layers.Layer):
    """Scaled dot-product attention of a target item over a padded history (DIN-style pooling).

    ``w = softmax_{t: ids[t] != 0}(<h_t, target> / sqrt(d))``, ``out = sum_t w_t h_t``. Padding
    positions (id 0) get weight exactly 0; an all-padding history gives the zero vector, not NaN.

    INTERPRETATION: DIN scores a history entry with a small MLP over ``[h, t, h - t, h * t]`` and
    does not normalise; here (as the CMS ranker's brief asks) the score is the scaled dot product
    and the weights are a softmax over the real positions.

    Input shape:
        ``(history [batch, len, d], history_ids [batch, len], target [batch, d])``.
    Output shape:
        ``[batch, d]``.

    Example:
        >>> att = TargetAttention()
        >>> att((tf.ones([2, 3, 4]), tf.constant([[0, 5, 6], [0, 0, 0]]), tf.ones([2, 4]))).shape
        TensorShape([2, 4])
    """

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tf.Tensor:
        history, ids, target = inputs
        mask = tf.not_equal(ids, 0)
        scale = tf.math.rsqrt(tf.cast(tf.shape(target)[-1], history.dtype))
        scores = tf.einsum("bld,bd->bl", history, target) * scale
        # The dtype's most negative finite value: exp(min - max) underflows to exactly 0 on mixed
        # rows, and an all-padding row stays finite (uniform), then is zeroed by the mask.
        scores = tf.where(mask, scores, tf.cast(scores.dtype.min, scores.dtype))
        weights = tf.nn.softmax(scores, axis=-1) * tf.cast(mask, history.dtype)
        return tf.einsum("bl,bld->bd", weights, history)
