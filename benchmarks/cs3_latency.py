"""Query-tower latency of the CS3 variants relative to their backbone, through the exported model.

For each variant (backbone, +CAS in both towers, +CAS in the user tower only, +CTS, +CMS, full
CS3, full CS3 with user-tower-only CAS), built on the MovieLens-100K retrieval spec with the
backbone's benchmark setting (d = 32, one hidden layer of 128): export with the brute-force index,
reload with plain ``tf.saved_model.load`` and time the ``query_embedding`` signature on raw-feature
requests of test users at batch 1 and batch 64, and ``serving_default`` (top-100 over the catalog)
at batch 1. Weights do not change latency, so the models are not trained. Measurements are
interleaved (round-robin over the variants, ``--rounds`` times) so machine noise is shared, and the
median of the per-round p50s is reported with its ratio to the backbone.

    python benchmarks/cs3_latency.py --backbone=youtubednn --seconds=1
    # -> benchmarks/results/cs3-latency-youtubednn.json (--seconds: budget per variant, signature, round)

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from exported import export_and_load, request_batches  # noqa: E402
from report import write_sections  # noqa: E402
from serving import write_latency_result  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.evaluation import interleaved_latency  # noqa: E402
from tfcs3.export import raw_requests  # noqa: E402
from tfcs3.models import build_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("backbone", "youtubednn", "Dot backbone (cs3_<backbone> must be registered).")
flags.DEFINE_integer("rounds", 5, "Round-robin measurement rounds.")

VARIANTS = {
    "backbone": None,
    "+CAS (both towers)": {"cts": False, "cms": False},
    "+CAS (user tower)": {"cas": "user", "cts": False, "cms": False},
    "+CTS": {"cas": "none", "cms": False},
    "+CMS": {"cas": "none", "cts": False},
    "CS3 (all three)": {},
    "CS3, CAS in the user tower": {"cas": "user"},
}


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    data = load_prepared("ml-100k", "retrieval")
    setting = {"embedding_dim": 32, "hidden_units": [128]}
    raw = raw_requests(data, [f.name for f in data.spec.query], "test", rows=range(256))
    queries = {k: v for k, v in raw.items() if k != "exclude"}
    calls: dict[str, dict[str, Any]] = {}
    for label, switches in VARIANTS.items():
        if switches is None:
            model = build_model(FLAGS.backbone, data, **setting)
        else:
            model = build_model(f"cs3_{FLAGS.backbone}", data, **setting, **switches)
        loaded = export_and_load(model, data)
        calls[label] = {
            "query_embedding batch 1": (loaded.signatures["query_embedding"], request_batches(queries, 1)),
            "query_embedding batch 64": (loaded.signatures["query_embedding"], request_batches(queries, 64)),
            "serving_default batch 1": (loaded.signatures["serving_default"], request_batches(raw, 1)),
        }
    flat = {(label, name): call for label, signatures in calls.items() for name, call in signatures.items()}
    timed = interleaved_latency(flat, FLAGS.rounds, FLAGS.seconds, verbose=True)
    rows = []
    for label in calls:
        row: dict[str, Any] = {"variant": label}
        for name in calls[label]:
            t = timed[(label, name)]
            row[name] = {**t, "ratio_to_backbone": t["p50_ms"] / timed[("backbone", name)]["p50_ms"]}
        rows.append(row)
    path = write_latency_result(
        f"cs3-latency-{FLAGS.backbone}",
        rows,
        backbone=FLAGS.backbone,
        dataset=data.name,
        setting=setting,
        rounds=FLAGS.rounds,
    )
    write_sections("cs3-latency")
    print(f"Wrote {path} and BENCHMARKS.md")


if __name__ == "__main__":
    app.run(main)
