"""Pre-ranking metrics on labelled impressions: AUC, LogLoss and GAUC."""

from __future__ import annotations

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U; tied scores count one half).

    Returns NaN when only one class is present.
    """
    labels = np.asarray(labels, dtype=np.float64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels {labels.shape} and scores {scores.shape} differ in shape")
    pos = labels > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # average 1-based ranks over ties
    boundaries = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1], True])
    for lo, hi in zip(boundaries[:-1], boundaries[1:], strict=True):
        ranks[order[lo:hi]] = (lo + 1 + hi) / 2.0
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def logloss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of click probabilities (clipped to ``[eps, 1 - eps]``)."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), eps, 1 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def gauc(users: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> float:
    """Group AUC: per-user AUC averaged with weights = the user's impressions.

    Users whose impressions all carry one label have no AUC and are skipped.
    """
    users = np.asarray(users)
    labels = np.asarray(labels)
    scores = np.asarray(scores)
    order = np.argsort(users, kind="mergesort")
    users, labels, scores = users[order], labels[order], scores[order]
    boundaries = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    total, weight = 0.0, 0
    for lo, hi in zip(boundaries[:-1], boundaries[1:], strict=True):
        value = auc(labels[lo:hi], scores[lo:hi])
        if not np.isnan(value):
            total += value * (hi - lo)
            weight += hi - lo
    return total / weight if weight else float("nan")
