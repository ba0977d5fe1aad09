"""Exact top-k over an embedding table with stock TensorFlow ops (servable by stock TF Serving)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.retrieval.base import IndexedModel, TopKIndex, register_index


def mask_rows(scores: tf.Tensor, rows: tf.Tensor) -> tf.Tensor:
    """Sets ``scores[b, rows[b, j]]`` to -inf for every ``rows[b, j] >= 0`` (negative = padding).

    Args:
        scores: ``[batch, num_items]`` float scores.
        rows: ``[batch, n]`` int catalog rows to exclude; negative entries are ignored.
    """
    rows = tf.cast(rows, tf.int64)
    where = tf.where(rows >= 0)  # [m, 2] = (batch index, position)
    pairs = tf.stack([where[:, 0], tf.gather_nd(rows, where)], axis=1)
    fill = tf.fill(tf.shape(pairs)[:1], tf.constant(-np.inf, scores.dtype))
    return tf.tensor_scatter_nd_update(scores, pairs, fill)


@register_index("brute_force")
class BruteForceIndex(TopKIndex):
    """``top_k(score(Q, E))`` over all ``N`` rows of ``E``, with per-query exclusions.

    Exact, and made only of stock ops (``MatMul``, ``TopKV2``, ``TensorScatterUpdate``, and
    whatever ``score_fn`` uses), so an export using it loads in stock TF Serving.

    Args:
        embeddings: ``[N, d]`` float32 candidate representations (catalog-row order), or an
            existing variable holding them (shared, not copied).
        score_fn: all-pairs scorer ``(Q [B, dq], E [N, d]) -> [B, N]``; default ``Q E^T``.
    """

    def __init__(
        self,
        embeddings: np.ndarray | tf.Variable,
        score_fn: Callable[[tf.Tensor, tf.Tensor], tf.Tensor] | None = None,
        name: str | None = None,
    ):
        super().__init__(name=name)
        self._score_fn = score_fn
        if not isinstance(embeddings, tf.Variable):
            embeddings = np.asarray(embeddings, dtype=np.float32)
            if embeddings.ndim != 2 or len(embeddings) == 0:
                raise ValueError(f"embeddings must be a non-empty [N, d] matrix, got shape {embeddings.shape}")
            embeddings = tf.Variable(embeddings, trainable=False, name="embeddings")
        self.embeddings = embeddings
        self.num_items = int(embeddings.shape[0])

    @classmethod
    def for_model(cls, model: IndexedModel, embeddings: tf.Variable, k: int, **options: Any) -> BruteForceIndex:
        """Exact scoring with the model's own score (the dot product's matmul for dot models)."""
        return cls(embeddings, None if model.is_dot else model.score)

    def search(self, queries: tf.Tensor, k: int, exclude_rows: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Returns ``(scores [B, k'], rows [B, k'])`` best first, ``k' = min(k, N)``."""
        if self._score_fn is None:
            scores = tf.matmul(queries, self.embeddings, transpose_b=True)
        else:
            scores = self._score_fn(queries, tf.convert_to_tensor(self.embeddings))
        if exclude_rows is not None:
            scores = mask_rows(scores, exclude_rows)
        return tf.math.top_k(scores, k=min(k, self.num_items))
