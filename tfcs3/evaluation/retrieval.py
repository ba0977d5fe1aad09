"""Exact full-catalog retrieval metrics: Recall@K (= HR@K), NDCG@K and MRR@K.

Each evaluation example has one target item. Scores over the whole catalog are computed in
batches of queries (never all queries x all items at once); the user's earlier items are
excluded (set to -inf), except the target itself. The target's 0-based rank is the number of
remaining items that score strictly higher, plus the tied ones with a smaller catalog row (a
stable, deterministic tie rule). Then, averaged over examples,

    Recall@K = [rank < K],  NDCG@K = [rank < K] / log2(rank + 2),  MRR@K = [rank < K] / (rank + 1).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tfcs3.progress import progress

KS = (10, 20, 50, 100)
ScoreFn = Callable[[int, int], np.ndarray]


def default_batch_size(num_items: int, budget: int = 1 << 23) -> int:
    """Queries per batch so that one score block holds about ``budget`` floats (32 MiB)."""
    return max(1, budget // max(num_items, 1))


def target_ranks(
    score_fn: ScoreFn,
    targets: np.ndarray,
    exclusion_indptr: np.ndarray | None = None,
    exclusion_rows: np.ndarray | None = None,
    batch_size: int | None = None,
    num_items: int | None = None,
) -> np.ndarray:
    """0-based rank of each target among the non-excluded catalog items.

    Args:
        score_fn: ``score_fn(start, end)`` returns the ``[end - start, num_items]`` scores of
            queries ``start .. end - 1``.
        targets: catalog row of each query's target, ``[num_queries]``.
        exclusion_indptr, exclusion_rows: CSR lists of catalog rows to exclude per query.
        batch_size: queries per score block (default: about 32 MiB of scores).
        num_items: catalog size, used for the default batch size.
    """
    targets = np.asarray(targets, dtype=np.int64)
    n = len(targets)
    batch_size = batch_size or default_batch_size(num_items or 100_000)
    ranks = np.empty(n, dtype=np.int64)
    for start in progress(range(0, n, batch_size), desc="ranking the catalog", unit="block"):
        end = min(n, start + batch_size)
        scores = np.array(score_fn(start, end), dtype=np.float64, copy=True)
        if scores.ndim != 2 or scores.shape[0] != end - start:
            raise ValueError(f"score_fn({start}, {end}) returned shape {scores.shape}, expected [{end - start}, items]")
        if np.isnan(scores).any():
            raise ValueError("the model produced NaN scores; training has diverged")
        local = targets[start:end]
        if local.size and (local.min() < 0 or local.max() >= scores.shape[1]):
            raise ValueError(f"target rows must lie in [0, {scores.shape[1]}), got {local.min()}..{local.max()}")
        rows = np.arange(end - start)
        target_scores = scores[rows, local]
        if exclusion_indptr is not None and exclusion_rows is not None:
            lo, hi = exclusion_indptr[start], exclusion_indptr[end]
            counts = np.diff(exclusion_indptr[start : end + 1])
            scores[np.repeat(rows, counts), exclusion_rows[lo:hi]] = -np.inf
            scores[rows, local] = target_scores
        higher = (scores > target_scores[:, None]).sum(axis=1)
        cols = np.arange(scores.shape[1])[None, :]
        tied_before = ((scores == target_scores[:, None]) & (cols < local[:, None])).sum(axis=1)
        ranks[start:end] = higher + tied_before
    return ranks


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = KS) -> dict[str, float]:
    """Recall@K, NDCG@K and MRR@K from 0-based target ranks."""
    ranks = np.asarray(ranks)
    if ranks.size == 0:
        raise ValueError("no evaluation examples")
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
    return out


def top_k_with_exclusions(scores: np.ndarray, exclude: Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Catalog rows of the ``k`` best-scoring items of one query, skipping ``exclude``."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    scores[np.asarray(list(exclude), dtype=np.int64)] = -np.inf
    k = min(k, scores.size)
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.lexsort((best, -scores[best]))]
