"""SparCode's all-to-all interaction: every query token against all of an item's tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf
import tf_keras

SCORERS = ("mlp", "attention")


def sparse_sum(token_scores: tf.Tensor, bias: float | tf.Tensor, axis: int = -1, leak: float = 0.0) -> tf.Tensor:
    """``y = sum_k ReLU(s_k + b)`` over ``axis`` (the query tokens).

    ``leak > 0`` keeps the value and lets a gradient of ``leak`` through where ``s_k + b <= 0``
    (a straight-through leaky ReLU): without it, a model whose scores all fall below ``-b`` gets no
    gradient at all and stays there.
    """
    x = token_scores + bias
    y = tf.nn.relu(x)
    if leak:
        y += leak * (x - tf.stop_gradient(x))
    return tf.reduce_sum(y, axis=axis)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class AllToAllInteraction(tf_keras.layers.Layer):
    """Per-token scores ``s_k = f([z_k ; v_1 ; ... ; v_Ki])`` with ``f`` shared across tokens.

    Su et al., SparCode (SIGIR 2023), all-to-all interaction encoder. ``f`` sees one query token
    together with every token of the item, so query and item interact fully (not through a dot
    product); the model aggregates ``y = sum_k ReLU(s_k + b)`` (:func:`sparse_sum`).

    * ``scorer="mlp"`` (the official code's DNN): an MLP over the concatenation. Its first layer is
      applied as ``z_k W_z + v W_v`` (the same product), so all-pairs scoring computes each side's
      half once.
    * ``scorer="attention"`` (the paper's "w/ SA"): ``num_layers`` Transformer encoder layers
      (``num_heads`` heads, post-norm) over the sequence ``[z_k ; v_1 .. v_Ki]``, then a linear head
      on the first position. INTERPRETATION of the preprint's SA variant; all-pairs scoring must
      run the encoder per pair, so it is for small catalogs.

    Args:
        hidden_units: hidden widths of ``f`` (``mlp``) or the feed-forward width (``attention``).
        scorer: ``"mlp"`` or ``"attention"``.
        dropout: dropout after hidden layers.
        num_layers, num_heads: the attention variant's depth and heads.

    Input shape:
        ``(query_tokens [B, K_u, d], item_tokens [B, K_i, d])``, row-aligned pairs.
    Output shape:
        ``[B, K_u]`` token scores ``s``.

    Example:
        >>> a2a = AllToAllInteraction([16])
        >>> a2a((tf.ones([2, 4, 8]), tf.ones([2, 2, 8]))).shape
        TensorShape([2, 4])
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (128, 128),
        scorer: str = "mlp",
        dropout: float = 0.0,
        num_layers: int = 1,
        num_heads: int = 1,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {SCORERS}, got {scorer!r}")
        if not hidden_units:
            raise ValueError("hidden_units must name at least one layer")
        self.hidden_units = [int(u) for u in hidden_units]
        self.scorer = scorer
        self.dropout = float(dropout)
        self.num_layers = int(num_layers)
        self.num_heads = int(num_heads)
        self.drop = tf_keras.layers.Dropout(self.dropout) if self.dropout else None
        if scorer == "mlp":
            self.deep = [tf_keras.layers.Dense(u, activation="relu") for u in self.hidden_units[1:]]
        self.out = tf_keras.layers.Dense(1)

    def build(self, input_shape: Any) -> None:
        (_, _, d), (_, k_i, d_item) = (tuple(s) for s in input_shape)
        if d != d_item:
            raise ValueError(f"query and item tokens must have the same width, got {d} and {d_item}")
        self.token_dim, self.item_tokens = int(d), int(k_i)
        first = self.hidden_units[0]
        if self.scorer == "mlp":
            self.query_kernel = self.add_weight(name="query_kernel", shape=(d, first), initializer="glorot_uniform")
            self.item_kernel = self.add_weight(name="item_kernel", shape=(k_i * d, first), initializer="glorot_uniform")
            self.first_bias = self.add_weight(name="first_bias", shape=(first,), initializer="zeros")
        else:
            self.blocks = []
            for i in range(self.num_layers):
                attention = tf_keras.layers.MultiHeadAttention(self.num_heads, d // self.num_heads, name=f"att_{i}")
                ffn = [tf_keras.layers.Dense(first, activation="relu"), tf_keras.layers.Dense(d)]
                norms = [tf_keras.layers.LayerNormalization(), tf_keras.layers.LayerNormalization()]
                self.blocks.append((attention, ffn, norms))
        super().build(input_shape)

    def _ensure_built(self, query_tokens: tf.Tensor, item_tokens: tf.Tensor) -> None:
        """Builds from ``[., K_u, d]`` and ``[., K_i, d]`` shapes when called outside ``__call__``."""
        if not self.built:
            with tf.name_scope(self.name):
                self.build((query_tokens.shape, item_tokens.shape))

    def _hidden(self, x: tf.Tensor, training: bool | None) -> tf.Tensor:
        x = tf.nn.relu(x)
        if self.drop is not None:
            x = self.drop(x, training=training)
        for layer in self.deep:
            x = layer(x)
            if self.drop is not None:
                x = self.drop(x, training=training)
        return tf.squeeze(self.out(x), -1)

    def _attend(self, sequence: tf.Tensor, training: bool | None) -> tf.Tensor:
        """``[n, 1 + K_i, d]`` -> ``[n]``: encoder layers, then the head on the first position."""
        x = sequence
        for attention, (ffn_in, ffn_out), (norm_a, norm_f) in self.blocks:
            x = norm_a(x + attention(x, x, training=training))
            h = ffn_in(x)
            if self.drop is not None:
                h = self.drop(h, training=training)
            x = norm_f(x + ffn_out(h))
        return tf.squeeze(self.out(x[:, 0]), -1)

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        query_tokens, item_tokens = inputs
        return self.candidates(query_tokens, item_tokens[:, None], training=training)[:, :, 0]

    def candidates(self, query_tokens: tf.Tensor, item_tokens: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """Per-query candidate lists: ``[B, K_u, d]`` x ``[B, C, K_i, d]`` -> ``[B, K_u, C]``."""
        self._ensure_built(query_tokens, item_tokens[:, 0])
        if self.scorer == "mlp":
            flat = tf.reshape(item_tokens, tf.concat([tf.shape(item_tokens)[:2], [-1]], axis=0))
            q = tf.tensordot(query_tokens, self.query_kernel, axes=1)  # [B, K_u, h]
            v = tf.tensordot(flat, self.item_kernel, axes=1)  # [B, C, h]
            return self._hidden(q[:, :, None, :] + v[:, None, :, :] + self.first_bias, training)
        k_u, c = tf.shape(query_tokens)[1], tf.shape(item_tokens)[1]
        queries = tf.tile(query_tokens[:, :, None, None, :], [1, 1, c, 1, 1])  # [B, K_u, C, 1, d]
        items = tf.tile(item_tokens[:, None], [1, k_u, 1, 1, 1])  # [B, K_u, C, K_i, d]
        sequence = tf.concat([queries, items], axis=3)
        flat = tf.reshape(sequence, [-1, 1 + self.item_tokens, self.token_dim])
        return tf.reshape(self._attend(flat, training), [-1, k_u, c])

    def all_pairs(self, query_tokens: tf.Tensor, item_tokens: tf.Tensor) -> tf.Tensor:
        """Every query against every item: ``[Q, K_u, d]`` x ``[C, K_i, d]`` -> ``[Q, K_u, C]``."""
        self._ensure_built(query_tokens, item_tokens)
        if self.scorer == "mlp":
            flat = tf.reshape(item_tokens, [tf.shape(item_tokens)[0], -1])
            q = tf.tensordot(query_tokens, self.query_kernel, axes=1)  # [Q, K_u, h]
            v = tf.matmul(flat, self.item_kernel)  # [C, h]
            return self._hidden(q[:, :, None, :] + v[None, None] + self.first_bias, False)
        tiled = tf.tile(item_tokens[None], [tf.shape(query_tokens)[0], 1, 1, 1])
        return self.candidates(query_tokens, tiled)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_units": self.hidden_units,
            "scorer": self.scorer,
            "dropout": self.dropout,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
        }
