"""A shared check for model tests: export, reload, and compare with the in-process model."""

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.evaluation import represent
from tfcs3.export import export_model, raw_requests


def export_matches_model(model: Any, data: Any, directory: Path, name: str, rows: int = 6, k: int = 5) -> dict:
    """Exports ``model``, reloads it, and asserts that ``query_embedding`` on raw requests of the
    first ``rows`` test examples equals the in-process query tower. Returns the export's path,
    the raw request, the in-process query vectors and the ``serving_default`` answer."""
    path = export_model(model, data, directory, name, k=k)
    loaded = tf.saved_model.load(str(path))
    raw = raw_requests(data, model.query_feature_names, "test", rows=range(rows))
    inputs = {key: tf.constant(raw[key]) for key in model.query_feature_names}
    exported = loaded.signatures["query_embedding"](**inputs)["embedding"].numpy()
    in_process = represent(model.query_model, {key: v[:rows] for key, v in data.test.features.items()}).numpy()
    np.testing.assert_allclose(exported, in_process, rtol=1e-4, atol=1e-5)
    top = loaded.signatures["serving_default"](**{key: tf.constant(v) for key, v in raw.items()})
    assert top["item_ids"].shape == (rows, min(k, data.num_items))
    return {"path": path, "raw": raw, "queries": in_process, "top": top}
