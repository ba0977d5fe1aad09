"""Per-query retrieval latency of SparCode's inverted index against two-tower + brute force and
two-tower + ScaNN on the same catalog, with the top-T sweep's density and accuracy.

SparCode is trained on ``--dataset`` (retrieval protocol) with the setting selected by
``benchmarks/sparcode.py`` (or the YouTubeDNN setting when there is none) for ``--epochs`` epochs
(the index's density depends on the trained weights; its accuracy here is that of this short run,
the accuracy of the benchmark proper is in the SparCode table). It is exported with the
``sparse_code`` index untruncated and for each cap T (``--top_t``), and with the brute-force index
(exact model scoring over the catalog); the YouTubeDNN two-tower of the same setting (untrained:
weights do not change its latency) is exported with brute force and with ScaNN. Every export is
reloaded with plain ``tf.saved_model.load`` and its ``serving_default`` (raw features -> top-100)
timed at batch 1, interleaved over ``--rounds`` rounds; the median p50 and its ratio to two-tower +
brute force are reported.

    python benchmarks/sparcode_latency.py --dataset=ml-1m --epochs=3 --seconds=1
    # -> benchmarks/results/sparcode-latency.json, BENCHMARKS.md and sparcode-sweep.png

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from report import RESULTS_DIR, write_sections  # noqa: E402
from serving import write_latency_result  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.evaluation import evaluate, interleaved_latency  # noqa: E402
from tfcs3.export import export_model, raw_requests  # noqa: E402
from tfcs3.models import build_model  # noqa: E402
from tfcs3.training import train  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "ml-1m", "Dataset (retrieval protocol).")
flags.DEFINE_integer("epochs", 3, "Training epochs of the SparCode model whose index is timed.")
flags.DEFINE_list("top_t", ["300", "100", "30"], "Posting-list caps to time besides the full index.")
flags.DEFINE_integer("rounds", 5, "Round-robin measurement rounds.")
BASELINE = "two-tower + brute force"


def _setting(dataset: str) -> dict[str, Any]:
    for name in ("sparcode", "youtubednn"):
        for path in sorted(RESULTS_DIR.glob("*.json")):
            for run in json.loads(path.read_text()).get("runs", []):
                if run.get("selected") and run["model"] == name and run["dataset_arg"] == dataset:
                    if run["protocol"] == "retrieval":
                        return dict(run["setting"])
    return {"learning_rate": 3e-3, "embedding_dim": 64}


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    data = load_prepared(FLAGS.dataset, "retrieval")
    setting = _setting(FLAGS.dataset)
    hparams = {k: v for k, v in setting.items() if k not in ("learning_rate", "batch_size")}
    model = build_model("sparcode", data, **hparams)
    train(model, data, epochs=FLAGS.epochs, patience=FLAGS.epochs, learning_rate=setting["learning_rate"], verbose=2)
    two_tower = build_model("youtubednn", data, embedding_dim=hparams.get("embedding_dim", 64))
    two_tower({k: tf.constant(v[:1]) for k, v in data.train.features.items()})
    raw = raw_requests(data, model.query_feature_names, "test", rows=range(128))
    batches = [{k: tf.constant(v[r : r + 1]) for k, v in raw.items()} for r in range(128)]
    out_dir = Path(tempfile.mkdtemp(prefix="tfcs3-sparcode-latency-"))
    exports: dict[str, tuple[Any, dict[str, Any]]] = {}

    def add(label: str, m: Any, index: str, top_t: int | None = None) -> None:
        path = export_model(m, data, out_dir, f"m{len(exports)}", index=index, k=100, sparse_top_t=top_t)
        info = json.loads((path / "assets.extra" / "tfcs3_export.json").read_text())
        exports[label] = (tf.saved_model.load(str(path)).signatures["serving_default"], info.get("sparse_index") or {})

    add(BASELINE, two_tower, "brute_force")
    add("two-tower + ScaNN", two_tower, "scann")
    add("SparCode, exact scoring (brute force)", model, "brute_force")
    add("SparCode index (full)", model, "sparse_code")
    for t in FLAGS.top_t:
        add(f"SparCode index, T = {int(t)}", model, "sparse_code", int(t))
    timed = interleaved_latency(
        {label: (fn, batches) for label, (fn, _) in exports.items()}, FLAGS.rounds, FLAGS.seconds, verbose=True
    )
    rows = []
    for label, (_, sparse) in exports.items():
        row = {"variant": label, **timed[label]}
        row["ratio_to_two_tower_brute_force"] = row["p50_ms"] / timed[BASELINE]["p50_ms"]
        row.update({k: sparse[k] for k in ("nnz", "density", "top_t") if k in sparse})
        rows.append(row)
    fields = {
        "dataset": data.name,
        "num_items": data.num_items,
        "setting": setting,
        "epochs": FLAGS.epochs,
        "sparcode_test_ndcg@10": evaluate(model, data, "test")["ndcg@10"],
        "rounds": FLAGS.rounds,
    }
    path = write_latency_result("sparcode-latency", rows, **fields)
    write_sections("sparcode")
    print(f"Wrote {path} and BENCHMARKS.md")


if __name__ == "__main__":
    app.run(main)
