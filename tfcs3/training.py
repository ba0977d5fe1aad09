"""Training with early stopping on a validation metric, checkpoints and TensorBoard logs, and
resumable runs (the state itself: :mod:`tfcs3.resume`)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3 import distribute
from tfcs3.data.prepared import PreparedData
from tfcs3.data.protocols import PRERANKING, PRERANKING_PER_USER
from tfcs3.evaluation.evaluate import evaluate
from tfcs3.models.two_tower import TwoTowerModel
from tfcs3.resume import ResumeCheckpoint, plain_json, prune, restore, training_config


def selection_metric(protocol: str) -> str:
    """The validation metric models are selected on: NDCG@10 (retrieval) or AUC (pre-ranking,
    either split)."""
    return "auc" if protocol in (PRERANKING, PRERANKING_PER_USER) else "ndcg@10"


class ValidationEarlyStopping(tf_keras.callbacks.Callback):
    """Evaluates on the validation split after each epoch, keeps the best weights, stops early.

    The best weights are restored when training ends. The metric is logged as ``val_<metric>`` so
    the progress bar, the history and TensorBoard all show it. With ``sample``, each epoch is
    judged on the same ``sample`` validation examples drawn at random (``seed``): cheaper
    selection on large datasets whose full-catalog evaluation is slow.
    """

    def __init__(
        self,
        data: PreparedData,
        patience: int = 3,
        checkpoint_dir: str | Path | None = None,
        sample: int | None = None,
        seed: int = 0,
        summary_dir: str | Path | None = None,
    ):
        super().__init__()
        #: Every validation metric of every epoch goes to TensorBoard here (the selection metric
        #: also goes to the logs, the progress bar and the history).
        self.writer = tf.summary.create_file_writer(str(summary_dir)) if summary_dir else None
        if sample is not None and sample < 1:
            raise ValueError(f"validation sample must be >= 1 examples, got {sample}")
        if sample is not None and sample < len(data.validation):
            rows = np.sort(np.random.default_rng(seed).choice(len(data.validation), sample, replace=False))
            data = dataclasses.replace(data, validation=data.validation.subset(rows))
            labels = data.validation.labels
            if labels is not None and len(np.unique(labels)) < 2:
                raise ValueError(f"a validation sample of {sample} examples holds one label class: AUC is undefined")
        self.data = data
        self.metric = selection_metric(data.protocol)
        self.patience = patience
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.best = -math.inf
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None
        self.wait = 0
        self.restore_on_train_end = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        metrics = evaluate(self.model, self.data, "validation")
        value = metrics[self.metric]
        if self.writer is not None:
            with self.writer.as_default():
                for name, metric in metrics.items():
                    tf.summary.scalar(f"validation/{name}", metric, step=epoch)
            self.writer.flush()
        if logs is not None:
            logs[f"val_{self.metric}"] = value
        if value > self.best:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            self.best_weights = self.model.get_weights()
            if self.checkpoint_dir is not None:
                self.model.save_weights(str(self.checkpoint_dir / "best"))
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.restore_on_train_end:
            self.restore()

    def restore(self) -> None:
        """Sets the model back to the best epoch's weights (memories included)."""
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _write_hparams(logdir: Path, model: TwoTowerModel, batch_size: int, learning_rate: float, seed: int) -> None:
    """Writes the run's entry of TensorBoard's HParams dashboard: the model's hyperparameters and
    the training settings (lists and other values as text), beside the logged metrics."""
    from tensorboard.plugins.hparams import api as hp

    values: dict[str, Any] = {"model": type(model).__name__, "batch_size": batch_size, "learning_rate": learning_rate}
    values["seed"] = seed
    for key, value in plain_json(model.hparams).items():
        values[key] = value if isinstance(value, (bool, int, float, str)) else json.dumps(value)
    with tf.summary.create_file_writer(str(logdir)).as_default():
        hp.hparams(values)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded ``seed``. The epoch's shuffle order
    and every random draw of its training steps (dropout, sampled negatives, diffusion noise)
    derive from it alone, so a run resumed at an epoch boundary repeats the uninterrupted run
    exactly (same machine and threads)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % 2**31)


