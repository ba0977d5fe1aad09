"""Online learning: train in time order and evaluate prequentially (predict, then learn).

The stream is every example of the chosen splits in global time order (ties: train before
validation before test, then the per-user order), cut into batches. For each batch:

1. **predict**: rows from an evaluated split are scored with the model as it is now (pre-ranking:
   click probabilities; retrieval: the full-catalog rank of the target, excluding the user's
   earlier items, with the catalog re-embedded so item memories are current);
2. **learn**: one optimizer step on the whole batch; a CS3 model then writes the batch into its
   memories (``update_in_step``), so memories move in stream order;
3. every ``export_every`` steps, a new SavedModel version is exported (TF Serving picks it up).

Prequential metrics are therefore never computed on data the model has learned from, and every
prediction uses only the past. They are not comparable with the offline protocol's numbers (the
model there never trains on validation or test rows, and trains for many epochs).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.data.pipeline import LABEL
from tfcs3.data.prepared import PreparedData
from tfcs3.data.protocols import PRERANKING
from tfcs3.evaluation.ranking import auc, gauc, logloss
from tfcs3.evaluation.retrieval import metrics_from_ranks, target_ranks
from tfcs3.export.saved_model import export_model
from tfcs3.models.two_tower import TwoTowerModel

SPLITS = ("train", "validation", "test")


def _stream(data: PreparedData, splits: Sequence[str]) -> dict[str, np.ndarray]:
    """Concatenated splits in time order: features, labels, split index and row within the split."""
    parts = [data.split(name) for name in splits]
    for name, part in zip(splits, parts, strict=True):
        if part.timestamps is None:
            raise ValueError(f"the {name} split has no timestamps (prepared by an older tfcs3); clear the cache")
    out = {k: np.concatenate([p.features[k] for p in parts]) for k in parts[0].features}
    if data.protocol == PRERANKING:
        out[LABEL] = np.concatenate([p.labels for p in parts]).astype(np.float32)
    source = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    local = np.concatenate([np.arange(len(p)) for p in parts])
    order = np.lexsort((local, source, np.concatenate([p.timestamps for p in parts])))
    out = {k: v[order] for k, v in out.items()}
    out["_source"], out["_row"] = source[order], local[order]
    return out


def learn_online(
    model: TwoTowerModel,
    data: PreparedData,
    batch_size: int = 512,
    learning_rate: float = 1e-3,
    splits: Sequence[str] = SPLITS,
    evaluate_on: Sequence[str] = ("validation", "test"),
    export_every: int | None = None,
    export_dir: str | Path | None = None,
    export_name: str = "online",
    index: str = "brute_force",
    seed: int = 0,
    verbose: int = 1,
) -> dict[str, Any]:
    """Trains ``model`` on one time-ordered pass over ``splits``, predicting each batch first.

    Args:
        model: a trainable tfcs3 model (any; CS3 models also update their memories per batch,
            and their ranker learns each batch after it was written, so it is online too).
        data: the prepared dataset.
        batch_size: examples per step.
        learning_rate: Adam learning rate.
        splits: the splits that make up the stream.
        evaluate_on: the splits whose rows are scored before they are learned.
        export_every: export a new SavedModel version every this many steps (``None``: never).
        export_dir: base directory of the exports (``export_dir/export_name/<version>``).
        export_name: TF Serving model name of the exports.
        index: ``"brute_force"`` or ``"scann"`` for the exports.
        seed: random seed.
        verbose: 1 shows a progress bar.

    Returns:
        ``{"metrics": {split: metrics}, "predictions": {split: per-row click probability or
        0-based target rank}, "steps", "examples", "exports": [paths], "seconds"}``.
    """
    unknown = [s for s in [*splits, *evaluate_on] if s not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; splits are {SPLITS}")
    missing = [s for s in evaluate_on if s not in splits]
    if missing:
        raise ValueError(f"evaluate_on {missing} must also be in the stream's splits {list(splits)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if export_every is not None and (export_every < 1 or export_dir is None):
        raise ValueError("export_every must be >= 1 and needs export_dir")
    tf_keras.utils.set_random_seed(seed)
    if not isinstance(model, TwoTowerModel):
        raise TypeError(f"online learning trains a tfcs3 TwoTowerModel, got {type(model).__name__}")
    model.before_training(data, seed=seed, verbose=0, online=True)
    model.start_online()
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate))

    stream = _stream(data, splits)
    evaluated = {splits.index(s): s for s in evaluate_on}
    predictions = {s: np.full(len(data.split(s)), np.nan) for s in evaluate_on}
    names = [k for k in stream if not k.startswith("_")]
    predict = tf.function(lambda b: model(b, training=False), reduce_retracing=True)
    learn = tf.function(model.train_step, reduce_retracing=True)
    n = len(stream["_source"])
    steps = (n + batch_size - 1) // batch_size
    bar = tf_keras.utils.Progbar(steps, verbose=verbose, unit_name="step")
    exports: list[str] = []
    started = time.time()
    for step in range(steps):
        rows = slice(step * batch_size, min(n, (step + 1) * batch_size))
        batch = {k: tf.constant(stream[k][rows]) for k in names}
        source, local = stream["_source"][rows], stream["_row"][rows]
        for split_index, split_name in evaluated.items():
            mask = source == split_index
            if mask.any():
                predictions[split_name][local[mask]] = _predict(model, data, predict, batch, mask, split_name, local)
        logs = learn(batch)
        if export_every and export_dir is not None and (step + 1) % export_every == 0:
            exports.append(str(export_model(model, data, export_dir, export_name, index=index)))
        bar.update(step + 1, [("loss", float(logs["loss"]))])
    metrics = {}
    for split_name, values in predictions.items():
        part = data.split(split_name)
        if data.protocol == PRERANKING:
            assert part.labels is not None
            metrics[split_name] = {
                "auc": auc(part.labels, values),
                "logloss": logloss(part.labels, values),
                "gauc": gauc(part.users, part.labels, values),
            }
        else:
            metrics[split_name] = metrics_from_ranks(values.astype(np.int64))
    return {
        "metrics": metrics,
        "predictions": predictions,
        "steps": steps,
        "examples": n,
        "exports": exports,
        "seconds": time.time() - started,
    }


def _predict(
    model: TwoTowerModel,
    data: PreparedData,
    predict: Any,
    batch: dict[str, tf.Tensor],
    mask: np.ndarray,
    split_name: str,
    local: np.ndarray,
) -> np.ndarray:
    """Click probabilities (pre-ranking) or full-catalog target ranks (retrieval) of the rows in
    ``mask``, with the model's current weights and memories."""
    rows = np.flatnonzero(mask)
    if data.protocol == PRERANKING:
        logits = predict(batch).numpy()[rows]
        return 1.0 / (1.0 + np.exp(-logits))
    part = data.split(split_name)
    assert part.exclusion_indptr is not None and part.exclusion_rows is not None
    sub = {k: v.numpy()[rows] for k, v in batch.items() if k in model.query_feature_names}
    queries = model.represent_queries(sub)
    catalog = model.represent_candidates(data.catalog)
    examples = local[rows]
    lists = [part.exclusions(int(k)) for k in examples]
    indptr = np.r_[0, np.cumsum([len(x) for x in lists])].astype(np.int64)
    excluded = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64)
    return target_ranks(
        lambda start, end: model.score(queries[start:end], catalog).numpy(),
        part.target[examples],
        indptr,
        excluded,
        num_items=data.num_items,
    )
