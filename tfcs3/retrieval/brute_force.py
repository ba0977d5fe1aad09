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


#: From this catalog size on, :class:`BruteForceIndex` takes its top-k by blocks (:func:`block_top_k`).
BLOCK_TOP_K_ITEMS = 50_000


def excluded(rows: tf.Tensor, exclude_rows: tf.Tensor) -> tf.Tensor:
    """``[B, C]`` bool: whether ``rows[b, c]`` is one of ``exclude_rows[b, :]`` (negative entries of
    ``exclude_rows`` are padding); a binary search in each row's sorted exclusions."""
    padding = -tf.ones(tf.stack([tf.shape(exclude_rows)[0], 1]), tf.int64)  # a list may be empty ([B, 0])
    sorted_rows = tf.sort(tf.concat([tf.cast(exclude_rows, tf.int64), padding], axis=1), axis=1)
    position = tf.searchsorted(sorted_rows, rows, side="left")
    position = tf.minimum(position, tf.shape(sorted_rows, out_type=position.dtype)[1] - 1)
    return tf.equal(tf.gather(sorted_rows, position, batch_dims=1), rows)


def block_top_k(
    scores: tf.Tensor, k: int, exclude_rows: tf.Tensor | None = None, group: int = 32
) -> tuple[tf.Tensor, tf.Tensor]:
    """``top_k(scores with exclude_rows masked, k)`` without a full-width ``top_k``: the same
    values and rows wherever the value is above -inf (an entry at -inf is padding either way).

    The catalog's columns are cut into blocks of ``group``. Any block holding one of the best
    ``k`` unexcluded scores has a maximum among the best ``k + n`` block maxima (``n`` =
    exclusions per row): if ``k + n`` blocks had larger maxima, at least ``k`` of those maxima
    would be unexcluded scores larger than it. So a ``top_k`` over the ``N / group`` block maxima
    picks ``k + n`` blocks, their ``(k + n) * group`` scores are gathered (in column order, so ties
    keep the lower column first, as ``top_k`` does), the excluded and padding columns are set to
    -inf, and a small ``top_k`` finishes. On 2 CPU cores this takes the search of 10^6 items at
    batch 64 from about 200 ms past the matmul to about 40 (``benchmarks/brute_force.py``).

    Args:
        scores: ``[B, N]`` float scores.
        k: results per row (at most ``N``).
        exclude_rows: ``[B, n]`` int columns to exclude per row; negative entries are padding.
        group: columns per block (at most ``N``; narrowed to ``N`` when the width is static).

    Returns:
        ``(values [B, k], rows [B, k])`` best first; rows are -1 where fewer than ``k`` columns
        are left (their values are -inf).

    Example:
        >>> values, rows = block_top_k(tf.random.normal([64, 10**6]), 100)
    """
    n = tf.shape(scores, out_type=tf.int64)[1]
    batch = tf.shape(scores)[0]
    width = scores.shape[1]
    if width is not None:
        group = max(1, min(group, width))  # pooling needs a block no wider than the catalog
    if width is not None and width % group == 0:  # blocks are a free reshape
        maxima = tf.reduce_max(tf.reshape(scores, [batch, width // group, group]), axis=2)
    else:  # whole blocks by pooling, and the last, shorter block apart
        whole = tf.nn.max_pool1d(scores[:, :, None], group, group, "VALID")[:, :, 0]
        last = tf.reduce_max(scores[:, (n // group) * group :], axis=1, keepdims=True)
        maxima = tf.concat([whole, last], axis=1)
    spare = 0 if exclude_rows is None else tf.shape(exclude_rows)[1]
    picks = tf.minimum(k + spare, tf.shape(maxima)[1])
    blocks = tf.sort(tf.math.top_k(maxima, picks).indices, axis=1)
    offsets = tf.range(group, dtype=tf.int64)
    columns = tf.reshape(tf.cast(blocks, tf.int64)[:, :, None] * group + offsets, [batch, -1])
    candidates = tf.gather(scores, tf.minimum(columns, n - 1), batch_dims=1)
    dropped = columns >= n
    if exclude_rows is not None:
        dropped = dropped | excluded(columns, exclude_rows)
    candidates = tf.where(dropped, tf.constant(-np.inf, scores.dtype), candidates)
    values, position = tf.math.top_k(candidates, k)
    rows = tf.gather(tf.where(dropped, tf.constant(-1, tf.int64), columns), position, batch_dims=1)
    return values, tf.cast(rows, tf.int32)


@register_index("brute_force")
class BruteForceIndex(TopKIndex):
    """``top_k(score(Q, E))`` over all ``N`` rows of ``E``, with per-query exclusions.

    Exact, and made only of stock ops (``MatMul``, ``TopKV2``, ``TensorScatterUpdate``, and
    whatever ``score_fn`` uses), so an export using it loads in stock TF Serving. From
    :data:`BLOCK_TOP_K_ITEMS` items on, the top-k is taken by blocks (:func:`block_top_k`, the same
    answer for a fraction of the time), and past the last unexcluded item a row's entries are -1
    with score -inf (below, excluded rows with score -inf): padding either way.

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
        if self.num_items >= BLOCK_TOP_K_ITEMS:
            return block_top_k(scores, min(k, self.num_items), exclude_rows)
        if exclude_rows is not None:
            scores = mask_rows(scores, exclude_rows)
        return tf.math.top_k(scores, k=min(k, self.num_items))
