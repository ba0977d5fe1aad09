"""One experiment = load data, build a registered model, train, evaluate, write a run directory.

The CLI and the benchmarks both call :func:`run_experiment`, so a number in ``BENCHMARKS.md``
and a number from ``python -m tfcs3 train`` come from the same code.

Run directory layout::

    run_config.json    what was run (dataset, protocol, model, hyperparameters, seed ...)
    model_config.json  the model's name, hyperparameters and feature spec
    weights.*          the trained (best-on-validation) weights
    checkpoints/       the best weights, written as training goes
    tensorboard/       TensorBoard logs
    metrics.json       validation and test metrics, timings, versions, command
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.data.datasets import load_prepared
from tfcs3.data.described import is_description
from tfcs3.data.prepared import PreparedData
from tfcs3.data.protocols import RETRIEVAL
from tfcs3.data.sequences import HISTORY_GAP
from tfcs3.distribute import is_chief, make_strategy
from tfcs3.evaluation.evaluate import evaluate
from tfcs3.evaluation.retrieval import KS
from tfcs3.models.registry import build_model, is_trainable, load_model, save_model
from tfcs3.training import selection_metric, train


def environment_info() -> dict[str, str]:
    """Versions of the stack, for result files."""
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    import tfcs3

    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "tensorflow_recommenders": tfrs.__version__,
        "tfcs3": tfcs3.__version__,
        "numpy": np.__version__,
        "machine": f"{platform.machine()} {platform.system()}",
    }


def run_experiment(
    model_name: str,
    dataset: str,
    protocol: str = RETRIEVAL,
    data_dir: str | None = None,
    output_dir: str | Path | None = None,
    seed: int = 0,
    epochs: int = 30,
    batch_size: int = 512,
    learning_rate: float = 3e-3,
    patience: int = 3,
    max_history: int = 50,
    hparams: dict[str, Any] | None = None,
    data: PreparedData | None = None,
    download: bool = False,
    verbose: int = 1,
    ks: Sequence[int] = KS,
    validation_sample: int | None = None,
    history_gaps: bool = False,
    resume_dir: str | Path | None = None,
    strategy: str | tf.distribute.Strategy = "default",
    global_negatives: bool = True,
) -> dict[str, Any]:
    """Trains and evaluates one model; returns (and writes, with ``output_dir``) its metrics
    (retrieval metrics at the cut-offs ``ks``). ``validation_sample`` is passed to
    :func:`~tfcs3.training.train` (epochs judged on that many validation examples); the reported
    validation metrics always cover the whole split. ``history_gaps`` prepares the data with the
    history's time-gap feature (:func:`~tfcs3.data.load_prepared`). ``resume_dir`` keeps the
    training state at every epoch end and continues an interrupted run found there
    (:func:`~tfcs3.training.train`). ``strategy`` (a name of :data:`tfcs3.distribute.STRATEGIES`
    or a strategy) builds and trains the model under ``tf.distribute``, with ``global_negatives``
    across its replicas; under a cluster only the chief writes ``output_dir``."""
    hparams = dict(hparams or {})
    if validation_sample is not None and validation_sample < 1:
        raise ValueError(f"validation_sample must be >= 1 examples, got {validation_sample}")
    started = time.time()
    if data is None:
        data = load_prepared(dataset, protocol, data_dir, max_history, download, seed=seed, history_gaps=history_gaps)
    history_gaps = HISTORY_GAP in data.spec.names  # what the data holds (also when passed in)
    if isinstance(strategy, str):
        strategy = make_strategy(strategy)
    with strategy.scope():
        model = build_model(model_name, data, **hparams)
    result: dict[str, Any] = {
        "model": model_name,
        "dataset": data.name,
        "dataset_description": data.description,
        "protocol": data.protocol,
        "seed": seed,
        "hparams": hparams,
        "training": {
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "patience": patience,
            "max_history": max_history,
            "history_gaps": history_gaps,
            "validation_sample": validation_sample,
        },
        "selection_metric": selection_metric(data.protocol),
    }
    out = Path(output_dir) if output_dir and is_chief() else None
    if strategy.num_replicas_in_sync > 1:
        result["training"].update(replicas=int(strategy.num_replicas_in_sync), global_negatives=global_negatives)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        run_config = {
            "model": model_name,
            # a description by absolute path, so the run loads from any working directory
            "dataset": str(Path(dataset).resolve()) if is_description(dataset) else dataset,
            "protocol": protocol,
            "data_dir": data_dir,
            "max_history": max_history,
            "history_gaps": history_gaps,
            "seed": seed,
            "hparams": hparams,
        }
        (out / "run_config.json").write_text(json.dumps(run_config, indent=2))
    if is_trainable(model):
        result["fit"] = train(
            model,
            data,
            epochs,
            batch_size,
            learning_rate,
            seed,
            patience,
            output_dir=out,
            verbose=verbose,
            validation_sample=validation_sample,
            resume_dir=resume_dir,
            strategy=strategy,
            global_negatives=global_negatives,
        )
        if out is not None:
            save_model(model, out, model_name, hparams)
    result["validation"] = evaluate(model, data, "validation", ks)
    result["test"] = evaluate(model, data, "test", ks)
    result["wall_seconds"] = time.time() - started
    result["versions"] = environment_info()
    result["command"] = " ".join(sys.argv)
    if out is not None:
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
    result["_model"] = model
    result["_data"] = data
    return result


def load_run(run_dir: str | Path, data_dir: str | None = None) -> tuple[Any, PreparedData, dict[str, Any]]:
    """Reloads a run directory's model and data (as prepared for that run)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "run_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: {run_dir} is not a tfcs3 run directory")
    config = json.loads(config_path.read_text())
    data = load_prepared(
        config["dataset"],
        config["protocol"],
        data_dir or config["data_dir"],
        config["max_history"],
        seed=config["seed"],
        history_gaps=config.get("history_gaps", False),
    )
    if (run_dir / "model_config.json").is_file():
        model = load_model(run_dir, data)
    else:
        model = build_model(config["model"], data, **config["hparams"])
    return model, data, config
