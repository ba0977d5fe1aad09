"""Latency of an exported SavedModel on raw-feature requests, signature by signature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.data.prepared import PreparedData
from tfcs3.evaluation.latency import keyword_call, latency_summary, time_calls
from tfcs3.export.requests import raw_requests
from tfcs3.models.retriever import Retriever

SIGNATURES = ("serving_default", "query_embedding", "score_candidates")


def export_latency(
    path: str | Path, model: Retriever, data: PreparedData, seconds: float = 2.0, candidates: int = 500
) -> list[dict[str, Any]]:
    """Latency of the SavedModel at ``path`` (exported from ``model``) on raw requests of test
    examples: every signature at batch 1 and 64 (the test split's size if smaller), one row each
    (``signature``, ``batch`` and :func:`~tfcs3.evaluation.latency_summary`); ``score_candidates``
    gets ``candidates`` random catalog items per request."""
    if candidates < 1 or seconds < 0:
        raise ValueError(f"candidates must be >= 1 and seconds >= 0; got {candidates}, {seconds}")
    if len(data.test) == 0:
        raise ValueError(f"{data.name} has no test examples to build requests from")
    loaded = tf.saved_model.load(str(path))
    n = min(256, len(data.test))
    raw = raw_requests(data, model.query_feature_names, "test", rows=range(n))
    rng = np.random.default_rng(0)
    rows = []
    for signature in SIGNATURES:
        fn = loaded.signatures[signature]
        for batch in sorted({1, min(64, n)}):
            requests = []
            for start in range(0, n - batch + 1, batch):
                request = {k: tf.constant(v[start : start + batch]) for k, v in raw.items()}
                if signature != "serving_default":
                    request.pop("exclude")
                if signature == "score_candidates":
                    ids = data.catalog_ids[rng.integers(data.num_items, size=(batch, candidates))]
                    request["candidate_ids"] = tf.constant(ids.astype(str))
                requests.append(request)
            summary = latency_summary(time_calls(keyword_call(fn), requests, seconds), batch)
            rows.append({"signature": signature, "batch": batch, **summary})
    return rows
