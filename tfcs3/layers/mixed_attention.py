"""T2Diff's mixed attention: the current session with the generated next intent (early
interaction), then target attention from it over the longer history."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

from tfcs3.layers.activation_unit import ActivationUnitAttention


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class MixedAttention(tf_keras.layers.Layer):
    """``(h_l, h_s)`` from a session, a next-intent vector and a history.

    Wang et al., T2Diff (WWW 2025), Eqs. 19-21:

        h_s = mean( TransformerEncoder([x_{n-k+1} .. x_n ; x_hat_{n+1}]) )     (real tokens only)
        h_l = sum_j a_j x_j,  a = softmax_j( MLP([h_s; x_j; h_s - x_j; h_s * x_j]) )  over the history

    The encoder is one post-norm layer (``num_heads`` heads, feed-forward ``ffn_units``); the target
    attention is :class:`ActivationUnitAttention` with ``h_s`` as the query. The model builds the
    user vector from ``[h_l ; h_s]``.

    INTERPRETATION: padding masks in both attentions (T2Diff's code has none, and masks the
    attention diagonal instead; here a token may attend to itself); no positional encoding, as in
    the code. With ``intent=None`` (the "without diffusion" ablation) the session is encoded alone.

    Args:
        num_heads: encoder heads.
        ffn_units: encoder feed-forward width.
        attention_units: hidden width of the activation unit.

    Input shape:
        ``(session [B, k, d], session_ids [B, k], intent [B, d] or None, history [B, m, d],
        history_ids [B, m])``.
    Output shape:
        ``[B, 2d]``: ``[h_l ; h_s]``.
    """

    def __init__(self, num_heads: int = 2, ffn_units: int = 64, attention_units: int = 32, **kwargs: Any):
        super().__init__(**kwargs)
        self.num_heads, self.ffn_units, self.attention_units = int(num_heads), int(ffn_units), int(attention_units)
        self.norm_attention = tf_keras.layers.LayerNormalization()
        self.norm_ffn = tf_keras.layers.LayerNormalization()
        self.target_attention = ActivationUnitAttention(self.attention_units)

    def build(self, input_shape: Any) -> None:
        dim = int(input_shape[0][-1])
        self.attention = tf_keras.layers.MultiHeadAttention(self.num_heads, max(1, dim // self.num_heads))
        self.ffn = [tf_keras.layers.Dense(self.ffn_units, activation="elu"), tf_keras.layers.Dense(dim)]
        super().build(input_shape)

    def session_interest(self, session: tf.Tensor, session_ids: tf.Tensor, intent: tf.Tensor | None) -> tf.Tensor:
        """``h_s`` ``[B, d]``."""
        mask = tf.not_equal(session_ids, 0)
        tokens = session
        if intent is not None:
            tokens = tf.concat([session, intent[:, None, :]], axis=1)
            mask = tf.concat([mask, tf.ones_like(mask[:, :1])], axis=1)
        pair = tf.logical_and(mask[:, :, None], mask[:, None, :])
        # A row with no real token attends to itself only (an empty session gives h_s = 0 below).
        pair = tf.logical_or(pair, tf.eye(tf.shape(tokens)[1], dtype=tf.bool)[None])
        x = self.norm_attention(tokens + self.attention(tokens, tokens, attention_mask=pair))
        x = self.norm_ffn(x + self.ffn[1](self.ffn[0](x)))
        weights = tf.cast(mask, x.dtype)[..., None]
        return tf.reduce_sum(x * weights, axis=1) / tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)

    def call(self, inputs: tuple[tf.Tensor, ...]) -> tf.Tensor:
        session, session_ids, intent, history, history_ids = inputs
        h_s = self.session_interest(session, session_ids, intent)
        h_l = self.target_attention((h_s[:, None, :], history, history_ids))[:, 0]
        return tf.concat([h_l, h_s], axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "ffn_units": self.ffn_units,
            "attention_units": self.attention_units,
        }