def _fit_epochs(
    model: TwoTowerModel,
    data: PreparedData,
    epochs: int,
    batch_size: int,
    seed: int,
    callbacks: list[tf_keras.callbacks.Callback],
    drop_remainder: bool,
    verbose: int,
    start_epoch: int = 0,
) -> dict[str, list[float]]:
    """One ``fit`` call per epoch, each seeded by :func:`epoch_seed` alone: the global seed is set,
    the train step is traced again (so its random ops start afresh from that seed) and the
    epoch's batches are drawn with it.

    A model with memories (``has_memories``) first replays the training stream in time order
    through the current towers (``model.replay_memories``: memories rebuilt from zero, every
    row's leak-free memory inputs kept), then trains on the shuffled rows with those inputs;
    validation after the epoch reads the memories that replay built, the same representation
    space the towers were just trained on (a replay *after* the epoch would hand them vectors
    from newer weights)."""
    stream = data.train.subset(data.train.time_order()) if model.has_memories else None
    logs: dict[str, list[float]] = {}
    for epoch in range(start_epoch, epochs):
        seeded = epoch_seed(seed, epoch)
        tf_keras.utils.set_random_seed(seeded)
        model.make_train_function(force=True)
        if stream is not None:
            inputs = model.replay_memories(stream, batch_size)
            train = dataclasses.replace(stream, features={**stream.features, **inputs})
        else:
            train = data.train
        ds = model.training_dataset(train, batch_size, seeded, drop_remainder)
        if model.distribute_strategy.num_replicas_in_sync > 1:
            # Every worker builds the same (seeded) batches; each takes its part of every one.
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
            ds = ds.with_options(options)
        history = model.fit(ds, initial_epoch=epoch, epochs=epoch + 1, callbacks=callbacks, verbose=verbose)
        for key, values in history.history.items():
            logs.setdefault(key, []).extend(values)
        if model.stop_training:
            break
    return logs


def _check_strategy(
    model: TwoTowerModel, strategy: tf.distribute.Strategy | None, batch_size: int, global_negatives: bool
) -> tf.distribute.Strategy:
    """The strategy ``train`` runs under (the one ``model`` was built under when ``None``), after
    checking that ``model`` can train under it."""
    if not isinstance(model, TwoTowerModel):
        raise TypeError(f"train() fits a tfcs3 TwoTowerModel, got {type(model).__name__} (nothing to train)")
    built_under = model.distribute_strategy  # Keras records the strategy scope a model is built in
    strategy = strategy or built_under
    if strategy is not built_under:
        raise ValueError(
            f"{type(model).__name__} was not built under this strategy: build it inside `with strategy.scope():` "
            "(tfcs3.experiment.run_experiment(strategy=...) does)"
        )
    model.global_negatives = bool(global_negatives)
    replicas = int(strategy.num_replicas_in_sync)
    if replicas > 1 and model.unsynchronized_state():
        raise ValueError(
            f"{type(model).__name__} updates {', '.join(model.unsynchronized_state())} outside its gradients, "
            f"which are not yet kept equal across the {replicas} replicas: train it with strategy 'default'"
        )
    if batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} is the global batch: it must be a multiple of the {replicas} replicas"
        )
    return strategy


