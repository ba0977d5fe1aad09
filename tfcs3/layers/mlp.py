"""The feed-forward block that ends every tower."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class MLP(tf_keras.layers.Layer):
    """``h_{l+1} = dropout(relu(W_l h_l + b_l))`` for each hidden layer, then ``y = W_o h + b_o``.

    Args:
        hidden_units: widths of the hidden ReLU layers (may be empty).
        output_dim: width of the linear output layer.
        dropout: dropout rate after each hidden layer (training only).
        l2_normalize: divide the output by its L2 norm (cosine towers).

    Input shape:
        ``[batch, in_dim]``.
    Output shape:
        ``[batch, output_dim]``.

    Example:
        >>> MLP([128], 64)(tf.zeros([2, 10])).shape  # TensorShape([2, 64])
    """

    def __init__(
        self,
        hidden_units: Sequence[int],
        output_dim: int,
        dropout: float = 0.0,
        l2_normalize: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        self.output_dim = int(output_dim)
        self.dropout = float(dropout)
        self.l2_normalize = bool(l2_normalize)
        self.hidden = [self.make_dense(u, "relu") for u in self.hidden_units]
        self.drop = tf_keras.layers.Dropout(self.dropout) if self.dropout else None
        self.out = self.make_dense(self.output_dim, None)

    def make_dense(self, units: int, activation: str | None) -> tf_keras.layers.Layer:
        """One fully connected layer of the stack (subclasses swap in other layers, e.g. CAS)."""
        return tf_keras.layers.Dense(units, activation=activation)

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = inputs
        for layer in self.hidden:
            x = layer(x)
            if self.drop is not None:
                x = self.drop(x, training=training)
        x = self.out(x)
        return tf.math.l2_normalize(x, axis=-1) if self.l2_normalize else x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            hidden_units=self.hidden_units,
            output_dim=self.output_dim,
            dropout=self.dropout,
            l2_normalize=self.l2_normalize,
        )
        return config
