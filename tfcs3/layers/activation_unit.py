"""DIN's activation unit: target attention whose weights come from a small MLP (FIT's user tower
pools the behaviour sequence with it, using a meta query as the target)."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class ActivationUnitAttention(tf_keras.layers.Layer):
    """Pools a padded history with weights from ``MLP([q; x_t; q - x_t; q * x_t])``.

    Zhou et al., "Deep Interest Network for Click-Through Rate Prediction", KDD 2018. For each
    query ``q`` and history entry ``x_t`` (same width ``D``):

        a_t = w_2^T relu(W_1 [q; x_t; q - x_t; q * x_t] + b_1) + b_2
        w = softmax_{t: id_t != 0}(a), out = sum_t w_t x_t

    Several queries per example are scored at once (FIT serves all ``N`` meta queries of a user
    in one pass). ``W_1`` is one ``[4D, units]`` kernel, applied as
    ``q (W_q + W_d) + x (W_x - W_d) + x diag(q) W_p`` (the same product, without building the
    ``[batch, queries, len, 4D]`` concatenation).

    INTERPRETATION: DIN leaves the weights unnormalised; here they are a softmax over the real
    positions, so the output keeps the scale of the embeddings whatever the history length.
    Padding (id 0) gets weight exactly 0; an all-padding history gives the zero vector.

    Args:
        units: hidden width of the activation unit.

    Input shape:
        ``(queries [batch, n_queries, D], history [batch, len, D], history_ids [batch, len])``.
    Output shape:
        ``[batch, n_queries, D]``.

    Example:
        >>> att = ActivationUnitAttention(16)
        >>> att((tf.ones([2, 3, 8]), tf.ones([2, 5, 8]), tf.ones([2, 5], tf.int32))).shape
        TensorShape([2, 3, 8])
    """

    def __init__(self, units: int = 32, **kwargs: Any):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape: Any) -> None:
        dim = int(input_shape[0][-1])
        self.kernel = self.add_weight(name="kernel", shape=(4 * dim, self.units), initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.score_kernel = self.add_weight(name="score_kernel", shape=(self.units, 1), initializer="glorot_uniform")
        self.score_bias = self.add_weight(name="score_bias", shape=(1,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tf.Tensor:
        queries, history, ids = inputs
        w_q, w_x, w_d, w_p = tf.split(self.kernel, 4, axis=0)
        # Only 2-D and same-rank batched matmuls below: oneDNN's broadcasting batch matmul
        # (TF 2.20 on CPU) corrupts memory on some of these shapes.
        from_query = tf.tensordot(queries, w_q + w_d, axes=1)[:, :, None, :]  # [B, Nq, 1, u]
        from_history = tf.tensordot(history, w_x - w_d, axes=1)[:, None, :, :]  # [B, 1, L, u]
        # (q * x) W_p = x (diag(q) W_p): scale the kernel per query, then one batched product.
        from_product = tf.einsum("bld,bndu->bnlu", history, queries[..., None] * w_p)  # [B, Nq, L, u]
        hidden = tf.nn.relu(from_query + from_history + from_product + self.bias)
        scores = tf.tensordot(hidden, self.score_kernel[:, 0], axes=1) + self.score_bias  # [B, Nq, L]
        mask = tf.not_equal(ids, 0)[:, None, :]
        scores = tf.where(mask, scores, tf.cast(scores.dtype.min, scores.dtype))
        weights = tf.nn.softmax(scores, axis=-1) * tf.cast(mask, history.dtype)
        return tf.einsum("bnl,bld->bnd", weights, history)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "units": self.units}