def train(
    model: TwoTowerModel,
    data: PreparedData,
    epochs: int = 30,
    batch_size: int = 512,
    learning_rate: float = 3e-3,
    seed: int = 0,
    patience: int = 3,
    output_dir: str | Path | None = None,
    verbose: int = 1,
    validation_sample: int | None = None,
    resume_dir: str | Path | None = None,
    strategy: tf.distribute.Strategy | None = None,
    global_negatives: bool = True,
) -> dict[str, Any]:
    """Fits ``model`` on ``data.train`` with Adam, early stopping on the validation metric.

    Args:
        model: a trainable tfcs3 model (``tfrs.Model``).
        data: the prepared dataset.
        epochs: the most epochs to run.
        batch_size: examples per step (also the number of in-batch negatives for retrieval).
        learning_rate: Adam learning rate.
        seed: seeds TensorFlow, NumPy and the shuffle order.
        patience: epochs without validation improvement before stopping.
        output_dir: where to write ``checkpoints/`` and ``tensorboard/`` (optional).
        verbose: Keras verbosity (1 = progress bar).
        validation_sample: judge epochs on this many validation examples drawn at random (fixed
            by ``seed``) instead of all of them (``best_validation`` is then the sample's);
            ``None`` (default) uses the whole split.
        resume_dir: where to keep the training state, written at every epoch end (see
            :class:`~tfcs3.resume.ResumeCheckpoint`). If it already holds the state of this run (same model,
            hyperparameters, data and training settings), training continues after its last
            finished epoch; a run that stopped early, or reached ``epochs``, is not trained
            again (a larger ``epochs`` extends one that ran to its old maximum). ``train_seconds``
            then sums the finished epochs of every attempt. The directory should serve this run
            alone (files of other names are left alone); it stays in place, to be deleted once
            the result is stored.
        strategy: a ``tf.distribute`` strategy (:func:`tfcs3.distribute.make_strategy`) whose
            scope ``model`` was built in; ``None``: the current one (one device). ``batch_size``
            is the global batch, split evenly across the replicas. Under a cluster only the chief
            (:func:`tfcs3.distribute.is_chief`) writes ``output_dir`` and ``resume_dir``.
        global_negatives: with several replicas, softmax negatives come from every replica
            (``False``: each replica's own, TFRS's behaviour); see ``docs/scaling_out.md``.

    Every epoch draws its randomness from ``seed`` and its own index alone (:func:`epoch_seed`),
    so a run resumed from ``resume_dir`` after an interruption (a kill included) ends with the
    same weights and metrics as the uninterrupted run of the same seed. An interrupted epoch is
    run again from its start.

    The model's ``before_training(data, seed, verbose)`` hook is called first (CS3 trains its
    ranker there). A model with memories (``has_memories``, CS3's CTS / CMS) has them rebuilt at
    the start of every epoch by replaying the training stream in time order, and trains on
    shuffled rows that carry leak-free memory inputs (see ``CS3Mixin.replay_memories``).

    Returns:
        ``{"best_epoch", "best_validation", "epochs_run", "history", "train_seconds"}``, plus
        ``"resumed_at"`` (the epochs training was continued after) for a resumed run.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    strategy = _check_strategy(model, strategy, batch_size, global_negatives)
    if not distribute.is_chief():  # only the chief writes files; the workers' weights are the same
        output_dir = resume_dir = None
    tf_keras.utils.set_random_seed(seed)
    callbacks: list[tf_keras.callbacks.Callback] = []
    checkpoint_dir = None
    if output_dir is not None:
        output_dir = Path(output_dir)
        checkpoint_dir = output_dir / "checkpoints"
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    summaries = None if output_dir is None else Path(output_dir) / "tensorboard" / "validation_metrics"
    stopper = ValidationEarlyStopping(data, patience, checkpoint_dir, validation_sample, seed, summaries)
    callbacks.append(stopper)
    if output_dir is not None:
        callbacks.append(tf_keras.callbacks.TensorBoard(str(output_dir / "tensorboard"), update_freq="epoch"))
        _write_hparams(output_dir / "tensorboard", model, batch_size, learning_rate, seed)
    model.before_training(data, seed=seed, verbose=verbose)  # e.g. CS3 trains its downstream ranker first
    with strategy.scope():
        model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate))
    drop_remainder = data.protocol != PRERANKING
    start = time.time()
    state = None
    if resume_dir is not None:
        resume_dir = Path(resume_dir)
        resume_dir.mkdir(parents=True, exist_ok=True)
        config = training_config(
            model, data, batch_size, learning_rate, seed, patience=patience, validation_sample=validation_sample
        )
        state = restore(resume_dir, model, data, config)
        prune(resume_dir, state)  # leftovers of an attempt that died before writing its state
        if state is not None and state["epochs_done"] > epochs:
            raise ValueError(
                f"{resume_dir} holds a run already {state['epochs_done']} epochs long, more than epochs={epochs}"
            )
        if state is None:
            state = {"config": config, "epochs_done": 0, "history": {}, "train_seconds": 0.0, "resumed_at": []}
        else:
            stopper.best, stopper.best_epoch, stopper.wait = state["best"], state["best_epoch"], state["wait"]
            if state["best_weights"] is not None:
                with np.load(resume_dir / state["best_weights"]) as saved:
                    stopper.best_weights = [saved[f"arr_{i}"] for i in range(len(saved.files))]
            if verbose:
                print(
                    f"Resuming after epoch {state['epochs_done']} (best so far: epoch {state['best_epoch'] + 1}, "
                    f"{stopper.metric} {state['best']:.4f}) from {resume_dir}",
                    flush=True,
                )
        callbacks.append(ResumeCheckpoint(resume_dir, stopper, state))
    first = state["epochs_done"] if state else 0
    if state is not None and first and (state["stopped"] or first >= epochs):
        stopper.set_model(model)  # the stored run had already finished: keep its best weights
        stopper.restore()
        logs = state["history"]
    else:
        if state is not None and first:
            state["resumed_at"].append(first)
        stopper.restore_on_train_end = False  # fit is called once per epoch
        logs = _fit_epochs(model, data, epochs, batch_size, seed, callbacks, drop_remainder, verbose, first)
        stopper.restore()
        if state:
            logs = state["history"]
    fit = {
        "best_epoch": stopper.best_epoch + 1,
        "best_validation": {stopper.metric: stopper.best},
        "epochs_run": len(logs.get("loss", [])),
        "history": {k: [float(x) for x in v] for k, v in logs.items()},
        "train_seconds": state["train_seconds"] if state else time.time() - start,
    }
    if state and state["resumed_at"]:
        fit["resumed_at"] = list(state["resumed_at"])
    return fit
