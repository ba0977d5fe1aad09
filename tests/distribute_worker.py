"""Runs in a fresh process for ``tests/test_distribute.py`` (logical devices and ``TF_CONFIG``
must be set before TensorFlow starts its runtime).

    python tests/distribute_worker.py mirrored OUT.json [CASE,...]
        Two logical CPU devices: for each case, one step's loss and gradients on a global batch
        under ``MirroredStrategy`` (summed over the replicas) against one device, and the weights
        after ``train`` under each; writes the largest differences to OUT.json.
    python tests/distribute_worker.py worker INDEX PORTS OUT_DIR
        Worker INDEX of a ``MultiWorkerMirroredStrategy`` cluster on 127.0.0.1:PORTS: trains a
        tiny model for an epoch through ``run_experiment`` (output ``OUT_DIR/run-INDEX``) and
        writes its final weights to ``OUT_DIR/weights-INDEX.npz``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TFCS3_PROGRESS"] = "0"

BATCH = 64
#: (model, hparams) pairs checked under MirroredStrategy: dropout off, so both runs draw nothing.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "two_tower_in_batch": ("youtubednn", {"dropout": 0.0, "embeddings_regularizer": 1e-3}),
    "two_tower_full_softmax": ("youtubednn", {"dropout": 0.0, "loss": "full_softmax"}),
    "sasrec_full_softmax": ("sasrec", {"dropout": 0.0, "attention_dropout": 0.0}),
    "sasrec_in_batch": ("sasrec", {"dropout": 0.0, "attention_dropout": 0.0, "loss": "in_batch"}),
}


def _data() -> Any:
    from tfcs3.data import generate_synthetic, prepare

    return prepare(generate_synthetic(num_users=120, num_items=80, seed=3), "retrieval", max_history=10)


def _step(model: Any, batch: dict[str, Any]) -> tuple[Any, list[Any]]:
    """The model's own training step, up to the gradients of its trainable variables."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        total = model.step_losses(batch)["total_loss"]
    grads = tape.gradient(total, model.trainable_variables)
    return total, [
        tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
        for g, v in zip(grads, model.trainable_variables, strict=True)
    ]


def _gaps(strategy: Any, model: Any, batch: dict[str, Any], loss: Any, grads: list[Any]) -> tuple[float, float]:
    """Relative loss gap and largest gradient gap between one step of ``model`` under
    ``strategy`` (each replica given its half of ``batch``, results summed) and ``loss, grads``
    of one device on the whole batch."""
    import tensorflow as tf

    half = BATCH // 2

    def part(context: Any) -> dict[str, Any]:
        i = context.replica_id_in_sync_group
        return {k: v[i * half : (i + 1) * half] for k, v in batch.items()}

    values = strategy.experimental_distribute_values_from_function(part)
    r_loss, r_grads = strategy.run(tf.function(lambda b: _step(model, b)), args=(values,))
    summed_loss = strategy.reduce(tf.distribute.ReduceOp.SUM, r_loss, axis=None)
    summed = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in r_grads]
    loss_gap = abs(float(summed_loss) - float(loss)) / max(abs(float(loss)), 1e-6)
    grad_gap = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(summed, grads, strict=True))
    return loss_gap, grad_gap


def mirrored(out: Path, cases: list[str]) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tf_keras

    from tfcs3.models import build_model
    from tfcs3.training import train

    data = _data()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report: dict[str, Any] = {"replicas": strategy.num_replicas_in_sync}
    for case in cases:
        name, hparams = CASES[case]
        tf_keras.utils.set_random_seed(0)
        single = build_model(name, data, **hparams)
        with strategy.scope():
            replicated = build_model(name, data, **hparams)
        batch = next(iter(single.training_dataset(data.train, BATCH, 0, True)))
        single(batch)
        with strategy.scope():
            replicated(batch)
        replicated.set_weights(single.get_weights())
        initial = single.get_weights()
        loss, grads = _step(single, batch)
        replicated.global_negatives = True
        loss_gap, grad_gap = _gaps(strategy, replicated, batch, loss, grads)
        replicated.global_negatives = False
        local_loss_gap, local_grad_gap = _gaps(strategy, replicated, batch, loss, grads)
        scale = max(float(tf.reduce_max(tf.abs(g))) for g in grads)
        # End to end: an epoch of train() from the same weights, one device against two replicas.
        single.set_weights(initial)
        replicated.set_weights(initial)
        settings: dict[str, Any] = dict(epochs=1, batch_size=BATCH, seed=1, patience=5, verbose=0)
        fit_single = train(single, data, **settings)
        fit_replicated = train(replicated, data, strategy=strategy, **settings)
        # Weights are not compared: a gradient that is zero in exact arithmetic (the candidate
        # tower's output bias, which shifts a row's logits all alike) is float noise that Adam
        # scales up to full steps. What the weights compute is compared instead.
        ndcg = [fit["best_validation"]["ndcg@10"] for fit in (fit_single, fit_replicated)]
        report[case] = {
            "loss": float(loss),
            "relative_loss_gap": loss_gap,
            "grad_gap": grad_gap,
            "grad_scale": scale,
            "local_relative_loss_gap": local_loss_gap,
            "local_grad_gap": local_grad_gap,
            "validation_ndcg@10": ndcg,
            "losses": [fit_single["history"]["loss"], fit_replicated["history"]["loss"]],
        }
    out.write_text(json.dumps(report, indent=2))


def worker(index: int, ports: list[int], out: Path) -> None:
    from tfcs3.distribute import local_tf_config, make_strategy

    os.environ["TF_CONFIG"] = local_tf_config(ports, index)

    strategy = make_strategy("multi_worker")  # before any other TensorFlow work
    from tfcs3.experiment import run_experiment

    result = run_experiment(
        "youtubednn",
        "synthetic",
        data=_data(),
        output_dir=out / f"run-{index}",
        epochs=1,
        batch_size=BATCH,
        verbose=0,
        strategy=strategy,
        hparams={"dropout": 0.0},
    )
    import numpy as np

    weights = result["_model"].get_weights()
    np.savez(out / f"weights-{index}.npz", *weights)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "mirrored":
        mirrored(Path(sys.argv[2]), sys.argv[3].split(",") if len(sys.argv) > 3 else list(CASES))
    elif mode == "worker":
        worker(int(sys.argv[2]), [int(p) for p in sys.argv[3].split(",")], Path(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
