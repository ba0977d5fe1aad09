"""Online learning benchmark: one time-ordered pass, predict then learn (``tfcs3.online``).

Every model sees MovieLens train, validation and test impressions once, in time order, each batch
scored before it is learned; CS3 models update their memories and train their ranker in stream
order. The prequential AUC / GAUC / LogLoss of the test-period impressions are reported (mean ± std
over seeds). No model selection happens here: the backbone's offline-selected setting (embedding
width) is reused with Adam at lr 1e-3, batch 512, for every model.

    python benchmarks/cs3_online.py --datasets=ml-100k --seeds=0,1,2   # -> results/cs3-online.json
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from report import RESULTS_DIR, write_sections  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.experiment import environment_info  # noqa: E402
from tfcs3.models import build_model  # noqa: E402
from tfcs3.online import learn_online  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["ml-100k"], "Datasets (pre-ranking protocol).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_string("backbone", "youtubednn", "Dot backbone.")
flags.DEFINE_integer("embedding_dim", 64, "Embedding width (the backbone's offline pre-ranking choice).")

VARIANTS = {
    "backbone": None,
    "+CAS": {"cts": False, "cms": False},
    "+CTS": {"cas": "none", "cms": False},
    "+CMS": {"cas": "none", "cts": False},
    "CS3 (all three)": {},
}


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    path = RESULTS_DIR / "cs3-online.json"
    results = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    done = {(r["dataset_arg"], r["backbone"], r["variant"], r["seed"]) for r in results["runs"]}
    for dataset in FLAGS.datasets:
        data = load_prepared(dataset, "preranking")
        for label, switches in VARIANTS.items():
            for seed in [int(s) for s in FLAGS.seeds]:
                if (dataset, FLAGS.backbone, label, seed) in done:
                    continue
                name = FLAGS.backbone if switches is None else f"cs3_{FLAGS.backbone}"
                model = build_model(name, data, embedding_dim=FLAGS.embedding_dim, **(switches or {}))
                started = time.time()
                out = learn_online(model, data, batch_size=512, learning_rate=1e-3, seed=seed, verbose=0)
                results["runs"].append(
                    {
                        "dataset_arg": dataset,
                        "dataset": data.name,
                        "backbone": FLAGS.backbone,
                        "variant": label,
                        "seed": seed,
                        "metrics": out["metrics"],
                        "seconds": time.time() - started,
                        "command": "python " + " ".join(sys.argv),
                    }
                )
                results["versions"] = environment_info()
                path.write_text(json.dumps(results, indent=1))
                test = out["metrics"]["test"]
                print(f"[{time.strftime('%H:%M:%S')}] {dataset} {label} seed={seed}: prequential test AUC "
                      f"{test['auc']:.4f} ({time.time() - started:.0f}s)", flush=True)  # fmt: skip
    write_sections("cs3-online")
    print(f"Wrote {path} and BENCHMARKS.md; mean test AUC:",
          {k: float(np.mean([r["metrics"]["test"]["auc"] for r in results["runs"] if r["variant"] == k]))
           for k in VARIANTS})  # fmt: skip


if __name__ == "__main__":
    app.run(main)
