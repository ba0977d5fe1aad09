"""Training throughput with 1 and 2 workers on localhost (issue "Scale out with tf.distribute").

For each worker count ``n`` in ``--workers``, ``n`` processes form a
``MultiWorkerMirroredStrategy`` cluster on 127.0.0.1 (``TF_CONFIG``), build the model inside its
scope and fit ``--epochs`` epochs of the training split at the global ``--batch_size`` (global
negatives on). The first epoch warms up (tracing, collectives); the later ones are timed, and
worker 0 reports training examples per second. Scaling efficiency is
``throughput(n) / (n * throughput(1))``; every process shares this machine's cores, so the
efficiency reads against ``os.cpu_count()``, recorded with the result.

The bytes each replica receives per step from the in-batch all-gather (candidate vectors and item
ids, float32 / int32) are computed from the shapes: ``(R - 1) * (B / R) * (4 D + 4)``.

    python benchmarks/distribute_throughput.py --dataset=ml-100k --workers=1,2
    # -> benchmarks/results/distribute-throughput.json

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "ml-100k", "Dataset (retrieval protocol).")
flags.DEFINE_string("model", "youtubednn", "Registered model.")
flags.DEFINE_list("workers", ["1", "2"], "Worker counts to time.")
flags.DEFINE_integer("batch_size", 512, "Global batch.")
flags.DEFINE_integer("embedding_dim", 64, "Embedding width D.")
flags.DEFINE_integer("epochs", 3, "Epochs per run (the first is warm-up).")
flags.DEFINE_string("data_dir", None, "Data folder (default $TFCS3_DATA_DIR).")
flags.DEFINE_integer("timeout", 1800, "Seconds a cluster may take.")
# Internal: one worker of a cluster.
flags.DEFINE_integer("worker_index", None, "Internal: this process's index in the cluster.")
flags.DEFINE_string("ports", None, "Internal: the cluster's ports.")
flags.DEFINE_string("out", None, "Internal: where worker 0 writes its timing.")


def _worker() -> None:
    ports = [int(p) for p in FLAGS.ports.split(",")]
    from tfcs3.distribute import local_tf_config, make_strategy

    os.environ["TF_CONFIG"] = local_tf_config(ports, FLAGS.worker_index)

    strategy = make_strategy("multi_worker")  # before any other TensorFlow work
    import tf_keras

    from tfcs3.data import load_prepared
    from tfcs3.models import build_model

    data = load_prepared(FLAGS.dataset, "retrieval", FLAGS.data_dir)
    with strategy.scope():
        model = build_model(FLAGS.model, data, embedding_dim=FLAGS.embedding_dim)
        model.compile(optimizer=tf_keras.optimizers.Adam(3e-3))
    seconds: list[float] = []
    steps = 0
    for epoch in range(FLAGS.epochs):
        dataset = model.training_dataset(data.train, FLAGS.batch_size, epoch, True)
        started = time.perf_counter()
        model.fit(dataset, epochs=1, verbose=0)
        seconds.append(time.perf_counter() - started)
        steps = int(dataset.cardinality())
    if FLAGS.worker_index == 0:
        timed = seconds[1:]
        examples = steps * FLAGS.batch_size * len(timed)
        Path(FLAGS.out).write_text(
            json.dumps(
                {"epoch_seconds": seconds, "steps_per_epoch": steps, "examples_per_second": examples / sum(timed)}
            )
        )


def _cluster(n: int, out: Path) -> dict[str, Any]:
    from tfcs3.distribute import free_local_ports

    ports = ",".join(str(p) for p in free_local_ports(n))
    common = [f"--dataset={FLAGS.dataset}", f"--model={FLAGS.model}", f"--batch_size={FLAGS.batch_size}",
              f"--embedding_dim={FLAGS.embedding_dim}", f"--epochs={FLAGS.epochs}", f"--ports={ports}",
              f"--out={out}"]  # fmt: skip
    if FLAGS.data_dir:
        common.append(f"--data_dir={FLAGS.data_dir}")
    processes = [
        subprocess.Popen([sys.executable, __file__, f"--worker_index={i}", *common], stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]
    deadline = time.time() + FLAGS.timeout
    for process in processes:
        _, err = process.communicate(timeout=max(1.0, deadline - time.time()))
        if process.returncode:
            raise RuntimeError(f"a worker of the {n}-worker cluster failed:\n{err[-3000:]}")
    return dict(json.loads(out.read_text()))


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    if FLAGS.worker_index is not None:
        _worker()
        return
    RESULTS.mkdir(exist_ok=True)
    runs = {}
    for n in (int(w) for w in FLAGS.workers):
        runs[n] = _cluster(n, RESULTS / f".distribute-{n}.json")
        (RESULTS / f".distribute-{n}.json").unlink()
        print(f"{n} worker(s): {runs[n]['examples_per_second']:.0f} examples/s", flush=True)
    base = runs.get(1, {}).get("examples_per_second")
    d = FLAGS.embedding_dim
    result = {
        "dataset": FLAGS.dataset,
        "model": FLAGS.model,
        "batch_size": FLAGS.batch_size,
        "embedding_dim": d,
        "cpu_count": os.cpu_count(),
        "runs": {
            str(n): {**r, "scaling_efficiency": r["examples_per_second"] / (n * base) if base else None}
            for n, r in runs.items()
        },
        "all_gather_bytes_per_step": {
            str(b): {str(r): (r - 1) * (b // r) * (4 * d + 4) for r in (2, 4, 8)} for b in (128, 512, 2048, 8192)
        },
        "command": " ".join(sys.argv),
        "platform": platform.platform(),
    }
    path = RESULTS / "distribute-throughput.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"Wrote {path}")


if __name__ == "__main__":
    app.run(main)
