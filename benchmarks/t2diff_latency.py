"""Query-side latency of T2Diff against its number of reverse steps, through the exported model.

Variants, built on the MovieLens-100K retrieval spec with the YouTubeDNN two-tower's benchmark
setting (d = 64): the YouTubeDNN two-tower, T2Diff without diffusion (mixed attention only),
T2Diff with the DDPM chain of its ``diffusion_steps`` T = 50 (the paper's default), and the same
model served with the DDIM sampler at 20, 10, 5, 2 and 1 steps (``diffusion_serving_steps``; the
accuracy of each is in ``benchmarks/t2diff_steps.py``). Each is exported with the
brute-force index and reloaded with plain ``tf.saved_model.load``; the ``query_embedding``
signature (the whole reverse chain runs in it) is timed on raw-feature requests of test users at
batch 1 and batch 64, and ``serving_default`` (top-100 over the catalog) at batch 1. Weights do
not change latency, so the models are not trained. Measurements are interleaved (round-robin,
``--rounds`` times) and the median of the per-round p50s is reported with its ratio to the
two-tower.

    python benchmarks/t2diff_latency.py --seconds=1
    # -> benchmarks/results/t2diff-latency.json

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
flags.DEFINE_integer("rounds", 5, "Round-robin measurement rounds.")

BASELINE = "two-tower (YouTubeDNN)"
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    BASELINE: ("youtubednn", {}),
    "T2Diff without diffusion": ("t2diff", {"use_diffusion": False}),
    "T2Diff, T = 50": ("t2diff", {"diffusion_steps": 50}),
    **{
        f"T2Diff, DDIM {s} steps": ("t2diff", {"diffusion_steps": 50, "diffusion_serving_steps": s})
        for s in (20, 10, 5, 2, 1)
    },
}
SIGNATURES = {"query_embedding batch 1": 1, "query_embedding batch 64": 64, "serving_default batch 1": 1}


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    data = load_prepared("ml-100k", "retrieval")
    setting = {"embedding_dim": 64}
    raw = raw_requests(data, [f.name for f in data.spec.query], "test", rows=range(256))
    queries = {k: v for k, v in raw.items() if k != "exclude"}
    calls: dict[tuple[str, str], Any] = {}
    for label, (name, extra) in VARIANTS.items():
        loaded = export_and_load(build_model(name, data, **setting, **extra), data)
        for signature, batch in SIGNATURES.items():
            inputs = raw if signature.startswith("serving_default") else queries
            calls[(label, signature)] = (loaded.signatures[signature.split()[0]], request_batches(inputs, batch))
    timed = interleaved_latency(calls, FLAGS.rounds, FLAGS.seconds, verbose=True)
    rows = []
    for label, (name, extra) in VARIANTS.items():
        row: dict[str, Any] = {"variant": label, "model": name, "hparams": {**setting, **extra}}
        for signature in SIGNATURES:
            t = timed[(label, signature)]
            row[signature] = {**t, "ratio_to_two_tower": t["p50_ms"] / timed[(BASELINE, signature)]["p50_ms"]}
        rows.append(row)
    path = write_latency_result("t2diff-latency", rows, dataset=data.name, rounds=FLAGS.rounds)
    write_sections("t2diff")
    print(f"Wrote {path} and BENCHMARKS.md")


if __name__ == "__main__":
    app.run(main)
