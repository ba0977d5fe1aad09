"""TF Serving warm-up requests: ``assets.extra/tf_serving_warmup_requests`` in an export.

TF Serving replays the ``PredictionLog`` records of that file when it loads a version, before it
reports the version available, so the first real requests do not pay for graph tracing and
memory allocation. The records here are real requests: raw query features of training examples
(:func:`~tfcs3.export.requests.raw_requests`), at batch 1 and at a small batch, for every
signature of the export.

Example:
    >>> write_warmup_requests(path / "assets.extra", data, model.query_feature_names, "tfcs3")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.data.prepared import PreparedData
from tfcs3.export.requests import raw_requests

WARMUP_FILE = "tf_serving_warmup_requests"
SIGNATURES = ("serving_default", "top_k", "query_embedding", "score_candidates")


def warmup_inputs(
    data: PreparedData, feature_names: Sequence[str], batches: Sequence[int] = (1, 8), candidates: int = 10
) -> list[tuple[str, dict[str, list[Any]]]]:
    """``(signature, inputs)`` pairs: for each batch size and signature, the raw request of that
    many training examples (``score_candidates`` with ``candidates`` random catalog ids each)."""
    rng = np.random.default_rng(0)
    out = []
    for batch in batches:
        rows = list(range(min(batch, len(data.train))))
        request = raw_requests(data, feature_names, "train", rows=rows)
        for signature in SIGNATURES:
            inputs = {name: request[name] for name in feature_names}
            if signature == "serving_default":
                inputs["exclude"] = request["exclude"]
            elif signature == "score_candidates":
                ids = data.catalog_ids[rng.integers(data.num_items, size=(len(rows), candidates))]
                inputs["candidate_ids"] = ids.astype(str).tolist()
            out.append((signature, inputs))
    return out


def write_warmup_requests(
    extras: str | Path, data: PreparedData, feature_names: Sequence[str], model_name: str
) -> Path:
    """Writes the warm-up ``PredictionLog`` records (TFRecord) to ``extras/`` and returns the file."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(extras) / WARMUP_FILE
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in warmup_inputs(data, feature_names):
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for name, values in inputs.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(values, dtype=object), dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path
