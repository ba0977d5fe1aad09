"""SASRec's sequence encoder: learned positions, then causal self-attention blocks."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

from tfcs3.cs3.cycle_adaptive import CycleAdaptiveDense


def causal_mask(valid: tf.Tensor) -> tf.Tensor:
    """``[B, L, L]`` bool attention mask: position ``i`` may attend to ``j`` iff ``j <= i`` and
    ``j`` is a real item (``valid [B, L]``), and always to itself (so a padding position, whose
    output is never read, attends to itself alone instead of to nothing)."""
    length = tf.shape(valid)[1]
    lower = tf.linalg.band_part(tf.ones([length, length], tf.bool), -1, 0)
    diagonal = tf.cast(tf.eye(length), tf.bool)
    return tf.logical_or(tf.logical_and(lower[None, :, :], valid[:, None, :]), diagonal[None, :, :])


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class CausalTransformerEncoder(tf_keras.layers.Layer):
    """SASRec's encoder (Kang & McAuley, ICDM 2018), in RecBole's post-norm form.

    For item embeddings ``x_1..x_L`` (left-padded, most recent last):

        h^0_t = Dropout(LayerNorm(x_t + P_t))
        a_t   = LayerNorm(h_t + Dropout(MultiHeadAttention(h_t, h_{<=t})))   per block
        h_t   = LayerNorm(a_t + Dropout(W_2 GELU(W_1 a_t)))

    Attention is causal: position ``t`` reads only real items at ``t' <= t``, so its output never
    depends on later items. ``P`` is a learned table of ``max_len`` positions counted from the
    right (position ``L - 1`` is always the most recent item, whatever the padding).

    Args:
        max_len: ``L``, the longest sequence (rows of ``P``).
        num_blocks: self-attention blocks.
        num_heads: heads per block (the model width must divide by it).
        ffn_units: inner width of each block's feed-forward network.
        dropout: dropout on the embeddings and after attention and feed-forward.
        attention_dropout: dropout on the attention weights.
        cycles: 0 for plain feed-forward layers; ``>= 1`` makes both dense layers of every
            feed-forward network Cycle-Adaptive blocks with that many cycles
            (:class:`~tfcs3.cs3.cycle_adaptive.CycleAdaptiveDense`, CS3's CAS on SASRec).

    Input shape:
        ``(x [B, L, D], valid [B, L] bool)``.
    Output shape:
        ``[B, L, D]``, one vector per position.

    Example:
        >>> enc = CausalTransformerEncoder(max_len=50, num_blocks=2, num_heads=2, ffn_units=128)
        >>> enc((tf.random.normal([4, 50, 64]), tf.ones([4, 50], tf.bool))).shape  # [4, 50, 64]
    """

    def __init__(
        self,
        max_len: int,
        num_blocks: int = 2,
        num_heads: int = 2,
        ffn_units: int = 256,
        dropout: float = 0.5,
        attention_dropout: float = 0.5,
        cycles: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if cycles < 0:
            raise ValueError(f"cycles must be >= 0, got {cycles}")
        if max_len < 1 or num_blocks < 1 or num_heads < 1:
            raise ValueError(
                f"max_len, num_blocks and num_heads must be >= 1, got {max_len}, {num_blocks}, {num_heads}"
            )
        self.max_len = int(max_len)
        self.num_blocks = int(num_blocks)
        self.num_heads = int(num_heads)
        self.ffn_units = int(ffn_units)
        self.dropout_rate = float(dropout)
        self.attention_dropout = float(attention_dropout)
        self.cycles = int(cycles)

    def _dense(self, units: int, activation: str | None, name: str) -> tf_keras.layers.Layer:
        if self.cycles:
            return CycleAdaptiveDense(units, activation, cycles=self.cycles, name=name)
        return tf_keras.layers.Dense(units, activation=activation, name=name)

    def build(self, input_shape: Any) -> None:
        width = int(input_shape[0][-1])
        if width % self.num_heads:
            raise ValueError(f"the embedding width {width} must be divisible by num_heads={self.num_heads}")
        self.positions = self.add_weight(
            name="positions",
            shape=[self.max_len, width],
            initializer=tf_keras.initializers.TruncatedNormal(stddev=0.02),
        )
        self.input_norm = tf_keras.layers.LayerNormalization(epsilon=1e-12, name="input_norm")
        self.dropout = tf_keras.layers.Dropout(self.dropout_rate)
        self.attention = [
            tf_keras.layers.MultiHeadAttention(
                self.num_heads, width // self.num_heads, dropout=self.attention_dropout, name=f"attention_{b}"
            )
            for b in range(self.num_blocks)
        ]
        self.attention_norm = [
            tf_keras.layers.LayerNormalization(epsilon=1e-12, name=f"attention_norm_{b}")
            for b in range(self.num_blocks)
        ]
        self.ffn_inner = [self._dense(self.ffn_units, "gelu", f"ffn_inner_{b}") for b in range(self.num_blocks)]
        self.ffn_outer = [self._dense(width, None, f"ffn_outer_{b}") for b in range(self.num_blocks)]
        self.ffn_norm = [
            tf_keras.layers.LayerNormalization(epsilon=1e-12, name=f"ffn_norm_{b}") for b in range(self.num_blocks)
        ]
        super().build(input_shape)

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        x, valid = inputs
        length = tf.shape(x)[1]
        tf.debugging.assert_less_equal(length, self.max_len, message=f"sequences longer than max_len={self.max_len}")
        h = x + self.positions[self.max_len - length :][None, :, :]
        h = self.dropout(self.input_norm(h), training=training)
        mask = causal_mask(tf.cast(valid, tf.bool))
        for b in range(self.num_blocks):
            a = self.attention[b](h, h, attention_mask=mask, training=training)
            h = self.attention_norm[b](h + self.dropout(a, training=training))
            f = self.ffn_outer[b](self.ffn_inner[b](h))
            h = self.ffn_norm[b](h + self.dropout(f, training=training))
        return h

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            max_len=self.max_len,
            num_blocks=self.num_blocks,
            num_heads=self.num_heads,
            ffn_units=self.ffn_units,
            dropout=self.dropout_rate,
            attention_dropout=self.attention_dropout,
            cycles=self.cycles,
        )
        return config
