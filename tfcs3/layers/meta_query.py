"""FIT's Meta Query Module: a learnable item meta matrix that stands in for the candidate inside
the user tower (early interaction that keeps the towers decoupled)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class MetaQueryModule(tf_keras.layers.Layer):
    """Meta matrix ``Q``, query group ``Q* = (Q Q^T) Q`` and soft / hard meta queries.

    Xiong et al., "A Learnable Fully Interacted Two-Tower Model for Pre-Ranking System"
    (FIT), SIGIR 2025, Meta Query Module. For an item's attribute representation ``e_c``:

    * assignment ``k = softmax(e_c Q^T / tau)`` over the ``N`` rows of the raw ``Q`` (not ``Q*``);
    * training (soft query): ``q = k Q*``;
    * inference (hard query): ``q = Q*[argmax_i e_c q_i^T]``; the argmax does not depend on tau,
      so each item's index is computed once, offline, with its other item-side vectors.

    ``tau`` is a non-trainable variable (:attr:`temperature`, start 1.0) that the model anneals
    toward 0 during training, so the soft query converges to the hard one. ``Q`` is initialised
    uniform in ``[-1/sqrt(D), 1/sqrt(D)]`` (PyTorch's Kaiming-uniform with ``a = sqrt(5)``, the
    re-implementations' reading of the paper). ``Q*`` is the paper's unscaled form.

    Args:
        num_meta: ``N``, the number of meta vectors ("item clusters").

    Input shape:
        ``e_c``: ``[batch, D]``.
    Output shape:
        ``[batch, D]``: the soft query when ``training`` is true, else the hard query.

    Example:
        >>> mqm = MetaQueryModule(4)
        >>> mqm(tf.ones([2, 8])).shape
        TensorShape([2, 8])
    """

    def __init__(self, num_meta: int = 16, **kwargs: Any):
        super().__init__(**kwargs)
        if int(num_meta) < 1:
            raise ValueError(f"num_meta must be >= 1, got {num_meta}")
        self.num_meta = int(num_meta)

    def build(self, input_shape: tf.TensorShape) -> None:
        dim = int(input_shape[-1])
        bound = 1.0 / np.sqrt(dim)
        self.meta = self.add_weight(
            name="meta",
            shape=(self.num_meta, dim),
            initializer=tf_keras.initializers.RandomUniform(-bound, bound),
        )
        self.temperature = self.add_weight(
            name="temperature", shape=(), initializer=tf_keras.initializers.Ones(), trainable=False
        )
        super().build(input_shape)

    def query_group(self) -> tf.Tensor:
        """``Q* = (Q Q^T) Q``, ``[N, D]``: row ``i`` is hard query ``i``."""
        return tf.matmul(tf.matmul(self.meta, self.meta, transpose_b=True), self.meta)

    def assignment_logits(self, item_repr: tf.Tensor) -> tf.Tensor:
        """``e_c Q^T``, ``[batch, N]``."""
        return tf.matmul(item_repr, self.meta, transpose_b=True)

    def hard_index(self, item_repr: tf.Tensor) -> tf.Tensor:
        """``argmax_i e_c q_i^T``, int32 ``[batch]``."""
        return tf.argmax(self.assignment_logits(item_repr), axis=-1, output_type=tf.int32)

    def soft_query(self, item_repr: tf.Tensor, temperature: tf.Tensor | float | None = None) -> tf.Tensor:
        """``softmax(e_c Q^T / tau) Q*`` with ``tau`` = ``temperature`` or the current variable."""
        tau = self.temperature if temperature is None else temperature
        weights = tf.nn.softmax(self.assignment_logits(item_repr) / tau, axis=-1)
        return tf.matmul(weights, self.query_group())

    def hard_query(self, item_repr: tf.Tensor) -> tf.Tensor:
        """``Q*[argmax_i e_c q_i^T]``, ``[batch, D]``."""
        return tf.gather(self.query_group(), self.hard_index(item_repr))

    def query_similarity(self, item_repr: tf.Tensor) -> tf.Tensor:
        """The "QS" diagnostic: cosine between each item's soft and hard query, ``[batch]``."""
        soft = tf.math.l2_normalize(self.soft_query(item_repr), axis=-1)
        hard = tf.math.l2_normalize(self.hard_query(item_repr), axis=-1)
        return tf.reduce_sum(soft * hard, axis=-1)

    def call(self, item_repr: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        return self.soft_query(item_repr) if training else self.hard_query(item_repr)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_meta": self.num_meta}
