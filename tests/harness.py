"""The shared test harness for models: batches, and the contract checks a model gets by one call.

``check_model(name, data, directory)`` builds a registered model from the data's feature spec and
checks what every model promises (docs/design.md): the candidate tower never reads a query input,
gradients reach both towers and one optimizer step moves both, and the weights round-trip through
``save_model`` / ``load_model`` to the same vectors; with ``export=True`` also the SavedModel round
trip (``export_matches_model``). A new model's test file gets all of it with one call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.data.pipeline import LABEL
from tfcs3.evaluation import represent
from tfcs3.export import export_model, raw_requests
from tfcs3.models import build_model, load_model, save_model


def _index(rows: int | slice | np.ndarray) -> slice | np.ndarray:
    return slice(0, rows) if isinstance(rows, int) else rows


def head(split: Any, rows: int | slice | np.ndarray = 64) -> dict[str, np.ndarray]:
    """The split's features of ``rows`` (the first ``rows`` when an int), as numpy arrays."""
    index = _index(rows)
    return {k: v[index] for k, v in split.features.items()}


def features(split: Any, rows: int | slice | np.ndarray = 64) -> dict[str, tf.Tensor]:
    """:func:`head` as tensors: a batch of features, without the label."""
    return {k: tf.constant(v) for k, v in head(split, rows).items()}


def batch(split: Any, rows: int | slice | np.ndarray = 64) -> dict[str, tf.Tensor]:
    """A training batch: :func:`features` plus the click label of a pre-ranking split."""
    out = features(split, rows)
    if split.labels is not None:
        out[LABEL] = tf.constant(split.labels[_index(rows)])
    return out


def check_decoupled(model: Any, data: Any) -> None:
    """The candidate tower reads candidate features only and runs on the catalog alone."""
    query_names = {f.name for f in data.spec.query}
    assert set(model.candidate_feature_names) <= {f.name for f in data.spec.candidate}
    assert not set(model.candidate_feature_names) & query_names
    assert represent(model.candidate_model, data.catalog).shape[0] == data.num_items


def check_gradients(model: Any, data: Any, rows: int = 32) -> None:
    """The loss of a batch has gradients in both towers."""
    with tf.GradientTape() as tape:
        loss = model.compute_loss(batch(data.train, rows), training=True)
    grads = tape.gradient(loss, model.trainable_variables)
    named = {v.name: g for v, g in zip(model.trainable_variables, grads, strict=True)}
    assert any("query_tower" in n and g is not None for n, g in named.items())
    assert any("candidate_tower" in n and g is not None for n, g in named.items())


def check_step(model: Any, data: Any, rows: int = 32) -> None:
    """One Adam step on a batch leaves a finite loss and moves variables of both towers."""
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2))
    model.before_training(data)
    before = {v.ref(): v.numpy().copy() for v in model.trainable_variables}
    logs = model.train_step(batch(data.train, rows))
    assert all(np.isfinite(float(v)) for v in logs.values())
    moved = [v.name for v in model.trainable_variables if not np.array_equal(before[v.ref()], v.numpy())]
    assert any("query_tower" in n for n in moved) and any("candidate_tower" in n for n in moved), moved


def check_save_load(name: str, model: Any, data: Any, directory: Path, hparams: dict[str, Any]) -> Any:
    """``save_model`` then ``load_model`` give the same query and candidate vectors; returns the
    reloaded model."""
    save_model(model, directory, name, hparams)
    loaded = load_model(directory, data)
    queries = head(data.test, 16)
    np.testing.assert_allclose(
        represent(loaded.query_model, queries).numpy(), represent(model.query_model, queries).numpy(), atol=1e-6
    )
    np.testing.assert_allclose(
        represent(loaded.candidate_model, data.catalog).numpy(),
        represent(model.candidate_model, data.catalog).numpy(),
        atol=1e-6,
    )
    return loaded


def export_matches_model(model: Any, data: Any, directory: Path, name: str, rows: int = 6, k: int = 5) -> dict:
    """Exports ``model``, reloads it, and asserts that ``query_embedding`` on raw requests of the
    first ``rows`` test examples equals the in-process query tower. Returns the export's path,
    the raw request, the in-process query vectors and the ``serving_default`` answer."""
    path = export_model(model, data, directory, name, k=k)
    loaded = tf.saved_model.load(str(path))
    raw = raw_requests(data, model.query_feature_names, "test", rows=range(rows))
    inputs = {key: tf.constant(raw[key]) for key in model.query_feature_names}
    exported = loaded.signatures["query_embedding"](**inputs)["embedding"].numpy()
    in_process = represent(model.query_model, head(data.test, rows)).numpy()
    np.testing.assert_allclose(exported, in_process, rtol=1e-4, atol=1e-5)
    top = loaded.signatures["serving_default"](**{key: tf.constant(v) for key, v in raw.items()})
    assert top["item_ids"].shape == (rows, min(k, data.num_items))
    return {"path": path, "raw": raw, "queries": in_process, "top": top}


def check_model(name: str, data: Any, directory: Path, export: bool = False, **hparams: Any) -> Any:
    """Every contract check above for registered model ``name`` built on ``data``; returns the
    model after its step."""
    model = build_model(name, data, **hparams)
    model(features(data.train, 2))
    check_decoupled(model, data)
    check_gradients(model, data)
    check_step(model, data)
    check_save_load(name, model, data, directory / "saved", hparams)
    if export:
        export_matches_model(model, data, directory / "export", name)
    return model
