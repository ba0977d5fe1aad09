"""Serving benchmark: latency of the exported baseline, and ScaNN vs brute force by catalog size.

Part 1 trains the YouTubeDNN baseline on MovieLens-100K (or reuses ``--run_dir``), exports it with
the brute-force index, reloads the SavedModel with plain ``tf.saved_model.load`` and times
``serving_default`` on raw-feature requests of test users at batch 1 and 64 (p50 / p99).

Part 2 builds catalogs of 10^4, 10^5 and 10^6 items distributed like the trained baseline's item
embeddings: a Gaussian with the mean and full covariance of its 1,682 MovieLens item embeddings
(d = 64; learned embeddings are far from isotropic: 96% of their variance lies in 16 directions).
The queries are the baseline's real query embeddings of the test users. It compares the two
indices tfcs3 exports: exact brute force (stock ops) and ScaNN (defaults of
``ScannOptions.for_catalog``), reporting queries per second at batch 1 (one query per call,
sequential) and at batch 64, and ScaNN's recall@100 against the exact top-100.

Part 3 exports each registered model (one epoch on MovieLens-100K pre-ranking data; latency does
not depend on quality) and times, for one query, ``score_candidates`` over 500 candidates (the
pre-ranking call) and ``serving_default`` (brute-force top-100 over the catalog).

    python benchmarks/serving.py            # writes benchmarks/results/serving.json + BENCHMARKS.md

Run it on an otherwise idle machine: timings share the CPU with everything else.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from report import RESULTS_DIR, write_sections  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.evaluation import latency_summary, represent, time_calls  # noqa: E402
from tfcs3.experiment import environment_info, load_run, run_experiment  # noqa: E402
from tfcs3.export import export_model, raw_requests  # noqa: E402
from tfcs3.retrieval import BruteForceIndex, ScannIndex, ScannOptions  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "Reuse a trained run directory instead of training the baseline.")
flags.DEFINE_list("catalog_sizes", ["10000", "100000", "1000000"], "Catalog sizes for part 2.")
flags.DEFINE_integer("k", 100, "Neighbours per query.")
flags.DEFINE_float("seconds", 5.0, "Timing budget per measurement.")
flags.DEFINE_list(
    "latency_models",
    ["dssm", "youtubednn", "dat", "dat_youtubednn", "inttower", "inttower_youtubednn"],
    "Registered models whose exported scoring latency is measured (part 3).",
)


def _catalog_like(items: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """``n`` vectors from the Gaussian with the mean and covariance of ``items``."""
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(items.mean(axis=0), np.cov(items.T), size=n).astype(np.float32)


def write_latency_result(name: str, rows: list[dict[str, Any]], **fields: Any) -> Path:
    """Logs ``rows`` and writes ``benchmarks/results/<name>.json``: ``fields``, the rows, the CPU
    count, library versions and the command line; returns the path."""
    for row in rows:
        logging.warning("%s", row)
    out = {
        **fields,
        "rows": rows,
        "cpu_count": os.cpu_count(),
        "versions": environment_info(),
        "command": "python " + " ".join(sys.argv),
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(out, indent=1))
    return path


def serving_latency() -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Latency of the exported baseline; also returns its item and query embeddings."""
    if FLAGS.run_dir:
        model, data, _ = load_run(FLAGS.run_dir)
    else:
        result = run_experiment("youtubednn", "ml-100k", epochs=30, hparams={"embedding_dim": 64}, verbose=0)
        model, data = result["_model"], result["_data"]
    export_root = Path(tempfile.mkdtemp(prefix="tfcs3-serving-bench-"))
    path = export_model(model, data, export_root, "youtubednn", index="brute_force", k=FLAGS.k)
    f = tf.saved_model.load(str(path)).signatures["serving_default"]
    raw = raw_requests(data, model.query_feature_names, "test")
    n = len(data.test)
    out: dict[str, Any] = {"catalog_items": data.num_items, "k": FLAGS.k, "export": "brute_force"}
    for batch in (1, 64):
        batches = [
            {key: tf.constant(values[s : s + batch]) for key, values in raw.items()}
            for s in range(0, n - batch + 1, batch)
        ]
        summary = latency_summary(time_calls(lambda b: f(**b), batches, FLAGS.seconds), batch)
        out[f"batch_{batch}"] = {k: summary[k] for k in ("p50_ms", "p99_ms", "calls", "queries_per_second")}
        logging.warning("serving_default batch %d: %s", batch, out[f"batch_{batch}"])
    items = represent(model.candidate_model, data.catalog).numpy()
    queries = represent(model.query_model, data.test.features).numpy()
    return out, items, queries


