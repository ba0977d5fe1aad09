"""Evaluate models on prepared data under either protocol."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.data.prepared import PreparedData, Split
from tfcs3.data.protocols import PRERANKING
from tfcs3.evaluation.ranking import auc, gauc, logloss
from tfcs3.evaluation.retrieval import KS, default_batch_size, metrics_from_ranks, target_ranks
from tfcs3.models import retriever
from tfcs3.models.popularity import PopularityRecommender
from tfcs3.models.retriever import Retriever


def _select(features: Mapping[str, np.ndarray], names: Sequence[str], lo: int, hi: int) -> dict[str, tf.Tensor]:
    return {n: tf.constant(features[n][lo:hi]) for n in names}


def represent(tower: tf.keras.Model, features: Mapping[str, np.ndarray], batch_size: int = 2048) -> tf.Tensor:
    """Runs a tfcs3 tower (``query_model`` or ``candidate_model``, which know their
    ``feature_names``) over feature arrays, in batches; see :func:`tfcs3.models.retriever.represent`
    for any other Keras tower."""
    return retriever.represent(tower, features, tower.feature_names, batch_size)


def catalog_scores_fn(model: Any, data: PreparedData, split: Split) -> tuple[Any, int]:
    """``(score_fn(start, end), floats per (query, item) pair)`` over the full catalog, for
    :func:`target_ranks` (the second sizes its blocks)."""
    if isinstance(model, PopularityRecommender):
        return (lambda start, end: model.score_catalog(end - start)), 1
    if not isinstance(model, Retriever):
        raise TypeError(f"{type(model).__name__} is not a tfcs3 Retriever (see tfcs3.models.TowerRetriever)")
    candidates = model.represent_candidates(data.catalog)
    queries = model.represent_queries(split.features)
    scorer, width = model.catalog_scorer(candidates, num_queries=len(split))  # SparCode: per-code tables
    return (lambda start, end: scorer(queries[start:end]).numpy()), width


def retrieval_ranks(model: Any, data: PreparedData, split: str = "test") -> np.ndarray:
    """0-based full-catalog rank of every example's target in ``split``."""
    part = data.split(split)
    score_fn, width = catalog_scores_fn(model, data, part)
    return target_ranks(
        score_fn,
        part.target,
        part.exclusion_indptr,
        part.exclusion_rows,
        batch_size=default_batch_size(data.num_items * width),
    )


def predict_clicks(model: Any, data: PreparedData, split: Split, batch_size: int = 4096) -> np.ndarray:
    """Click probabilities of a pre-ranking split's impressions."""
    if isinstance(model, PopularityRecommender):
        return model.click_probability(split.target)
    if not isinstance(model, tf.keras.Model):
        raise TypeError(
            f"{type(model).__name__} gives no click logit per impression: pre-ranking evaluation needs a model "
            "called on a batch of (query, candidate) features, such as a tfcs3 model in mode='preranking'"
        )
    logits = []
    names = model.query_feature_names + model.candidate_feature_names
    for lo in range(0, len(split), batch_size):
        logits.append(model(_select(split.features, names, lo, lo + batch_size), training=False).numpy())
    return 1.0 / (1.0 + np.exp(-np.concatenate(logits)))


def evaluate(model: Any, data: PreparedData, split: str = "test", ks: Sequence[int] = KS) -> dict[str, float]:
    """Retrieval metrics (Recall/NDCG/MRR@K) or pre-ranking metrics (AUC/LogLoss/GAUC)."""
    if data.protocol == PRERANKING:
        part = data.split(split)
        assert part.labels is not None
        probs = predict_clicks(model, data, part)
        return {
            "auc": auc(part.labels, probs),
            "logloss": logloss(part.labels, probs),
            "gauc": gauc(part.users, part.labels, probs),
        }
    return metrics_from_ranks(retrieval_ranks(model, data, split), ks)
