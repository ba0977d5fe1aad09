"""Resumable training: the whole training state written at every epoch end, and read back.

:func:`tfcs3.training.train` with a ``resume_dir`` adds a :class:`ResumeCheckpoint` and, when the
folder already holds this run's state, :func:`restore` continues after its last finished epoch.

Example:
    >>> train(model, data, resume_dir="runs/resume/yt")  # interrupted, then run again: continues
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.data.prepared import PreparedData
from tfcs3.models.registry import build_variables
from tfcs3.models.two_tower import TwoTowerModel

if TYPE_CHECKING:
    from tfcs3.training import ValidationEarlyStopping

RESUME_STATE = "state.json"


class ResumeCheckpoint(tf_keras.callbacks.Callback):
    """Writes the whole training state to ``directory`` at the end of every epoch, so that
    :func:`~tfcs3.training.train` called again with the same ``resume_dir`` continues after the last finished
    epoch instead of starting over (a long benchmark run survives an interrupted session).

    The state: the model's and the optimizer's variables (a ``tf.train.Checkpoint``), the early
    stopper's best weights (``.npz``), best value, best epoch and patience counter, the history so
    far, the seconds trained and the run's configuration (a resume with another configuration is
    refused). ``state.json`` is replaced atomically and last, so a crash mid-write leaves the
    previous epoch's state readable. Must come after the :class:`ValidationEarlyStopping` in the
    callback list (it reads the stopper's verdict on the epoch).
    """

    def __init__(self, directory: str | Path, stopper: ValidationEarlyStopping, state: dict[str, Any]):
        super().__init__()
        self.directory = Path(directory)
        self.stopper = stopper
        self.state = state
        self.started = time.time()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        state, stopper = self.state, self.stopper
        for key, value in (logs or {}).items():
            state["history"].setdefault(key, []).append(float(value))
        checkpoint = f"epoch-{epoch + 1}"
        tf.train.Checkpoint(model=self.model, optimizer=self.model.optimizer).write(
            str(self.directory / checkpoint / "training")
        )
        best = state.get("best_weights")
        if stopper.best_epoch == epoch and stopper.best_weights is not None:  # improved: this epoch's weights
            best = f"best-{epoch + 1}.npz"
            with open(self.directory / (best + ".tmp"), "wb") as f:
                np.savez(f, *stopper.best_weights)
            os.replace(self.directory / (best + ".tmp"), self.directory / best)
        now = time.time()
        state.update(
            optimizer_slots=_optimizer_slots(self.model),
            epochs_done=epoch + 1,
            checkpoint=f"{checkpoint}/training",
            best=stopper.best,
            best_epoch=stopper.best_epoch,
            wait=stopper.wait,
            best_weights=best,
            stopped=bool(self.model.stop_training),
            train_seconds=state["train_seconds"] + now - self.started,
        )
        self.started = now
        os.sync()  # the files the new state points to are on disk before it replaces the old one
        tmp = self.directory / (RESUME_STATE + ".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.directory / RESUME_STATE)
        prune(self.directory, state)


_OWN_FILES = re.compile(r"epoch-\d+|best-\d+\.npz|.*\.tmp")


def prune(directory: Path, state: dict[str, Any] | None) -> None:
    """Deletes the files of ours in ``directory`` that ``state`` does not point to (older epochs,
    leftovers of an attempt that died mid-epoch); other files are left alone."""
    keep = set() if state is None else {state.get("checkpoint", "").split("/")[0], state.get("best_weights")}
    for path in directory.iterdir():
        if _OWN_FILES.fullmatch(path.name) and path.name not in keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def _optimizer_slots(model: TwoTowerModel) -> list[int]:
    """Positions in ``model.trainable_variables`` of the variables the optimizer keeps slots for,
    in the optimizer's order. Keras builds the optimizer on its first step with the variables that
    got a gradient (not always all of them: a CS3 ranker trains apart), and the checkpoint keys its
    slots by that order, so a resumed optimizer must be built with the same list."""
    optimizer = model.optimizer
    index = getattr(optimizer, "_index_dict", None)
    if index is None:
        raise TypeError(f"resuming needs a tf_keras optimizer built on its variables, got {type(optimizer).__name__}")
    positions = {optimizer._var_key(v): i for i, v in enumerate(model.trainable_variables)}
    return [positions[key] for key, _ in sorted(index.items(), key=lambda item: item[1])]


def plain_json(value: Any) -> Any:
    """``value`` as plain JSON types (Keras wraps a layer's dicts and lists for tracking)."""
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def training_config(
    model: TwoTowerModel, data: PreparedData, batch_size: int, learning_rate: float, seed: int, **more: Any
) -> dict[str, Any]:
    """What must not change between an interrupted run and its continuation."""
    return {
        "model": type(model).__name__,
        "hparams": plain_json(model.hparams),
        "data": data.name,
        "protocol": data.protocol,
        "spec": hashlib.sha1(data.spec.to_json().encode()).hexdigest(),  # features, vocabularies, lengths
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        **plain_json(more),
    }


def restore(directory: Path, model: TwoTowerModel, data: PreparedData, config: dict[str, Any]) -> dict[str, Any] | None:
    """Restores the state a :class:`ResumeCheckpoint` wrote (model, optimizer) and returns it;
    ``None`` when ``directory`` holds none."""
    path = directory / RESUME_STATE
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    saved = state["config"]
    differing = sorted(k for k in {*saved, *config} if saved.get(k) != config.get(k))
    if differing:
        changes = "; ".join(f"{k}: {saved.get(k)!r} there, {config.get(k)!r} here" for k in differing)
        raise ValueError(
            f"{directory} holds the state of another training run ({changes}): give another resume_dir, "
            "or delete it to start over"
        )
    build_variables(model, data)
    variables = model.trainable_variables
    model.optimizer.build([variables[i] for i in state["optimizer_slots"]])
    checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
    checkpoint.read(str(directory / state["checkpoint"])).assert_existing_objects_matched()
    return state
