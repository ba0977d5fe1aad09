"""Training time per epoch of each retrieval loss, per backbone, on one dataset.

For each (backbone, loss): the model is built with the harness's setting for that backbone
(SASRec / GRU4Rec: batch 128; YouTubeDNN: batch 512), one epoch is run to warm up (tracing), then
``--epochs`` epochs are timed with ``model.fit`` (no validation), and one full validation
evaluation is timed apart (what early stopping adds to every epoch). Rounds are interleaved
(backbone by backbone, loss by loss) so that a load on the machine touches every loss alike; the
median over rounds is reported with its ratio to the in-batch softmax of the same backbone.

    python benchmarks/loss_timing.py --dataset=beauty
    # -> benchmarks/results/loss-timing-<dataset>.json

Run it on an otherwise idle machine: the ratios are what the issue's target reads.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tf_keras  # noqa: E402
from absl import app, flags, logging  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.evaluation import evaluate  # noqa: E402
from tfcs3.models import build_model  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "beauty", "Dataset (retrieval protocol).")
flags.DEFINE_list("backbones", ["youtubednn", "sasrec", "gru4rec"], "Registered backbones to time.")
flags.DEFINE_list("losses", ["in_batch", "sampled_softmax", "full_softmax"], "Losses to time.")
flags.DEFINE_integer("rounds", 2, "Interleaved measurement rounds (median reported).")
flags.DEFINE_string("data_dir", None, "Data folder (default $TFCS3_DATA_DIR).")

BATCH = {"youtubednn": 512, "sasrec": 128, "gru4rec": 128}
LOSS_HPARAMS = {"sampled_softmax": {"num_negatives": 256, "negative_sampler": "uniform"}}


def _epoch_seconds(model: Any, dataset: Any) -> float:
    started = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0)
    return time.perf_counter() - started


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    data = load_prepared(FLAGS.dataset, "retrieval", FLAGS.data_dir)
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for backbone in FLAGS.backbones:
        for loss in FLAGS.losses:
            tf_keras.utils.set_random_seed(0)
            model = build_model(backbone, data, loss=loss, **LOSS_HPARAMS.get(loss, {}))
            model.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
            dataset = model.training_dataset(data.train, BATCH[backbone], 0, True)
            _epoch_seconds(model, dataset)  # warm-up: tracing
            cells[(backbone, loss)] = {"model": model, "dataset": dataset, "train": [], "validation": []}
    for _ in range(FLAGS.rounds):
        for (backbone, loss), cell in cells.items():
            cell["train"].append(_epoch_seconds(cell["model"], cell["dataset"]))
            started = time.perf_counter()
            evaluate(cell["model"], data, "validation")
            cell["validation"].append(time.perf_counter() - started)
            print(f"{backbone} {loss}: epoch {cell['train'][-1]:.1f}s, validation {cell['validation'][-1]:.1f}s")
    rows = []
    for (backbone, loss), cell in cells.items():
        base = cells.get((backbone, "in_batch"))
        train_s, val_s = float(np.median(cell["train"])), float(np.median(cell["validation"]))
        row = {"backbone": backbone, "loss": loss, "batch_size": BATCH[backbone], "train_epoch_s": train_s}
        row["validation_s"] = val_s
        if base is not None:
            base_train, base_val = float(np.median(base["train"])), float(np.median(base["validation"]))
            row["train_ratio_vs_in_batch"] = train_s / base_train
            row["epoch_with_validation_ratio_vs_in_batch"] = (train_s + val_s) / (base_train + base_val)
        rows.append(row)
    result = {
        "dataset": data.name,
        "rows": rows,
        "rounds": FLAGS.rounds,
        "cpu_count": os.cpu_count(),
        "machine": platform.platform(),
        "command": "python " + " ".join(sys.argv),
    }
    path = RESULTS / f"loss-timing-{FLAGS.dataset}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"Wrote {path}")


if __name__ == "__main__":
    app.run(main)
