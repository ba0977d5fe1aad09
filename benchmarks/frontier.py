"""Quality against query latency: one point per retrieval model, NDCG@10 over its query latency.

For every model label given (a registered model or a benchmark variant of ``quality.py``) that has
selected runs on the dataset, the model is built with its selected setting, exported with the
brute-force index and reloaded with plain ``tf.saved_model.load``; ``serving_default`` (the query
tower plus top-100 over the catalog, from raw features) and ``query_embedding`` are timed on test
users' requests at batch 1, interleaved round-robin so that machine noise is shared (median of
the per-round p50s). Weights do not change latency, so the models are not trained; quality is the
test NDCG@10 (mean over seeds) of the stored runs. The plot (``benchmarks/results/frontier-
<dataset>.png``) puts each model at (latency, NDCG@10).

    python benchmarks/frontier.py --dataset=ml-100k --seconds=1
    # -> benchmarks/results/frontier-ml-100k.json and .png

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from exported import export_and_load, request_batches  # noqa: E402
from quality import TRAINING_KEYS, VARIANTS  # noqa: E402
from report import _selected_runs, write_sections  # noqa: E402
from serving import write_latency_result  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.evaluation import interleaved_latency  # noqa: E402
from tfcs3.export import raw_requests  # noqa: E402
from tfcs3.models import build_model  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "ml-100k", "Dataset whose stored runs give the quality and the settings.")
flags.DEFINE_list(
    "frontier_models",
    [
        "popularity", "dssm", "youtubednn", "youtubednn-full_softmax", "sasrec-full_softmax", "sasrec-in_batch",
        "gru4rec-full_softmax", "t2diff", "t2diff-full_softmax", "dat_sasrec", "inttower_sasrec", "cs3_sasrec",
        "cs3_youtubednn", "dat_youtubednn", "inttower_dot",
    ],
    "Model labels to place (those without selected runs on the dataset are skipped).",
)  # fmt: skip
flags.DEFINE_integer("rounds", 5, "Round-robin measurement rounds.")
SIGNATURES = {"serving_default batch 1": "serving_default", "query_embedding batch 1": "query_embedding"}


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    runs = _selected_runs()
    data = load_prepared(FLAGS.dataset, "retrieval")
    raw = raw_requests(data, [f.name for f in data.spec.query], "test", rows=range(256))
    calls: dict[tuple[str, str], Any] = {}
    placed: dict[str, dict[str, Any]] = {}
    for label in FLAGS.frontier_models:
        rs = [r for (m, _, p), rr in runs.items() if (m, p) == (label, "retrieval") for r in rr]
        rs = [r for r in rs if r["dataset_arg"] == FLAGS.dataset]
        if not rs or label == "popularity":
            continue
        name, fixed = VARIANTS.get(label, (label, {}))
        hparams = {k: v for k, v in rs[0]["setting"].items() if k not in TRAINING_KEYS}
        model = build_model(name, data, **fixed, **hparams)
        loaded = export_and_load(model, data)
        names = set(model.query_feature_names)
        for signature, function in SIGNATURES.items():
            inputs = names | {"exclude"} if function == "serving_default" else names
            calls[(label, signature)] = (loaded.signatures[function], request_batches(raw, 1, inputs))
        placed[label] = {
            "model": name,
            "hparams": {**fixed, **hparams},
            "seeds": len(rs),
            "ndcg@10": float(np.mean([r["test"]["ndcg@10"] for r in rs])),
            "ndcg@10_std": float(np.std([r["test"]["ndcg@10"] for r in rs], ddof=1)) if len(rs) > 1 else None,
        }
    timed = interleaved_latency(calls, FLAGS.rounds, FLAGS.seconds, verbose=True)
    rows = [{"label": label, **row, **{s: timed[(label, s)] for s in SIGNATURES}} for label, row in placed.items()]
    path = write_latency_result(f"frontier-{FLAGS.dataset}", rows, dataset=FLAGS.dataset, rounds=FLAGS.rounds)
    write_sections("strong-backbone")
    print(f"Wrote {path} and BENCHMARKS.md")


if __name__ == "__main__":
    app.run(main)
