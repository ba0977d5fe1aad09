"""IntTower's mechanisms: Light-SE field reweighting, the FE-Block multi-head sum-max score and the
contrastive interaction regularisation (CIR).

Li, Chen et al., "IntTower: the Next Generation of Two-Tower Model for Pre-Ranking System",
CIKM 2022 (arXiv 2210.09890).

* Light-SE, per tower: ``z = mean_d(E)`` over field embeddings ``E [B, F, d]``,
  ``a = softmax(z W)`` with ``W [F, F]`` (no bias), ``E' = E + E * a``.
* FE-Block: the user tower projects the *input* of each of its ``L`` dense layers into ``H_u``
  heads of width ``d_h``; the item tower projects its output into ``H_v`` heads. The score is

      s(u, v) = sum_{l=1..L} sum_{m=1..H_u} max_{n=1..H_v} <U_l[m], V[n]>.

* CIR (INTERPRETATION of the IntTower paper's figure): InfoNCE over the batch's
  positive pairs with the batch's items as negatives, on cosine similarities of the towers' last
  hidden states,

      L_cir = -mean_{i positive} log( exp(cos(u_i, v_i)/tau) / sum_j exp(cos(u_i, v_j)/tau) ).

  The public code's versions are broken (a malformed term with tau = 0.001; later the label used as
  the positive column index); this is the paper's stated intent.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class LightSE(tf_keras.layers.Layer):
    """Light squeeze-excitation over feature fields: ``E' = E + E * softmax(mean_d(E) W)``.

    Args:
        num_fields: ``F``, the number of field embeddings.

    Input shape:
        ``[batch, F, d]``.
    Output shape:
        ``[batch, F, d]``.

    Example:
        >>> LightSE(3)(tf.ones([2, 3, 8])).shape  # TensorShape([2, 3, 8])
    """

    def __init__(self, num_fields: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.num_fields = int(num_fields)
        self.weights_layer = tf_keras.layers.Dense(self.num_fields, use_bias=False, name="field_weights")

    def call(self, fields: tf.Tensor) -> tf.Tensor:
        if fields.shape.rank != 3 or (fields.shape[1] is not None and fields.shape[1] != self.num_fields):
            raise ValueError(f"LightSE expects [batch, {self.num_fields}, d] field embeddings, got {fields.shape}")
        attention = tf.nn.softmax(self.weights_layer(tf.reduce_mean(fields, axis=-1)), axis=-1)
        return fields + fields * attention[:, :, None]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(num_fields=self.num_fields)
        return config


def multi_head_sum_max(user_heads: tf.Tensor, item_heads: tf.Tensor) -> tf.Tensor:
    """All-pairs ``s[b, n] = sum_m max_h <U[b, m], V[n, h]>``.

    Args:
        user_heads: ``[B, M, d_h]`` (``M = L * H_u``, every layer's heads stacked).
        item_heads: ``[N, H_v, d_h]``.

    Returns:
        ``[B, N]`` scores.
    """
    return tf.reduce_sum(tf.reduce_max(tf.einsum("bmd,nhd->bnmh", user_heads, item_heads), axis=-1), axis=-1)


def paired_sum_max(user_heads: tf.Tensor, item_heads: tf.Tensor) -> tf.Tensor:
    """Per-query candidate lists: ``U [B, M, d_h]`` x ``V [B, C, H_v, d_h]`` -> ``[B, C]``."""
    return tf.reduce_sum(tf.reduce_max(tf.einsum("bmd,bchd->bcmh", user_heads, item_heads), axis=-1), axis=-1)


def contrastive_interaction_loss(
    user: tf.Tensor, item: tf.Tensor, positive: tf.Tensor, temperature: float = 0.07
) -> tf.Tensor:
    """InfoNCE of each positive row's (user, item) against the batch's items (cosine / tau).

    Args:
        user: ``[B, d]`` user-side last hidden states.
        item: ``[B, d]`` item-side last hidden states.
        positive: ``[B]``, 1.0 on rows whose pair is a positive.
        temperature: ``tau``.
    """
    logits = tf.matmul(tf.math.l2_normalize(user, -1), tf.math.l2_normalize(item, -1), transpose_b=True) / temperature
    per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.range(tf.shape(logits)[0]), logits=logits)
    positive = tf.cast(positive, per_row.dtype)
    return tf.math.divide_no_nan(tf.reduce_sum(per_row * positive), tf.reduce_sum(positive))
