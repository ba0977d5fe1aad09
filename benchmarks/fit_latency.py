"""Per-request scoring latency of FIT for 1,000 candidates, relative to the two-tower, through the
exported model.

Each variant is built on the pre-ranking spec of ``--dataset`` with the YouTubeDNN two-tower's
benchmark setting (d = 64, one hidden layer of 128), exported with the brute-force index and
reloaded with plain ``tf.saved_model.load``. A request = one user (raw features of a test
impression) and ``--candidates`` candidate ids drawn from the catalog; the timed call is the
``score_candidates`` signature (raw-id lookup, the user tower — ``N`` passes for FIT, one per hard
query — the gather of the precomputed item side and the scorer). Weights do not change latency, so
the models are not trained. Measurements are interleaved (round-robin over the variants,
``--rounds`` times) and the median of the per-round p50s is reported with its ratio to the
two-tower.

    python benchmarks/fit_latency.py --dataset=ml-1m --seconds=1
    # -> benchmarks/results/fit-latency.json

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from exported import export_and_load  # noqa: E402
from report import write_sections  # noqa: E402
from serving import write_latency_result  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.evaluation import interleaved_latency  # noqa: E402
from tfcs3.export import raw_requests  # noqa: E402
from tfcs3.models import build_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "ml-1m", "Dataset whose pre-ranking spec and catalog are used.")
flags.DEFINE_integer("candidates", 1000, "Candidates per request.")
flags.DEFINE_integer("rounds", 5, "Round-robin measurement rounds.")

VARIANTS = {
    "two-tower (YouTubeDNN, dot)": ("youtubednn", {}),
    "IntTower (sum-max)": ("inttower_youtubednn", {}),
    "FIT, N = 16": ("fit", {"num_meta": 16}),
    "FIT, N = 4": ("fit", {"num_meta": 4}),
    "FIT without LSS, N = 16": ("fit", {"use_lss": False}),
    "FIT without MQM": ("fit", {"use_mqm": False}),
}
BASELINE = "two-tower (YouTubeDNN, dot)"


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    data = load_prepared(FLAGS.dataset, "preranking")
    setting = {"embedding_dim": 64, "hidden_units": [128]}
    n_requests = 64
    rng = np.random.default_rng(0)
    candidates = [
        list(rng.choice(data.catalog_ids, size=min(FLAGS.candidates, data.num_items), replace=False))
        for _ in range(n_requests)
    ]
    calls: dict[str, Any] = {}
    for label, (name, extra) in VARIANTS.items():
        model = build_model(name, data, **setting, **extra)
        loaded = export_and_load(model, data)
        raw = raw_requests(data, model.query_feature_names, "test", rows=range(n_requests), exclude_earlier=False)
        batches = [
            {**{k: tf.constant(v[r : r + 1]) for k, v in raw.items()}, "candidate_ids": tf.constant([candidates[r]])}
            for r in range(n_requests)
        ]
        calls[label] = (loaded.signatures["score_candidates"], batches)
    timed = interleaved_latency(calls, FLAGS.rounds, FLAGS.seconds, verbose=True)
    rows = [
        {
            "variant": label,
            "model": VARIANTS[label][0],
            "hparams": {**setting, **VARIANTS[label][1]},
            **timed[label],
            "ratio_to_two_tower": timed[label]["p50_ms"] / timed[BASELINE]["p50_ms"],
        }
        for label in calls
    ]
    path = write_latency_result(
        "fit-latency", rows, dataset=data.name, candidates=FLAGS.candidates, rounds=FLAGS.rounds
    )
    write_sections("fit-latency")
    print(f"Wrote {path} and BENCHMARKS.md")


if __name__ == "__main__":
    app.run(main)
