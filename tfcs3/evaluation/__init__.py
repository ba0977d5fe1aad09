"""Full-catalog retrieval metrics and pre-ranking metrics."""

from tfcs3.evaluation.evaluate import evaluate, predict_clicks, represent, retrieval_ranks
from tfcs3.evaluation.ranking import auc, gauc, logloss
from tfcs3.evaluation.retrieval import KS, metrics_from_ranks, target_ranks, top_k_with_exclusions

__all__ = [
    "KS", "auc", "evaluate", "gauc", "logloss", "metrics_from_ranks", "predict_clicks",
    "represent", "retrieval_ranks", "target_ranks", "top_k_with_exclusions",
]  # fmt: skip
