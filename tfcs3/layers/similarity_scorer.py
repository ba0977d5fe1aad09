"""FIT's Lightweight Similarity Scorer: a learned late interaction over the head-by-head
similarity matrix of multi-head user and item vectors."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras


def head_similarity(user_heads: tf.Tensor, item_heads: tf.Tensor) -> tf.Tensor:
    """``S = Z_u Z_v^T``: ``[..., H_u, p]`` x ``[..., H_v, p]`` -> ``[..., H_u, H_v]`` (same leading
    dimensions on both sides)."""
    return tf.einsum("...hp,...vp->...hv", user_heads, item_heads)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class LightweightSimilarityScorer(tf_keras.layers.Layer):
    """Row-wise then column-wise small dense layers over a similarity matrix, to one logit.

    Xiong et al., FIT (SIGIR 2025), Lightweight Similarity Scorer, in the separable form of LITE
    (Ji et al., 2024) that the paper's description and its re-implementations follow. For
    ``S in R^{H_u x H_v}`` (every user head against every item head):

        R = relu(S W_r + b_r)          in R^{H_u x d_r}   (shared across the H_u rows)
        C = relu(R^T W_c + b_c)        in R^{d_r x d_c}   (shared across the d_r columns)
        logit = w_o^T vec(C) + b_o

    The sum-max of IntTower is one function it can approximate; the score is not an inner
    product, so it serves a given candidate set (pre-ranking), not ANN search.

    INTERPRETATION: ReLU, no normalisation of the heads or of ``S`` (the towers are not
    L2-normalised, so no learnable scale is needed).

    Args:
        row_units: ``d_r``.
        column_units: ``d_c``.

    Input shape:
        ``S``: ``[..., H_u, H_v]`` (any leading dimensions).
    Output shape:
        ``[...]``: the logits.

    Example:
        >>> lss = LightweightSimilarityScorer(8, 8)
        >>> lss(tf.ones([2, 5, 4, 4])).shape
        TensorShape([2, 5])
    """

    def __init__(self, row_units: int = 8, column_units: int = 8, **kwargs: Any):
        super().__init__(**kwargs)
        self.row_units = int(row_units)
        self.column_units = int(column_units)
        self.row = tf_keras.layers.Dense(self.row_units, activation="relu", name="row")
        self.column = tf_keras.layers.Dense(self.column_units, activation="relu", name="column")
        self.out = tf_keras.layers.Dense(1, name="out")

    def call(self, similarity: tf.Tensor) -> tf.Tensor:
        rows = self.row(similarity)  # [..., H_u, d_r]
        columns = self.column(tf.linalg.matrix_transpose(rows))  # [..., d_r, d_c]
        flat_shape = tf.concat([tf.shape(columns)[:-2], [self.row_units * self.column_units]], axis=0)
        return tf.squeeze(self.out(tf.reshape(columns, flat_shape)), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "row_units": self.row_units, "column_units": self.column_units}