def index_comparison(n: int, learned_items: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    k = FLAGS.k
    items = _catalog_like(learned_items, n)
    d = items.shape[1]
    t = time.perf_counter()
    brute = BruteForceIndex(items)
    brute_build = time.perf_counter() - t
    t = time.perf_counter()
    options = ScannOptions.for_catalog(n, k)
    scann = ScannIndex(items, k, options)
    scann_build = time.perf_counter() - t
    row: dict[str, Any] = {"items": n, "dim": d, "k": k, "scann_options": options.to_dict()}
    exact = np.concatenate(
        [brute.search(tf.constant(queries[s : s + 256]), k)[1].numpy() for s in range(0, len(queries), 256)]
    )
    approx = np.concatenate(
        [scann.search(tf.constant(queries[s : s + 256]), k)[1].numpy() for s in range(0, len(queries), 256)]
    )
    row["scann_recall_at_k"] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, approx, strict=True)]))
    for name, index, build in (("brute_force", brute, brute_build), ("scann", scann, scann_build)):
        fn = tf.function(lambda q, index=index: index.search(q, k))
        row[name] = {"build_seconds": build}
        for batch in (1, 64):
            batches = [tf.constant(queries[s : s + batch]) for s in range(0, len(queries) - batch + 1, batch)]
            summary = latency_summary(time_calls(fn, batches, FLAGS.seconds), batch)
            row[name][f"qps_batch_{batch}"] = summary["queries_per_second"]
            row[name][f"p50_ms_batch_{batch}"] = summary["p50_ms"]
    for batch in (1, 64):
        row[f"speedup_batch_{batch}"] = row["scann"][f"qps_batch_{batch}"] / row["brute_force"][f"qps_batch_{batch}"]
    logging.warning("catalog %d: %s", n, json.dumps(row))
    return row


def model_latency(names: list[str], candidates: int = 500) -> list[dict[str, Any]]:
    """Per registered model on MovieLens-100K pre-ranking data (one training epoch: latency does
    not depend on quality): the exported ``score_candidates`` for one query and ``candidates``
    items, and ``serving_default`` (brute-force top-100 over the catalog) for one query."""
    data = load_prepared("ml-100k", "preranking")
    rows = []
    for name in names:
        result = run_experiment(name, "ml-100k", "preranking", epochs=1, data=data, verbose=0)
        model = result["_model"]
        path = export_model(model, data, tempfile.mkdtemp(prefix="tfcs3-latency-"), name, index="brute_force")
        loaded = tf.saved_model.load(str(path))
        raw = raw_requests(data, model.query_feature_names, "test", rows=range(200))
        rng = np.random.default_rng(0)
        ids = data.catalog_ids
        score_batches, top_batches = [], []
        for r in range(200):
            query = {k: tf.constant(v[r : r + 1]) for k, v in raw.items() if k != "exclude"}
            cands = tf.constant([list(ids[rng.integers(len(ids), size=candidates)])])
            score_batches.append({**query, "candidate_ids": cands})
            top_batches.append({**query, "exclude": tf.constant(raw["exclude"][r : r + 1])})
        row: dict[str, Any] = {"model": name, "candidates": candidates, "score_width": model.score_width}
        for signature, batches in (("score_candidates", score_batches), ("serving_default", top_batches)):
            fn = loaded.signatures[signature]
            summary = latency_summary(time_calls(lambda b, fn=fn: fn(**b), batches, FLAGS.seconds / 2))
            row[signature] = {"p50_ms": summary["p50_ms"], "p99_ms": summary["p99_ms"]}
        logging.warning("latency %s: %s", name, row)
        rows.append(row)
    return rows


def main(argv: list[str]) -> None:
    del argv
    started = time.time()
    latency, learned_items, queries = serving_latency()
    result = {
        "command": "python " + " ".join(sys.argv),
        "versions": environment_info(),
        "cpu_count": os.cpu_count(),
        "serving_default": latency,
        "catalogs": "Gaussian fitted to the trained baseline's item embeddings; its real test-user queries",
        "indices": [index_comparison(int(n), learned_items, queries) for n in FLAGS.catalog_sizes],
        "models": model_latency(FLAGS.latency_models),
    }
    result["wall_seconds"] = time.time() - started
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "serving.json").write_text(json.dumps(result, indent=1))
    write_sections("serving-tables")
    print(f"Wrote {RESULTS_DIR / 'serving.json'} and BENCHMARKS.md")


if __name__ == "__main__":
    app.run(main)
