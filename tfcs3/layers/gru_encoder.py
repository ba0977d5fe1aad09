"""GRU4Rec's sequence encoder: a GRU over the item embeddings, projected back to their width."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class GRUSequenceEncoder(tf_keras.layers.Layer):
    """GRU4Rec's encoder (Hidasi et al., ICLR 2016; Tan et al. 2016), in RecBole's form:

        g_t = GRU(Dropout(x_1) .. Dropout(x_t))        (padding steps skipped)
        h_t = W g_t                                     (back to the embedding width D)

    A GRU is causal by construction: ``h_t`` depends on ``x_{<=t}`` only.

    Args:
        units: GRU width.
        dropout: dropout on the input embeddings.

    Input shape:
        ``(x [B, L, D], valid [B, L] bool)``.
    Output shape:
        ``[B, L, D]``.

    Example:
        >>> enc = GRUSequenceEncoder(units=128)
        >>> enc((tf.random.normal([4, 50, 64]), tf.ones([4, 50], tf.bool))).shape  # [4, 50, 64]
    """

    def __init__(self, units: int = 128, dropout: float = 0.3, **kwargs: Any):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"units must be >= 1, got {units}")
        self.units = int(units)
        self.dropout_rate = float(dropout)
        self.dropout = tf_keras.layers.Dropout(self.dropout_rate)
        self.gru = tf_keras.layers.GRU(self.units, return_sequences=True, name="gru")

    def build(self, input_shape: Any) -> None:
        self.projection = tf_keras.layers.Dense(int(input_shape[0][-1]), name="projection")
        super().build(input_shape)

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        x, valid = inputs
        g = self.gru(self.dropout(x, training=training), mask=tf.cast(valid, tf.bool), training=training)
        return self.projection(g)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(units=self.units, dropout=self.dropout_rate)
        return config
