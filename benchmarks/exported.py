"""What the latency benchmarks share: a model exported and reloaded as TF Serving would, and its
raw requests cut into batches. Each benchmark then times its calls side by side with
:func:`tfcs3.evaluation.interleaved_latency` and writes its rows with
:func:`serving.write_latency_result`.

Example:
    >>> loaded = export_and_load(build_model("youtubednn", data), data)
    >>> raw = raw_requests(data, [f.name for f in data.spec.query], "test", rows=range(256))
    >>> calls = {"two-tower": (loaded.signatures["serving_default"], request_batches(raw, 1))}
"""

from __future__ import annotations

import tempfile
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.export import export_model


def export_and_load(model: Any, data: Any, index: str = "brute_force", **export_args: Any) -> Any:
    """Builds ``model``'s variables (weights do not change latency, so it need not be trained),
    exports it with ``index`` to a temporary folder and returns ``tf.saved_model.load`` of it."""
    example = {k: tf.constant(v[:1]) for k, v in data.train.features.items()}
    model(example)
    model.build_extras(example)
    path = export_model(model, data, tempfile.mkdtemp(prefix="tfcs3-latency-"), "m", index=index, **export_args)
    return tf.saved_model.load(str(path))


def request_batches(
    raw: Mapping[str, np.ndarray], batch: int, names: Collection[str] | None = None, count: int = 256
) -> list[dict[str, tf.Tensor]]:
    """Consecutive requests of ``batch`` rows from the first ``count`` rows of ``raw``
    (:func:`tfcs3.export.raw_requests`), with the inputs ``names`` (all by default)."""
    inputs = {k: v for k, v in raw.items() if names is None or k in names}
    return [{k: tf.constant(v[r : r + batch]) for k, v in inputs.items()} for r in range(0, count - batch + 1, batch)]
