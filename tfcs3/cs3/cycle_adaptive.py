"""Cycle-Adaptive Structure (CAS), the first mechanism of CS3.

Wang et al., "Efficient Online Capability Synergy for Two-Tower Recommendation" (CS3), arXiv
2604.19269 / 2604.22761, 2026. A CAS block replaces a fully connected layer of a tower and lets
the layer look at its own output to re-weight (denoise) its input, then run again with the same
weights:

    pre-forward     z = phi(W x + b)                       z: [batch, units]
    re-weighting    e = sigmoid(W' z + b')                 e: [batch, d_in]
    cycle-forward   y = phi(W (x * 2e) + b)                y: [batch, units]

``2e`` lies in (0, 2) with mean about 1, so re-weighting does not shrink the activations. The extra
parameters are ``W'`` ([units, d_in]) and ``b'`` ([d_in]); CAS adds no loss term.

INTERPRETATION (where the CS3 paper leaves it open): ``phi`` is the layer's own activation, applied
in both passes; gradients flow through both passes and through the gate; ``W'`` and ``b'`` start at
zero, so ``2e = 1`` and a fresh CAS block computes exactly its plain dense layer; with
``cycles > 1`` the gate is recomputed from the latest output and always re-weights the original
input ``x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras

from tfcs3.layers.mlp import MLP


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class CycleAdaptiveDense(tf_keras.layers.Layer):
    """A dense layer run ``1 + cycles`` times, each cycle re-weighting its input by a learned gate.

    Args:
        units: output width.
        activation: ``phi`` (any Keras activation name; ``None`` for a linear layer).
        cycles: number of re-weighting cycles (>= 1).
        kernel_initializer: initializer of ``W`` (``W'`` and ``b'`` always start at zero).

    Input shape:
        ``[batch, d_in]``.
    Output shape:
        ``[batch, units]``.

    Example:
        >>> CycleAdaptiveDense(32)(tf.zeros([4, 10])).shape  # TensorShape([4, 32])
    """

    def __init__(
        self,
        units: int,
        activation: str | None = "relu",
        cycles: int = 1,
        kernel_initializer: str = "glorot_uniform",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"units must be >= 1, got {units}")
        if int(cycles) < 1:
            raise ValueError(f"cycles must be >= 1, got {cycles}")
        self.units = int(units)
        self.cycles = int(cycles)
        self.activation_name = activation
        self.activation = tf_keras.activations.get(activation)
        self.kernel_initializer = kernel_initializer

    def build(self, input_shape: tf.TensorShape) -> None:
        d_in = input_shape[-1]
        if d_in is None:
            raise ValueError(f"{self.name}: the last input dimension must be known, got {input_shape}")
        self.kernel = self.add_weight(name="kernel", shape=[d_in, self.units], initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=[self.units], initializer="zeros")
        self.gate_kernel = self.add_weight(name="gate_kernel", shape=[self.units, d_in], initializer="zeros")
        self.gate_bias = self.add_weight(name="gate_bias", shape=[d_in], initializer="zeros")
        super().build(input_shape)

    def dense(self, x: tf.Tensor) -> tf.Tensor:
        """The shared fully connected layer ``phi(W x + b)``."""
        return self.activation(tf.matmul(x, self.kernel) + self.bias)

    def gate(self, z: tf.Tensor) -> tf.Tensor:
        """``e = sigmoid(W' z + b')``, the re-weighting of the input (before the factor 2)."""
        return tf.sigmoid(tf.matmul(z, self.gate_kernel) + self.gate_bias)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        z = self.dense(inputs)
        for _ in range(self.cycles):
            z = self.dense(inputs * (2.0 * self.gate(z)))
        return z

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            units=self.units,
            activation=self.activation_name,
            cycles=self.cycles,
            kernel_initializer=self.kernel_initializer,
        )
        return config


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class CycleAdaptiveMLP(MLP):
    """:class:`~tfcs3.layers.MLP` whose every dense layer (hidden ReLU layers and the linear output
    layer) is a :class:`CycleAdaptiveDense`; the drop-in replacement of a tower's dense stack.

    Args:
        hidden_units, output_dim, dropout, l2_normalize: as for :class:`~tfcs3.layers.MLP`.
        cycles: re-weighting cycles per layer.

    Input shape:
        ``[batch, in_dim]``.
    Output shape:
        ``[batch, output_dim]``.

    Example:
        >>> CycleAdaptiveMLP([128], 64)(tf.zeros([2, 10])).shape  # TensorShape([2, 64])
    """

    def __init__(
        self,
        hidden_units: Sequence[int],
        output_dim: int,
        dropout: float = 0.0,
        l2_normalize: bool = False,
        cycles: int = 1,
        **kwargs: Any,
    ):
        self.cycles = int(cycles)
        super().__init__(hidden_units, output_dim, dropout, l2_normalize, **kwargs)

    def make_dense(self, units: int, activation: str | None) -> tf_keras.layers.Layer:
        return CycleAdaptiveDense(units, activation, cycles=self.cycles)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "cycles": self.cycles}
