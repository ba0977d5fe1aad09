"""Brute force against the hardware limit: the exported exact search's multiply-adds per second
against a plain ``tf.linalg.matmul`` of the same shape, in one run.

For each catalog size (default 10^5 and 10^6 items, d = 64) and batch (1 and 64), four calls are
saved as SavedModel signatures, reloaded, and timed side by side
(:func:`tfcs3.evaluation.interleaved_latency`):

* ``matmul``: the scores ``Q E^T`` alone (the hardware limit of this search);
* ``matmul + top_k``: the scores and ``tf.math.top_k`` over the whole catalog;
* ``index``: :class:`tfcs3.retrieval.BruteForceIndex` as an export runs it, with per-query
  exclusions (``--exclude`` earlier items each, the serving default's case);
* ``index, no exclusions``: the same search without any (the ``top_k`` signature's case);
* ``matmul + threshold top_k``: the scores and an exact two-pass top-k
  (:func:`threshold_top_k`), an alternative to the full-width ``top_k`` measured here.

Each is reported as p50 milliseconds and achieved multiply-adds per second (``B N d / p50``), with
its ratio to ``matmul``.

    python benchmarks/brute_force.py        # -> benchmarks/results/brute-force.json

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from tfcs3.evaluation import interleaved_latency  # noqa: E402
from tfcs3.retrieval import BruteForceIndex  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS = flags.FLAGS
flags.DEFINE_list("items", ["100000", "1000000"], "Catalog sizes.")
flags.DEFINE_list("batches", ["1", "64"], "Queries per call.")
flags.DEFINE_integer("dim", 64, "Embedding width.")
flags.DEFINE_integer("k", 100, "Neighbours per query.")
flags.DEFINE_integer("exclude", 50, "Excluded catalog rows per query (a user's earlier items).")
flags.DEFINE_integer("rounds", 3, "Interleaved timing rounds (median of the per-round p50s).")
flags.DEFINE_float("seconds", 2.0, "Seconds per call and round.")


def threshold_top_k(scores: tf.Tensor, k: int, stride: int = 16) -> tuple[tf.Tensor, tf.Tensor]:
    """Exact ``top_k`` in two passes, an alternative measured here: the k-th best of every
    ``stride``-th column is a threshold at least k scores reach, so every true top-k score does;
    the scores at or above it are gathered (in column order, so ties keep lower columns first)
    and a small ``top_k`` picks from them."""
    threshold = tf.math.top_k(scores[:, ::stride], k).values[:, -1:]
    where = tf.where(scores >= threshold)
    pairs = tf.stack([tf.gather_nd(scores, where), tf.cast(where[:, 1], tf.float32)], axis=1)
    rows = tf.shape(scores, out_type=tf.int64)[0]
    kept = tf.RaggedTensor.from_value_rowids(pairs, where[:, 0], nrows=rows).to_tensor(default_value=-np.inf)
    values, position = tf.math.top_k(kept[:, :, 0], k)
    return values, tf.cast(tf.gather(kept[:, :, 1], position, batch_dims=1), tf.int32)  # exact below 2**24


class _Calls(tf.Module):
    def __init__(self, embeddings: np.ndarray, k: int):
        super().__init__()
        self.index = BruteForceIndex(embeddings)
        self.k = k

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def matmul(self, queries: tf.Tensor) -> tf.Tensor:
        return tf.linalg.matmul(queries, self.index.embeddings, transpose_b=True)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def matmul_top_k(self, queries: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        scores = tf.linalg.matmul(queries, self.index.embeddings, transpose_b=True)
        return tf.math.top_k(scores, self.k)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None, None], tf.int64)])
    def index_search(self, queries: tf.Tensor, exclude: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self.index.search(queries, self.k, exclude)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def index_no_exclusions(self, queries: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return self.index.search(queries, self.k)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32)])
    def matmul_threshold_top_k(self, queries: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        scores = tf.linalg.matmul(queries, self.index.embeddings, transpose_b=True)
        return threshold_top_k(scores, self.k)


def measure(items: int, batches: list[int]) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(items, FLAGS.dim)).astype(np.float32)
    module = _Calls(embeddings, FLAGS.k)
    with tempfile.TemporaryDirectory(prefix="tfcs3-brute-force-") as tmp:
        tf.saved_model.save(module, tmp)
        loaded = tf.saved_model.load(tmp)
        rows = []
        for batch in batches:
            queries = [tf.constant(rng.normal(size=(batch, FLAGS.dim)).astype(np.float32)) for _ in range(8)]
            exclude = [tf.constant(rng.integers(items, size=(batch, FLAGS.exclude))) for _ in range(8)]
            excluding = [{"queries": q, "exclude": e} for q, e in zip(queries, exclude, strict=True)]
            calls = {
                "matmul": (loaded.matmul, [{"queries": q} for q in queries]),
                "matmul + top_k": (loaded.matmul_top_k, [{"queries": q} for q in queries]),
                "index": (loaded.index_search, excluding),
                "index, no exclusions": (loaded.index_no_exclusions, [{"queries": q} for q in queries]),
                "matmul + threshold top_k": (loaded.matmul_threshold_top_k, [{"queries": q} for q in queries]),
            }
            timed = interleaved_latency(calls, FLAGS.rounds, FLAGS.seconds)
            base = timed["matmul"]["p50_ms"]
            for label, t in timed.items():
                rows.append(
                    {
                        "items": items,
                        "batch": batch,
                        "call": label,
                        "p50_ms": t["p50_ms"],
                        "p99_ms": t["p99_ms"],
                        "gmacs_per_second": batch * items * FLAGS.dim / (t["p50_ms"] / 1000.0) / 1e9,
                        "share_of_matmul": base / t["p50_ms"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str]) -> None:
    del argv
    rows = [row for n in FLAGS.items for row in measure(int(n), [int(b) for b in FLAGS.batches])]
    result = {
        "name": "brute-force",
        "command": "python benchmarks/brute_force.py " + " ".join(sys.argv[1:]),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "settings": {k: getattr(FLAGS, k) for k in ("dim", "k", "exclude", "rounds", "seconds")},
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "brute-force.json").write_text(json.dumps(result, indent=1))
    print(f"-> {RESULTS / 'brute-force.json'}")


if __name__ == "__main__":
    app.run(main)
