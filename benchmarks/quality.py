"""Quality benchmark: registered models x datasets x protocols x seeds under one training budget.

Protocol (docs/design.md, "Benchmark budget"):
  * every trainable model gets at most 4 hyperparameter settings; each is trained with the first
    seed and the one with the best *validation* metric (NDCG@10, or AUC for pre-ranking) is kept;
  * the kept setting is then trained with every seed; test metrics are reported as mean +- std;
  * early stopping on validation, patience 3, at most 30 epochs.

Every finished run is appended to ``benchmarks/results/<name>.json`` at once (a re-run skips what
is already there), then ``BENCHMARKS.md`` is regenerated from all result files. The run in flight
keeps its training state under ``--resume_root`` at every epoch end: the same command run again
after a crash or a lost session continues it after its last finished epoch (the stored run then
lists ``resumed_at``).

Example (the baseline rows of BENCHMARKS.md):

    python benchmarks/quality.py --name=baseline --models=popularity,dssm,youtubednn \
        --datasets=ml-100k --protocols=retrieval,preranking --seeds=0,1,2
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402
from report import RESULTS_DIR, result_files, write_benchmarks_md  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import load_prepared  # noqa: E402
from tfcs3.data.protocols import RETRIEVAL, USER_SPLIT  # noqa: E402
from tfcs3.evaluation.retrieval import KS  # noqa: E402
from tfcs3.experiment import environment_info, run_experiment  # noqa: E402
from tfcs3.models.registry import is_trainable  # noqa: E402
from tfcs3.training import selection_metric  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("name", "baseline", "Result file name: benchmarks/results/<name>.json.")
flags.DEFINE_list("models", ["popularity", "dssm", "youtubednn"], "Registered models to run.")
flags.DEFINE_list("datasets", ["ml-100k"], "Datasets to run on.")
flags.DEFINE_list("protocols", ["retrieval"], "Protocols: retrieval, preranking and/or user_split.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds; the first one is used for hyperparameter selection.")
flags.DEFINE_integer("epochs", 30, "Most epochs per run.")
flags.DEFINE_integer("patience", 3, "Early-stopping patience (epochs).")
flags.DEFINE_integer("batch_size", 512, "Training batch size.")
flags.DEFINE_string("data_dir", None, "Data folder (default $TFCS3_DATA_DIR).")
flags.DEFINE_integer(
    "verbose",
    2,
    "Keras verbosity of each run: 0 silent, 1 progress bar, 2 one line per epoch (loss, val metric).",
)
flags.DEFINE_integer("max_settings", 4, "Most hyperparameter settings per model (<= 4 by the protocol).")
flags.DEFINE_bool(
    "analysis",
    False,
    "The runs rerun configurations measured elsewhere, for an analysis: the result file says so and "
    "its runs stay out of the pooled tables and settings (it gets a section of its own).",
)
flags.DEFINE_integer(
    "validation_sample",
    None,
    "Judge epochs (early stopping) on this many random validation examples; selection between "
    "settings and the reported validation metrics still use the whole split.",
)
flags.DEFINE_string(
    "resume_root",
    os.environ.get("TFCS3_RESUME_DIR", str(Path.home() / ".cache" / "tfcs3" / "resume")),
    "Where runs in flight keep their training state, one folder per run (default $TFCS3_RESUME_DIR "
    "or ~/.cache/tfcs3/resume); a folder is deleted once its run is stored.",
)

# Hyperparameter grids (at most 4 settings). Keys learning_rate/batch_size go to training, the
# rest to the model builder.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{}],
    "dssm": [
        {"learning_rate": 3e-3, "embedding_dim": 64},
        {"learning_rate": 1e-3, "embedding_dim": 64},
        {"learning_rate": 3e-3, "embedding_dim": 32},
        {"learning_rate": 1e-3, "embedding_dim": 128},
    ],
}
GRIDS["youtubednn"] = GRIDS["dssm"]
# A mechanism reuses its backbone's selected setting (same dataset and protocol) and tunes at most
# two values of its own (docs/design.md).
MECHANISMS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "dat": ("dssm", [{"amm_weight": 0.5}, {"amm_weight": 0.1}]),
    "dat_youtubednn": ("youtubednn", [{"amm_weight": 0.5}, {"amm_weight": 0.1}]),
    "inttower": ("dssm", [{"cir_weight": 0.1}, {"cir_weight": 1.0}]),
    "inttower_youtubednn": ("youtubednn", [{"cir_weight": 0.1}, {"cir_weight": 1.0}]),
    "inttower_dot": ("youtubednn", [{"cir_weight": 0.1}, {"cir_weight": 1.0}]),
}
# CS3 on each dot backbone: the full model and one mechanism at a time (the ablation). A label
# maps to (registered model, fixed hyperparameters); it reuses the backbone's selected setting and
# keeps the paper's alpha = beta = 0.8, one cycle, DCN-v2 ranker (no tuning of its own).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {}
for _backbone in ("dssm", "youtubednn", "dat", "dat_youtubednn", "inttower_dot"):
    _name = f"cs3_{_backbone}"
    for _label, _fixed in {
        _name: {},
        f"{_backbone}+cas": {"cts": False, "cms": False},
        f"{_backbone}+cts": {"cas": "none", "cms": False},
        f"{_backbone}+cms": {"cas": "none", "cts": False},
    }.items():
        VARIANTS[_label] = (_name, _fixed)
        MECHANISMS[_label] = (_backbone, [{}])
# FIT (pre-ranking) on the YouTubeDNN two-tower's setting, tuning the meta size N; its ablations
# reuse FIT's selected setting and switch one mechanism off.
MECHANISMS["fit"] = ("youtubednn", [{"num_meta": 16}, {"num_meta": 4}])
for _label, _fixed in {"fit-no_mqm": {"use_mqm": False}, "fit-no_lss": {"use_lss": False}}.items():
    VARIANTS[_label] = ("fit", _fixed)
    MECHANISMS[_label] = ("fit", [{}])
# SparCode: the YouTubeDNN query encoder's setting, tuning the sparsity bias b; the unrestricted
# all-to-all scorer (same network, continuous tokens) on the same setting.
MECHANISMS["sparcode"] = ("youtubednn", [{"sparsity_bias": 0.0}, {"sparsity_bias": -1.0}])
MECHANISMS["all_to_all"] = ("youtubednn", [{}])
# T2Diff's two stop-gradients leave no parameter shared by the tower loss and the diffusion loss,
# so under Adam lambda only rescales the U-Net's own gradient (the paper's loss): it is not tuned
# (the paper: "1 or 10", its code 0.1 on ML-1M). The ablations reuse T2Diff's setting.
MECHANISMS["t2diff"] = ("youtubednn", [{"diffusion_weight": 1.0}])
for _label, _fixed in {"t2diff-no_diffusion": {"use_diffusion": False}, "t2diff-no_drift": {"drift": False}}.items():
    VARIANTS[_label] = ("t2diff", _fixed)
    MECHANISMS[_label] = ("t2diff", [{}])
# T2Diff with the paper's optional time lag: the same model on data prepared with the history's
# time-gap buckets (load_prepared(history_gaps=True)), on T2Diff's setting. Variants listed here
# load their data with these options.
# T2Diff with the loss that won on the sequence backbones (issue "Every mechanism on the strongest
# backbone"): the full softmax, on T2Diff's setting.
VARIANTS["t2diff-full_softmax"] = ("t2diff", {"loss": "full_softmax"})
MECHANISMS["t2diff-full_softmax"] = ("t2diff", [{}])
VARIANTS["t2diff-time_lag"] = ("t2diff", {})
MECHANISMS["t2diff-time_lag"] = ("t2diff", [{}])
DATA_OPTIONS: dict[str, dict[str, Any]] = {"t2diff-time_lag": {"history_gaps": True}}
# Sequence backbones (issue "Competitive retrieval"): each backbone's grid is tuned once with the
# full softmax (the SASRec+ / RecBole recipe); the other losses reuse its selected setting, so a
# row "<backbone>-<loss>" differs from its backbone's only by the loss. Sampled softmax: 256
# uniform negatives shared by the batch, logQ-corrected, the user's known positives removed.
# The last two settings (added once the first two had run) try the SASRec paper's dropout for dense
# data and a wider table, at the learning rate the first two selected on MovieLens-100K.
GRIDS["sasrec"] = [
    {"learning_rate": 1e-3, "batch_size": 128},
    {"learning_rate": 3e-3, "batch_size": 128},
    {"learning_rate": 3e-3, "batch_size": 128, "dropout": 0.2},
    {"learning_rate": 3e-3, "batch_size": 128, "embedding_dim": 128},
]
GRIDS["gru4rec"] = GRIDS["sasrec"]
LOSS_SETTINGS: dict[str, dict[str, Any]] = {
    "full_softmax": {"loss": "full_softmax"},
    "sampled_softmax": {"loss": "sampled_softmax", "num_negatives": 256, "negative_sampler": "uniform"},
    "mixed_softmax": {
        "loss": "sampled_softmax", "num_negatives": 256, "negative_sampler": "uniform", "mixed_negatives": True,
    },
    "in_batch": {"loss": "in_batch"},
}  # fmt: skip
for _backbone in ("sasrec", "gru4rec"):
    VARIANTS[f"{_backbone}-full_softmax"] = (_backbone, LOSS_SETTINGS["full_softmax"])
    GRIDS[f"{_backbone}-full_softmax"] = GRIDS[_backbone]
    for _loss in ("sampled_softmax", "mixed_softmax", "in_batch"):
        VARIANTS[f"{_backbone}-{_loss}"] = (_backbone, LOSS_SETTINGS[_loss])
        MECHANISMS[f"{_backbone}-{_loss}"] = (f"{_backbone}-full_softmax", [{}])
# The mechanisms on the strongest backbone (issue "Every mechanism on the strongest backbone"):
# SASRec with the full softmax, on its selected setting; each tunes at most two values of its own
# (CS3 with memories: drop_known_positives, as on the other backbones), and CS3's ablation keeps
# the paper's values.
MECHANISMS["dat_sasrec"] = ("sasrec-full_softmax", [{"amm_weight": 0.5}, {"amm_weight": 0.1}])
# DAT's per-user and per-item vectors on SASRec without its two losses (the mimic and the category
# alignment): separates the capacity the vectors add from what the losses teach them.
VARIANTS["dat_sasrec-no_losses"] = ("dat_sasrec", {"amm_weight": 0.0, "cal_weight": 0.0})
MECHANISMS["dat_sasrec-no_losses"] = ("sasrec-full_softmax", [{}])
MECHANISMS["inttower_sasrec"] = ("sasrec-full_softmax", [{"cir_weight": 0.1}, {"cir_weight": 1.0}])
for _label, _fixed in {
    "cs3_sasrec": {},
    "sasrec+cas": {"cts": False, "cms": False},
    "sasrec+cts": {"cas": "none", "cms": False},
    "sasrec+cms": {"cas": "none", "cts": False},
}.items():
    VARIANTS[_label] = ("cs3_sasrec", _fixed)
    MECHANISMS[_label] = ("sasrec-full_softmax", [{}])
# SASRec with the user id among its profile features (profile="all"; the backbone's default,
# "features", leaves it out), on SASRec's selected setting: the backbone change that the DAT control
# (DAT's vectors without its losses beat SASRec on validation and test) points at.
VARIANTS["sasrec-user_id"] = ("sasrec", {**LOSS_SETTINGS["full_softmax"], "profile": "all"})
MECHANISMS["sasrec-user_id"] = ("sasrec-full_softmax", [{}])
# The YouTubeDNN two-tower (in-batch softmax in the baseline rows) with the other losses, on its
# selected setting.
for _loss in ("full_softmax", "sampled_softmax", "mixed_softmax"):
    VARIANTS[f"youtubednn-{_loss}"] = ("youtubednn", LOSS_SETTINGS[_loss])
    MECHANISMS[f"youtubednn-{_loss}"] = ("youtubednn", [{}])
TRAINING_KEYS = ("learning_rate", "batch_size")
# T2Diff's published protocol (tfcs3.data.protocols.prepare_user_split, split seed 0): retrieval
# models on users never seen in training, also scored at the paper's cut-offs. Plain models and
# mechanisms' backbones reuse the settings selected under the retrieval protocol (no grid); a
# mechanism's own values are still chosen on this protocol's validation users. Models keyed by the
# user id (DAT, CS3) do not apply: the split has no user id.
USER_SPLIT_KS = (2, 20)
# Extra measurements of a trained model, stored in its run: {registered model: fn(model, data)}
# (benchmarks/sparcode.py adds the inverted-index evaluation of SparCode).
POST_RUN: dict[str, Any] = {}


def backbone_setting(backbone: str, dataset: str, protocol: str) -> dict[str, Any]:
    """The setting selected for ``backbone`` on (dataset, protocol) in any result file. A mechanism
    whose grid holds one setting selects it whether or not it has run (so its ablations need not
    wait for it)."""
    if backbone in MECHANISMS:
        grid = grid_for(backbone, dataset, protocol)
        if len(grid) == 1:
            return dict(grid[0])
    for path in result_files():
        for run in json.loads(path.read_text()).get("runs", []):
            if run.get("selected") and (run["model"], run["dataset_arg"], run["protocol"]) == (
                backbone,
                dataset,
                protocol,
            ):
                return dict(run["setting"])
    raise ValueError(
        f"no selected {backbone} run for {dataset}/{protocol} in {RESULTS_DIR}: benchmark the backbone first"
    )


def grid_for(model: str, dataset: str, protocol: str) -> list[dict[str, Any]]:
    if protocol == USER_SPLIT and len(GRIDS.get(model, [])) > 1:
        return [backbone_setting(model, dataset, RETRIEVAL)]
    if model in MECHANISMS:
        backbone, own = MECHANISMS[model]
        registered, fixed = VARIANTS.get(model, (model, {}))
        memories = fixed.get("cts", True) is not False or fixed.get("cms", True) is not False
        if registered.startswith("cs3_") and protocol == "retrieval" and memories:
            # CS3 with memories tunes one value of its own in retrieval: whether the query user's
            # known positives are dropped as in-batch negatives (tfcs3.cs3.model).
            own = [{}, {"drop_known_positives": False}]
        from_retrieval = protocol == USER_SPLIT and backbone in GRIDS
        base = backbone_setting(backbone, dataset, RETRIEVAL if from_retrieval else protocol)
        return [{**base, **values} for values in own]
    return GRIDS.get(model, [{}])


def _key(run: dict[str, Any]) -> str:
    key = [run["model"], run["dataset_arg"], run["protocol"], run["seed"], run["setting"]]
    if run.get("validation_sample") is not None:  # judged on a sample: a different run
        key.append(run["validation_sample"])
    return json.dumps(key, sort_keys=True)


def _load(path: Path) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text())
    return {"name": path.stem, "runs": []}


def _save(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)


def _resume_dir(key: str) -> Path:
    return Path(FLAGS.resume_root) / f"{FLAGS.name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"


def _run_one(
    model: str, dataset: str, protocol: str, seed: int, setting: dict[str, Any], data, resume_dir: Path
) -> dict[str, Any]:
    training = {k: v for k, v in setting.items() if k in TRAINING_KEYS}
    hparams = {k: v for k, v in setting.items() if k not in TRAINING_KEYS}
    registered, fixed = VARIANTS.get(model, (model, {}))
    result = run_experiment(
        registered,
        dataset,
        protocol,
        seed=seed,
        epochs=FLAGS.epochs,
        patience=FLAGS.patience,
        batch_size=training.get("batch_size", FLAGS.batch_size),
        learning_rate=training.get("learning_rate", 3e-3),
        hparams={**hparams, **fixed},
        data=data,
        verbose=FLAGS.verbose,
        ks=sorted({*KS, *USER_SPLIT_KS}) if protocol == USER_SPLIT else KS,
        validation_sample=FLAGS.validation_sample,
        resume_dir=resume_dir,
        **DATA_OPTIONS.get(model, {}),
    )
    fit = result.get("fit", {})
    extra = {"registered_model": registered, "fixed_hparams": fixed} if model in VARIANTS else {}
    if model in DATA_OPTIONS:
        extra["data_options"] = DATA_OPTIONS[model]
    if fit.get("resumed_at"):
        extra["resumed_at"] = fit["resumed_at"]
    if registered in POST_RUN:
        extra.update(POST_RUN[registered](result["_model"], data))
    if is_trainable(result["_model"]):
        for key, report in result["_model"].training_report().items():
            extra[key] = {k: v for k, v in report.items() if k != "history"}
    return {
        **extra,
        "model": model,
        "dataset_arg": dataset,
        "dataset": result["dataset"],
        "dataset_description": result["dataset_description"],
        "protocol": protocol,
        "seed": seed,
        "setting": setting,
        "validation": result["validation"],
        "test": result["test"],
        "best_epoch": fit.get("best_epoch"),
        "epochs_run": fit.get("epochs_run"),
        "max_epochs": FLAGS.epochs,
        "validation_sample": FLAGS.validation_sample,
        "train_seconds": fit.get("train_seconds", 0.0),
        "wall_seconds": result["wall_seconds"],
        "selection_metric": result["selection_metric"],
        "command": "python " + " ".join(sys.argv),
    }


def _run_or_reuse(
    results: dict[str, Any], path: Path, cell: tuple, seed: int, setting: dict[str, Any], selected: bool
) -> dict[str, Any]:
    """Returns the stored run for (cell, seed, setting), or trains it and saves it at once."""
    model, dataset, protocol, data = cell
    probe = {
        "model": model,
        "dataset_arg": dataset,
        "protocol": protocol,
        "seed": seed,
        "setting": setting,
        "validation_sample": FLAGS.validation_sample,
    }
    resume_dir = _resume_dir(_key(probe))
    for r in results["runs"]:
        if _key(r) == _key(probe):
            r["selected"] = r.get("selected", False) or selected
            shutil.rmtree(resume_dir, ignore_errors=True)  # left by a crash after the run was stored
            return r
    started = time.time()
    r = _run_one(model, dataset, protocol, seed, setting, data, resume_dir)
    r["selected"] = selected
    results["runs"].append(r)
    _save(path, results)
    shutil.rmtree(resume_dir, ignore_errors=True)
    metric = r["selection_metric"]
    print(
        f"[{time.strftime('%H:%M:%S')}] {dataset}/{protocol}/{model} seed={seed} {setting}: "
        f"val {metric}={r['validation'][metric]:.4f} test {metric}={r['test'][metric]:.4f} "
        f"({time.time() - started:.0f}s, {r['epochs_run']} epochs)",
        flush=True,
    )
    return r


def run_configuration(
    argv: list[str],
    name: str,
    post_run: dict[str, Any] | None = None,
    models: list[str] | None = None,
    analysis: bool = False,
) -> None:
    """Runs the harness as a named configuration (the scripts beside this one): ``name``,
    ``models`` and ``analysis`` are the defaults of ``--name``, ``--models`` and ``--analysis``,
    and ``post_run`` adds measurements of each trained model to its run (:data:`POST_RUN`)."""
    if FLAGS["name"].using_default_value:
        FLAGS.name = name
    if models is not None and FLAGS["models"].using_default_value:
        FLAGS.models = models
    if FLAGS["analysis"].using_default_value:
        FLAGS.analysis = analysis
    POST_RUN.update(post_run or {})
    main(argv)


def main(argv: list[str]) -> None:
    del argv
    logging.set_verbosity(logging.WARNING)
    path = RESULTS_DIR / f"{FLAGS.name}.json"
    results = _load(path)
    results["command"] = "python " + " ".join(sys.argv)
    results["analysis"] = bool(FLAGS.analysis)
    results["versions"] = environment_info()
    results["budget"] = {"epochs": FLAGS.epochs, "patience": FLAGS.patience, "batch_size": FLAGS.batch_size}
    if FLAGS.validation_sample is not None:
        results["budget"]["validation_sample"] = FLAGS.validation_sample
    seeds = [int(s) for s in FLAGS.seeds]
    for dataset in FLAGS.datasets:
        for protocol in FLAGS.protocols:
            plain = load_prepared(dataset, protocol, FLAGS.data_dir, seed=seeds[0])
            metric = selection_metric(protocol)
            for model in FLAGS.models:
                options = DATA_OPTIONS.get(model, {})
                data = load_prepared(dataset, protocol, FLAGS.data_dir, seed=seeds[0], **options) if options else plain
                grid = grid_for(model, dataset, protocol)[: FLAGS.max_settings]

                for r in results["runs"]:
                    if (r["model"], r["dataset_arg"], r["protocol"]) == (model, dataset, protocol):
                        r["selected"] = False
                cell = (model, dataset, protocol, data)
                trials = [_run_or_reuse(results, path, cell, seeds[0], s, False) for s in grid]
                best = max(range(len(grid)), key=lambda i: trials[i]["validation"][metric])
                for seed in seeds:
                    _run_or_reuse(results, path, cell, seed, grid[best], True)
                _save(path, results)
    write_benchmarks_md()
    print(f"Wrote {path} and BENCHMARKS.md")


if __name__ == "__main__":
    app.run(main)
