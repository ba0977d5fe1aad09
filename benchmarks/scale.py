"""Own logs at scale: preparation time and peak memory, training examples per second from shards,
evaluation time; and shards against the in-memory input on MovieLens-100K.

Four measurements, each stage in a fresh process so that its peak RSS is its own (``ru_maxrss``
of that child):

1. **generate** a synthetic log (:func:`tfcs3.data.synthetic.write_synthetic_log`: Parquet files,
   user and item tables, a description), by default 10^7 interactions, 10^6 users, 10^5 items;
2. **prepare** it out of core into shards (``load_prepared`` on the description, retrieval);
3. **train** a YouTubeDNN two-tower from the shards for ``--train_steps`` timed steps (after
   ``--warmup_steps``; peak RSS of training recorded apart) and **evaluate** it on the whole test
   split (full catalog, exact); then prepare and train again with user ids hashed into
   ``--hashed_buckets`` rows (``user_id_buckets``), which shows what the user table's size costs
   per step (Keras's Adam updates every row of a table at every step);
4. **reference**: the MovieLens-1M subset through the same prepare/train/evaluate stages, and
   MovieLens-100K training epochs from shards and from memory, interleaved over ``--rounds``.

    python benchmarks/scale.py                      # -> benchmarks/results/scale.json
    python benchmarks/scale.py --interactions=200000 --users=20000 --items=5000 --name=scale-small

Run it on an otherwise idle machine: the examples per second are what the targets read.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TFCS3_PROGRESS", "0")

from absl import app, flags  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS = flags.FLAGS
flags.DEFINE_string("name", "scale", "Result file name (benchmarks/results/<name>.json).")
flags.DEFINE_integer("interactions", 10_000_000, "Rows of the synthetic log.")
flags.DEFINE_integer("users", 1_000_000, "Users of the synthetic log.")
flags.DEFINE_integer("items", 100_000, "Items of the synthetic log.")
flags.DEFINE_string("work_dir", "/tmp/tfcs3-scale", "Where the log, the shards and the cache go (removed after).")
flags.DEFINE_integer("batch_size", 1024, "Training batch.")
flags.DEFINE_integer("embedding_dim", 32, "YouTubeDNN width.")
flags.DEFINE_integer("warmup_steps", 50, "Untimed training steps first (tracing, the first shards).")
flags.DEFINE_integer("train_steps", 1000, "Timed training steps.")
flags.DEFINE_integer("rounds", 3, "MovieLens-100K epochs per input path (interleaved).")
flags.DEFINE_bool("reference", True, "Also measure the MovieLens-1M subset and MovieLens-100K.")
flags.DEFINE_integer("hashed_buckets", 1 << 17, "Also train with user ids hashed into this many rows (0: skip).")
flags.DEFINE_bool("evaluate", True, "Internal: whether the train stage also evaluates.")
flags.DEFINE_string("stage", None, "Internal: run one stage in this process and print its JSON.")
flags.DEFINE_string("dataset", None, "Internal: the stage's dataset (name or description path).")


def _stage_prepare() -> dict[str, Any]:
    from tfcs3.data import load_prepared

    started = time.perf_counter()
    data = load_prepared(FLAGS.dataset, "retrieval")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows": {s: len(data.split(s)) for s in ("train", "validation", "test")},
        "items": data.num_items,
        "users": len(data.spec.feature(data.spec.user_id).vocabulary or []),
        "sharded": type(data.train).__name__ == "ShardedSplit",
    }


def _stage_train() -> dict[str, Any]:
    import resource

    import tf_keras

    from tfcs3.data import load_prepared, make_dataset
    from tfcs3.evaluation import evaluate
    from tfcs3.models import build_model

    tf_keras.utils.set_random_seed(0)
    data = load_prepared(FLAGS.dataset, "retrieval")
    model = build_model("youtubednn", data, embedding_dim=FLAGS.embedding_dim)
    model.compile(optimizer=tf_keras.optimizers.Adam(3e-3))
    ds = make_dataset(data.train, FLAGS.batch_size, shuffle=True, seed=0, drop_remainder=True).repeat()
    steps = iter(ds)
    model.fit(steps, steps_per_epoch=FLAGS.warmup_steps, epochs=1, verbose=0)
    started = time.perf_counter()
    model.fit(steps, steps_per_epoch=FLAGS.train_steps, epochs=1, verbose=0)
    train_seconds = time.perf_counter() - started
    out = {
        "examples_per_second": FLAGS.train_steps * FLAGS.batch_size / train_seconds,
        "train_seconds": train_seconds,
        "peak_rss_training_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "user_id_rows": len(data.spec.feature(data.spec.user_id).vocabulary or []),
    }
    if FLAGS.evaluate:
        started = time.perf_counter()
        metrics = evaluate(model, data, "test")
        out.update(
            evaluation_seconds=time.perf_counter() - started,
            test_users=len(data.test),
            **{"test_ndcg@10": float(metrics["ndcg@10"])},
        )
    return out


def _stage_epochs() -> dict[str, Any]:
    """MovieLens-100K: whole training epochs from memory and from shards, interleaved."""
    import numpy as np
    import tf_keras

    from tfcs3.data import load_prepared, make_dataset
    from tfcs3.models import build_model

    memory = load_prepared("ml-100k", "retrieval")
    shards = load_prepared(FLAGS.dataset, "retrieval")
    seconds: dict[str, list[float]] = {"memory": [], "shards": []}
    models = {}
    for path, data in (("memory", memory), ("shards", shards)):
        tf_keras.utils.set_random_seed(0)
        models[path] = build_model("youtubednn", data)
        models[path].compile(optimizer=tf_keras.optimizers.Adam(3e-3))
        models[path].fit(make_dataset(data.train, 512, True, 0, True), epochs=1, verbose=0)  # warm-up
    for r in range(FLAGS.rounds):
        for path, data in (("memory", memory), ("shards", shards)):
            ds = make_dataset(data.train, 512, shuffle=True, seed=r + 1, drop_remainder=True)
            started = time.perf_counter()
            models[path].fit(ds, epochs=1, verbose=0)
            seconds[path].append(time.perf_counter() - started)
    rows = len(memory.train) // 512 * 512
    out: dict[str, Any] = {"rows_per_epoch": rows, "seconds": seconds}
    for path in seconds:
        out[f"{path}_examples_per_second"] = rows / float(np.median(seconds[path]))
    out["shards_over_memory"] = out["shards_examples_per_second"] / out["memory_examples_per_second"]
    return out


STAGES = {"prepare": _stage_prepare, "train": _stage_train, "epochs": _stage_epochs}


def _run_stage(stage: str, dataset: str, env: dict[str, str], evaluate: bool = True) -> dict[str, Any]:
    """Runs ``stage`` in a child process; its JSON plus the child's wall time and peak RSS
    (the child's own ``ru_maxrss``)."""
    args = [sys.executable, __file__, f"--stage={stage}", f"--dataset={dataset}"]
    passed = ("batch_size", "embedding_dim", "warmup_steps", "train_steps", "rounds")
    args += [f"--{name}={getattr(FLAGS, name)}" for name in passed] + [f"--evaluate={evaluate}"]
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"stage {stage} on {dataset} failed:\n{stderr[-3000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    result["peak_rss_gib"] = result.pop("_peak_rss_kib") / 2**20
    print(f"{stage} {dataset}: {json.dumps(result)}", flush=True)
    return result


def _write_movielens_description(folder: Path) -> Path:
    """MovieLens-100K as Parquet files and a description, as a user's own log would be."""
    from tfcs3.data.datasets import load_raw

    raw = load_raw("ml-100k")
    folder.mkdir(parents=True, exist_ok=True)
    raw.interactions.to_parquet(folder / "ratings.parquet")
    raw.users.reset_index().to_parquet(folder / "users.parquet")
    raw.items.reset_index().to_parquet(folder / "movies.parquet")
    description = {
        "name": "ml-100k-as-own-log", "interactions": "ratings.parquet", "user": "user", "item": "item",
        "timestamp": "timestamp", "rating": "rating", "users": "users.parquet", "user_features": raw.user_features,
        "items": "movies.parquet", "item_features": raw.item_features,
        "item_multi_features": raw.item_multi_features, "title": "title",
    }  # fmt: skip
    (folder / "ml-100k.json").write_text(json.dumps(description))
    return folder / "ml-100k.json"


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.stage:
        import resource

        measured = STAGES[FLAGS.stage]()
        measured["_peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(measured), flush=True)
        return
    from tfcs3.data.synthetic import write_synthetic_log

    work = Path(FLAGS.work_dir)
    shutil.rmtree(work, ignore_errors=True)
    env = {"TFCS3_CACHE_DIR": str(work / "cache")}
    started = time.perf_counter()
    description = write_synthetic_log(work / "log", FLAGS.interactions, FLAGS.users, FLAGS.items)
    log_bytes = sum(p.stat().st_size for p in (work / "log").glob("log-*.parquet"))
    result: dict[str, Any] = {
        "name": FLAGS.name,
        "command": "python benchmarks/scale.py " + " ".join(a for a in sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "synthetic": {
            "interactions": FLAGS.interactions,
            "users": FLAGS.users,
            "items": FLAGS.items,
            "generate_seconds": time.perf_counter() - started,
            "log_bytes": log_bytes,
        },  # fmt: skip
        "settings": {k: getattr(FLAGS, k) for k in ("batch_size", "embedding_dim", "warmup_steps", "train_steps")},
    }
    result["synthetic"]["prepare"] = _run_stage("prepare", str(description), env)
    result["synthetic"]["train"] = _run_stage("train", str(description), env)
    if FLAGS.hashed_buckets:  # the same log with hashed user ids: a user table of hashed_buckets rows
        fields = json.loads(description.read_text())
        fields.update(name=fields["name"] + "-hashed", user_id_buckets=FLAGS.hashed_buckets)
        hashed = description.with_name("log-hashed.json")
        hashed.write_text(json.dumps(fields))
        result["synthetic_hashed_users"] = {
            "user_id_buckets": FLAGS.hashed_buckets,
            "prepare": _run_stage("prepare", str(hashed), env),
            "train": _run_stage("train", str(hashed), env, evaluate=False),
        }
    if FLAGS.reference:
        result["ml-1m"] = {"prepare": _run_stage("prepare", "ml-1m", env), "train": _run_stage("train", "ml-1m", env)}
        ml100k = _write_movielens_description(work / "ml-100k")
        result["ml-100k"] = _run_stage("epochs", str(ml100k), env)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{FLAGS.name}.json").write_text(json.dumps(result, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    print(f"-> {RESULTS / (FLAGS.name + '.json')}")


if __name__ == "__main__":
    app.run(main)
