"""Soak test of an exported model: many mixed valid and malformed requests from several threads.

A YouTubeDNN two-tower on MovieLens-100K's retrieval spec (untrained weights: serving cost does
not depend on them) is exported with the brute-force index and loaded with plain
``tf.saved_model.load``. ``--threads`` threads then send ``--requests`` requests in all to
``serving_default``, about ``--malformed`` of them malformed in one of four ways (an ``exclude``
with fewer rows than the queries, a profile feature with more rows, a history over the export's
``max_list``, an id over ``max_string_bytes``); the rest are valid single-user requests of test
users. Every valid request must be answered and every malformed one refused with
``InvalidArgumentError`` naming the input; anything else is counted as a failure. Recorded: the
process's resident memory (VmRSS) after a warm-up and at the end, and at each tenth of the run,
the p50 / p99 latency of valid and of refused requests, and the counts.

    python benchmarks/soak.py   # -> benchmarks/results/soak.json and BENCHMARKS.md

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from report import write_sections  # noqa: E402
from serving import write_latency_result  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.export import ServingLimits, export_model, raw_requests  # noqa: E402
from tfcs3.models import build_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("requests", 100_000, "Requests in all.")
flags.DEFINE_integer("threads", 8, "Client threads.")
flags.DEFINE_float("malformed", 0.3, "Share of malformed requests.")
flags.DEFINE_integer("seed", 0, "Seed of the request mix.")


def rss_mib() -> float:
    """This process's resident memory in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _malformed(valid: dict[str, np.ndarray], kind: int, limits: ServingLimits) -> tuple[dict[str, np.ndarray], str]:
    """A broken copy of a one-row request, and the input its error must name."""
    request = dict(valid)
    if kind == 0:
        request = {k: np.concatenate([v, v]) if k != "exclude" else v for k, v in valid.items()}
        return request, "exclude"
    if kind == 1:
        request["gender"] = np.concatenate([valid["gender"], valid["gender"]])
        return request, "gender"
    if kind == 2:
        request["history"] = np.full((1, limits.max_list + 1), valid["history"][0, -1], dtype=object)
        return request, "history"
    request["user_id"] = np.asarray(["x" * (limits.max_string_bytes + 1)], dtype=object)
    return request, "user_id"


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    data = load_prepared("ml-100k", "retrieval")
    model = build_model("youtubednn", data, embedding_dim=64)
    model({k: tf.constant(v[:2]) for k, v in data.train.features.items()})
    limits = ServingLimits()
    path = export_model(model, data, tempfile.mkdtemp(prefix="tfcs3-soak-"), "soak", k=100, limits=limits)
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    names = [f.name for f in data.spec.query]
    raw = raw_requests(data, names, "test", rows=range(len(data.test)))
    pool = [{k: np.asarray([raw[k][r]], dtype=object) for k in raw} for r in range(len(data.test))]
    rng = np.random.default_rng(FLAGS.seed)
    plan = [
        (int(rng.integers(len(pool))), int(rng.integers(4)) if rng.random() < FLAGS.malformed else -1)
        for _ in range(FLAGS.requests)
    ]
    for r in range(200):  # warm-up, both paths
        serve(**{k: tf.constant(v) for k, v in pool[r % len(pool)].items()})
        bad, _ = _malformed(pool[r % len(pool)], r % 4, limits)
        try:
            serve(**{k: tf.constant(v) for k, v in bad.items()})
        except tf.errors.InvalidArgumentError:
            pass
    start_rss = rss_mib()
    lock = threading.Lock()
    valid_ms: list[float] = []
    refused_ms: list[float] = []
    failures: list[str] = []
    rss_track: list[tuple[int, float]] = [(0, start_rss)]
    done = [0]

    def worker(part: list[tuple[int, int]]) -> None:
        for row, kind in part:
            request, named = (pool[row], "") if kind < 0 else _malformed(pool[row], kind, limits)
            tensors = {k: tf.constant(v) for k, v in request.items()}
            began = time.perf_counter()
            try:
                out = serve(**tensors)
                ok = kind < 0 and out["item_ids"].shape == (1, 100)
                outcome = None if ok else f"answered a malformed request ({named})"
            except tf.errors.InvalidArgumentError as err:
                ok = kind >= 0 and f"input `{named}`" in err.message
                outcome = None if ok else f"refused: {err.message[:200]}"
            except Exception as err:  # noqa: BLE001 (anything else is a failure to count)
                outcome = f"{type(err).__name__}: {str(err)[:200]}"
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                (valid_ms if kind < 0 else refused_ms).append(elapsed)
                if outcome:
                    failures.append(outcome)
                done[0] += 1
                if done[0] % max(1, FLAGS.requests // 10) == 0:
                    rss_track.append((done[0], rss_mib()))

    parts = [plan[i :: FLAGS.threads] for i in range(FLAGS.threads)]
    threads = [threading.Thread(target=worker, args=(part,)) for part in parts]
    began = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - began
    end_rss = rss_mib()
    refused = len(refused_ms)
    row: dict[str, Any] = {
        "requests": FLAGS.requests,
        "threads": FLAGS.threads,
        "valid": len(valid_ms),
        "malformed": refused,
        "failures": len(failures),
        "failure_examples": sorted(set(failures))[:5],
        "valid_p50_ms": float(np.percentile(valid_ms, 50)),
        "valid_p99_ms": float(np.percentile(valid_ms, 99)),
        "refused_p50_ms": float(np.percentile(refused_ms, 50)) if refused else None,
        "refused_p99_ms": float(np.percentile(refused_ms, 99)) if refused else None,
        "rss_start_mib": start_rss,
        "rss_end_mib": end_rss,
        "rss_growth_kib_per_malformed": (end_rss - start_rss) * 1024 / max(refused, 1),
        "rss_track": rss_track,
        "wall_seconds": wall,
        "requests_per_second": FLAGS.requests / wall,
    }
    out = write_latency_result("soak", [row], dataset=data.name, limits=limits.__dict__)
    write_sections("soak")
    print(f"Wrote {out}: {len(failures)} failures, RSS {start_rss:.0f} -> {end_rss:.0f} MiB")


if __name__ == "__main__":
    app.run(main)
