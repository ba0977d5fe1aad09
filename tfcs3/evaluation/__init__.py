"""Full-catalog retrieval metrics, pre-ranking metrics and latency measurement."""

from tfcs3.evaluation.evaluate import evaluate, predict_clicks, represent, retrieval_ranks
from tfcs3.evaluation.latency import interleaved_latency, latency_summary, time_calls
from tfcs3.evaluation.ranking import auc, gauc, logloss
from tfcs3.evaluation.retrieval import KS, metrics_from_ranks, target_ranks, top_k_with_exclusions

__all__ = [
    "KS", "auc", "evaluate", "gauc", "interleaved_latency", "latency_summary", "logloss",
    "metrics_from_ranks", "predict_clicks", "represent", "retrieval_ranks", "target_ranks",
    "time_calls", "top_k_with_exclusions",
]  # fmt: skip
