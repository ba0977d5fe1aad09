"""T2Diff's accuracy against the number of reverse steps at inference (issue "Fast serving").

The same trained models are evaluated with the DDPM chain they were trained for (T = 50 steps,
the T2Diff benchmark's setting) and with the training-free DDIM sampler
(:class:`tfcs3.layers.DiffusionIntentGenerator`, ``serving_steps``) at 20, 10, 5, 2 and 1 steps.

For each seed, T2Diff trains once on the retrieval protocol with its benchmark setting (the
YouTubeDNN two-tower's selected setting and lambda = 1, read from the quality harness's result
files), as ``benchmarks/quality.py`` trains it; the trained model is kept under ``--work_dir`` so
an interrupted run resumes (a killed training resumes from its last epoch). Every step count is
then scored on validation and test. The recommended step count is chosen on validation only: the
fewest steps whose mean validation NDCG@10 over the seeds is at least the chain's mean minus one
seed standard deviation of the chain.

    python benchmarks/t2diff_steps.py --seeds=0,1,2   # -> benchmarks/results/t2diff-steps.json

The latency of each step count is measured by ``benchmarks/t2diff_latency.py`` (idle machine).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import quality  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from report import write_sections  # noqa: E402

from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.evaluation import evaluate  # noqa: E402
from tfcs3.experiment import environment_info, load_run, run_experiment  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "ml-100k", "Dataset (retrieval protocol).")
flags.DEFINE_list("steps", ["50", "20", "10", "5", "2", "1"], "Reverse step counts (the first: the trained chain).")
flags.DEFINE_string(
    "work_dir", "benchmarks/resume/t2diff-steps", "Where the trained models are kept between runs (and sessions)."
)

RESULT = quality.RESULTS_DIR / "t2diff-steps.json"


def _trained(seed: int, setting: dict[str, Any], data: Any) -> tuple[Any, dict[str, Any]]:
    """The trained T2Diff of ``seed`` (trained now, or reloaded from ``--work_dir``) and its
    training record with the chain's validation and test metrics."""
    run_dir = Path(FLAGS.work_dir) / f"{FLAGS.dataset}-seed{seed}"
    if not (run_dir / "metrics.json").is_file():
        training = {k: v for k, v in setting.items() if k in quality.TRAINING_KEYS}
        run_experiment(
            "t2diff",
            FLAGS.dataset,
            "retrieval",
            output_dir=run_dir,
            seed=seed,
            epochs=FLAGS.epochs,
            patience=FLAGS.patience,
            batch_size=training.get("batch_size", FLAGS.batch_size),
            learning_rate=training.get("learning_rate", 3e-3),
            hparams={k: v for k, v in setting.items() if k not in quality.TRAINING_KEYS},
            data=data,
            verbose=FLAGS.verbose,
            resume_dir=Path(FLAGS.work_dir) / f"{FLAGS.dataset}-seed{seed}-resume",
        )
    model, _, _ = load_run(run_dir, FLAGS.data_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return model, {**metrics.get("fit", {}), "validation": metrics["validation"], "test": metrics["test"]}


def recommended_steps(runs: list[dict[str, Any]], chain: int) -> int:
    """The fewest steps whose mean validation NDCG@10 is at least the chain's mean minus the
    chain's seed standard deviation (validation only)."""
    by_steps: dict[int, list[float]] = {}
    for r in runs:
        by_steps.setdefault(r["steps"], []).append(r["validation"]["ndcg@10"])
    reference = np.asarray(by_steps[chain])
    floor = reference.mean() - (reference.std(ddof=1) if len(reference) > 1 else 0.0)
    return min(s for s, values in by_steps.items() if np.mean(values) >= floor)


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    results = json.loads(RESULT.read_text()) if RESULT.is_file() else {"runs": []}
    results.update(command="python " + " ".join(sys.argv), versions=environment_info(), dataset=FLAGS.dataset)
    setting = quality.grid_for("t2diff", FLAGS.dataset, "retrieval")[0]
    data = load_prepared(FLAGS.dataset, "retrieval", FLAGS.data_dir)
    steps = [int(s) for s in FLAGS.steps]
    for seed in (int(s) for s in FLAGS.seeds):
        done = {(r["seed"], r["steps"]) for r in results["runs"]}
        if all((seed, s) in done for s in steps):
            continue
        model, fit = _trained(seed, setting, data)
        chain = model.hparams["diffusion_steps"]
        for count in steps:
            if (seed, count) in done:
                continue
            model.set_serving_steps(None if count == chain else count)
            started = time.time()
            if count == chain and "validation" in fit:  # scored at the end of training already
                scores = {split: fit[split] for split in ("validation", "test")}
            else:
                scores = {split: evaluate(model, data, split) for split in ("validation", "test")}
            row = {
                "seed": seed,
                "steps": count,
                "sampler": "ddpm" if count == chain else "ddim",
                "setting": setting,
                "best_epoch": fit.get("best_epoch"),
                **scores,
                "eval_seconds": time.time() - started,
            }
            results["runs"].append(row)
            results["chain_steps"] = chain
            results["recommended_steps"] = recommended_steps(results["runs"], chain)
            RESULT.write_text(json.dumps(results, indent=1))
            print(
                f"[{time.strftime('%H:%M:%S')}] seed {seed}, {count} steps: val NDCG@10 "
                f"{scores['validation']['ndcg@10']:.4f}, test {scores['test']['ndcg@10']:.4f}",
                flush=True,
            )
    write_sections("t2diff")
    print(f"Wrote {RESULT}; recommended steps (validation): {results.get('recommended_steps')}")


if __name__ == "__main__":
    app.run(main)
