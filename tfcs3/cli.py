"""Command line: ``python -m tfcs3 <command> [--flags]``.

Commands:
    train     train a registered model on a dataset and write a run directory
    evaluate  re-evaluate a run directory (``--run_dir``) on a split
    export    export a run directory as a SavedModel for TF Serving (``--export_dir``, ``--index``)
    benchmark export a run directory (same flags) and time every signature at batch 1 and 64 on
              raw requests of test users; prints p50 / p99 and writes ``latency.json`` to the run
    online    learn one time-ordered pass, predicting each batch before learning it (prequential
              metrics), exporting a new version every ``--export_every`` steps
    query     ask the latest export of a run (``--export_dir``) for one test user's top-k
              (``--user``, ``--top_k``), as a client would, and check it against the run's model
    demo      train YouTubeDNN on MovieLens-100K, evaluate, export, and query the export for one user
    models    list the registered models and their protocols; with ``--model``, that model's
              hyperparameters and their defaults (what ``--hparams`` accepts)

``python -m tfcs3 --help`` lists the commands and tfcs3's flags, ``python -m tfcs3 <command>
--help`` the flags that command reads, ``--helpfull`` every flag.
A mistake (unknown model or dataset, bad hyperparameter, missing run or data folder) prints one
line and exits with status 2; set ``TFCS3_TRACEBACK=1`` to see the traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from absl import app, flags, logging

import tfcs3  # noqa: F401  (selects Keras 2 before TensorFlow loads)
from tfcs3.data.datasets import DATASETS, find_data_dir, load_prepared
from tfcs3.data.described import is_description
from tfcs3.data.prepared import PreparedData
from tfcs3.data.protocols import DATA_PROTOCOLS, RETRIEVAL, USER_SPLIT
from tfcs3.data.raw import DataFormatError
from tfcs3.distribute import STRATEGIES, is_chief
from tfcs3.evaluation.evaluate import evaluate
from tfcs3.experiment import environment_info, load_run, run_experiment
from tfcs3.export import export_latency, export_model, next_version, recommend_for_user
from tfcs3.models.registry import build_model, check_model_name, model_hparams, model_names, protocols_of
from tfcs3.models.retriever import Retriever
from tfcs3.models.t2diff import T2DiffModel
from tfcs3.online import learn_online
from tfcs3.retrieval import INDEXES, ScannOptions

COMMANDS = ("train", "evaluate", "export", "benchmark", "query", "online", "demo", "models")
_DATA = ("dataset", "protocol", "data_dir", "download", "max_history", "history_gaps")
_MODEL = ("model", "embedding_dim", "hidden_units", "temperature", "loss", "num_negatives", "negative_sampler",
          "mixed_negatives", "hparams")  # fmt: skip
_TRAINING = ("epochs", "patience", "validation_sample", "seed", "batch_size", "learning_rate", "verbose")
_EXPORT = ("export_dir", "model_name", "version", "index", "k", "warmup", "diffusion_serving_steps", "scann_leaves",
           "scann_leaves_to_search", "scann_reorder", "sparse_top_t")  # fmt: skip
#: The flags each command reads (``python -m tfcs3 <command> --help`` lists them).
COMMAND_FLAGS: dict[str, tuple[str, ...]] = {
    "train": (*_MODEL, *_DATA, *_TRAINING, "strategy", "global_negatives", "output_dir", "resume"),
    "evaluate": ("run_dir", "data_dir", "split", "diffusion_serving_steps"),
    "export": ("run_dir", "data_dir", *_EXPORT),
    "benchmark": ("run_dir", "data_dir", *_EXPORT, "seconds", "candidates"),
    "query": ("run_dir", "data_dir", "export_dir", "model_name", "user", "top_k"),
    "online": (
        *_MODEL,
        *_DATA,
        "seed",
        "batch_size",
        "learning_rate",
        "verbose",
        "output_dir",
        "export_every",
        "export_dir",
        "model_name",
    ),  # fmt: skip
    "demo": ("data_dir", "download", "epochs", "user", "top_k", "verbose"),
    "models": ("model",),
}

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "youtubednn", f"Registered model: one of {model_names()}.")
flags.DEFINE_string(
    "dataset",
    "ml-100k",
    f"Dataset to train and evaluate on: one of {', '.join(DATASETS)}, or the path of a dataset description "
    "(.toml / .json: your own log; see tfcs3.data.described).",
)

flags.DEFINE_enum(
    "protocol",
    RETRIEVAL,
    list(DATA_PROTOCOLS),
    "Evaluation protocol (see docs/design.md); user_split is T2Diff's, preranking_per_user the per-user split.",
)
flags.DEFINE_string(
    "data_dir", None, "Folder with the dataset files (or their parent); default $TFCS3_DATA_DIR, then ~/.cache/tfcs3."
)
flags.DEFINE_bool("download", False, "Download MovieLens from GroupLens if it is not found locally.")
flags.DEFINE_integer("epochs", 30, "Most training epochs (early stopping on validation may stop sooner).")
flags.DEFINE_integer("patience", 3, "Epochs without validation improvement before stopping.")
flags.DEFINE_integer(
    "validation_sample", None, "train: judge epochs on this many random validation examples (default: all)."
)
flags.DEFINE_integer("seed", 0, "Random seed (weights, shuffling, synthetic data).")
flags.DEFINE_string("output_dir", None, "Run directory to write (default runs/<dataset>-<model>-<time>).")
flags.DEFINE_bool(
    "resume",
    False,
    "train: keep the training state in <output_dir>/resume at every epoch end and, when the same "
    "command was interrupted before, continue after its last finished epoch (needs --output_dir).",
)
flags.DEFINE_integer(
    "batch_size", 512, "Training batch size, the global batch under --strategy (= in-batch negatives for retrieval)."
)
flags.DEFINE_string(
    "strategy",
    "default",
    f"tf.distribute strategy: one of {', '.join(STRATEGIES)} (multi_worker reads the cluster from TF_CONFIG; "
    "see docs/scaling_out.md).",
)
flags.DEFINE_boolean(
    "global_negatives",
    True,
    "With several replicas, softmax negatives come from every replica (--noglobal_negatives: each replica's own).",
)
flags.DEFINE_float("learning_rate", 3e-3, "Adam learning rate.")
flags.DEFINE_integer("embedding_dim", 64, "Width of feature embeddings and tower outputs.")
flags.DEFINE_list(
    "hidden_units",
    None,
    "Hidden layer widths of each tower, comma-separated (default: the model's own; 128 for the "
    "two-towers; SASRec's feed-forward width 256, GRU4Rec's GRU width 128).",
)
flags.DEFINE_float("temperature", 1.0, "Softmax temperature of the retrieval loss.")
flags.DEFINE_enum(
    "loss",
    None,
    ["in_batch", "full_softmax", "sampled_softmax"],
    "Retrieval loss of a dot-product model (default: the model's own): in-batch softmax with logQ, "
    "the exact softmax over the whole catalog, or sampled softmax with --num_negatives shared negatives.",
)
flags.DEFINE_integer("num_negatives", None, "--loss=sampled_softmax: negatives per batch (default 256).")
flags.DEFINE_enum(
    "negative_sampler", None, ["uniform", "popularity"], "--loss=sampled_softmax: how negatives are drawn."
)
flags.DEFINE_bool("mixed_negatives", None, "--loss=sampled_softmax: also use the batch's other positives as negatives.")
flags.DEFINE_string(
    "hparams",
    None,
    'Extra model hyperparameters as JSON, e.g. \'{"cts": false, "alpha": 0.5}\' for cs3_* models.',
)
flags.DEFINE_integer("export_every", None, "online: export a new SavedModel version every N steps.")
flags.DEFINE_integer("max_history", 50, "Most recent items kept in the history feature.")
flags.DEFINE_bool(
    "history_gaps", False, "Add the history's log-bucketised time gaps (feature history_gap; T2Diff's time lag)."
)
flags.DEFINE_string("run_dir", None, "evaluate: the run directory written by train.")
flags.DEFINE_enum("split", "test", ["validation", "test"], "evaluate: split to score.")
flags.DEFINE_string("user", None, "demo, query: raw user id to recommend for (default: the first test user).")
flags.DEFINE_integer("top_k", 10, "demo, query: how many recommendations to print.")
flags.DEFINE_string("export_dir", "exports", "export: base directory; writes <export_dir>/<model_name>/<version>/.")
flags.DEFINE_string("model_name", None, "export: TF Serving model name (default: the registered model name).")
flags.DEFINE_integer("version", None, "export: version number (default: the next free one; never overwrites).")
flags.DEFINE_enum(
    "index",
    "brute_force",
    sorted(INDEXES),
    "export: top-k index (scann needs its ops; sparse_code is SparCode's inverted index).",
)
flags.DEFINE_integer("k", 100, "export: how many items serving_default returns.")
flags.DEFINE_bool(
    "warmup", True, "export: write TF Serving warm-up requests (assets.extra/tf_serving_warmup_requests)."
)
flags.DEFINE_integer(
    "diffusion_serving_steps",
    None,
    "evaluate/export/benchmark: T2Diff's reverse steps (fewer than its diffusion_steps: the DDIM sampler).",
)
flags.DEFINE_integer("scann_leaves", None, "export --index=scann: tree leaves (0 = no tree; default by catalog size).")
flags.DEFINE_integer("scann_leaves_to_search", None, "export --index=scann: leaves searched per query.")
flags.DEFINE_integer("scann_reorder", None, "export --index=scann: candidates re-scored exactly (0 = none).")
flags.DEFINE_integer("sparse_top_t", None, "export --index=sparse_code: posting-list cap per code (default: exact).")
flags.DEFINE_float("seconds", 2.0, "benchmark: timing budget per signature and batch size.")
flags.DEFINE_integer("candidates", 500, "benchmark: candidates per request for score_candidates.")
flags.DEFINE_integer(
    "verbose",
    None,
    "Keras verbosity: 0 silent, 1 progress bar, 2 one line per epoch (default: 1 on a terminal, else 2).",
)


def _hparams() -> dict[str, Any]:
    if FLAGS.model == "popularity":
        return {}
    extra = {}
    if FLAGS.hparams:
        try:
            extra = json.loads(FLAGS.hparams)
        except json.JSONDecodeError as err:
            raise app.UsageError(f"--hparams is not valid JSON ({err}): {FLAGS.hparams!r}") from err
        if not isinstance(extra, dict):
            raise app.UsageError(f"--hparams must be a JSON object, got {FLAGS.hparams!r}")
    hparams: dict[str, Any] = {"embedding_dim": FLAGS.embedding_dim}
    if FLAGS.hidden_units is not None:
        try:
            hparams["hidden_units"] = [int(u) for u in FLAGS.hidden_units]
        except ValueError as err:
            raise app.UsageError(f"--hidden_units must be integers, got {','.join(FLAGS.hidden_units)!r}") from err
    if FLAGS["temperature"].present:  # models without a softmax temperature (FIT) reject it
        hparams["temperature"] = FLAGS.temperature
    for name in ("loss", "num_negatives", "negative_sampler", "mixed_negatives"):  # retrieval dot models only
        if FLAGS[name].value is not None:
            hparams[name] = FLAGS[name].value
    return {**hparams, **extra}


def _training_flags() -> dict[str, Any]:
    return dict(
        data_dir=FLAGS.data_dir,
        seed=FLAGS.seed,
        epochs=FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        patience=FLAGS.patience,
        max_history=FLAGS.max_history,
        history_gaps=FLAGS.history_gaps,
        download=FLAGS.download,
        verbose=FLAGS.verbose if FLAGS.verbose is not None else (1 if sys.stdout.isatty() else 2),
    )


def format_metrics(rows: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per name, one column per metric."""
    columns = list(next(iter(rows.values())))
    width = max(len(n) for n in rows) + 2
    lines = [" " * width + "".join(f"{c:>12}" for c in columns)]
    for name, metrics in rows.items():
        lines.append(f"{name:<{width}}" + "".join(f"{metrics[c]:>12.4f}" for c in columns))
    return "\n".join(lines)


def _summary(metrics: dict[str, float]) -> dict[str, float]:
    keep = ("recall@10", "ndcg@10", "mrr@10", "recall@50", "ndcg@50", "recall@100", "auc", "logloss", "gauc")
    return {k: metrics[k] for k in keep if k in metrics}


def _default_output_dir(name: str) -> Path:
    dataset = Path(FLAGS.dataset).stem if is_description(FLAGS.dataset) else FLAGS.dataset
    return Path("runs") / f"{dataset}-{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_train() -> None:
    check_model_name(FLAGS.model)  # before any data is read: the cheaper mistake first
    if FLAGS.resume and not FLAGS.output_dir:
        raise app.UsageError("--resume needs --output_dir (the run directory of the interrupted command)")
    out = Path(FLAGS.output_dir) if FLAGS.output_dir else _default_output_dir(FLAGS.model)
    resume_dir = out / "resume" if FLAGS.resume else None
    result = run_experiment(
        FLAGS.model,
        FLAGS.dataset,
        FLAGS.protocol,
        output_dir=out,
        hparams=_hparams(),
        validation_sample=FLAGS.validation_sample,
        resume_dir=resume_dir,
        strategy=FLAGS.strategy,
        global_negatives=FLAGS.global_negatives,
        **_training_flags(),
    )
    chief = is_chief()
    if resume_dir is not None and chief:  # the run directory now holds the result
        shutil.rmtree(resume_dir, ignore_errors=True)
    print(f"\n{result['dataset_description']} - {FLAGS.model}, {FLAGS.protocol} protocol")
    print(format_metrics({"validation": _summary(result["validation"]), "test": _summary(result["test"])}))
    if chief:
        print(f"\nRun written to {out} (metrics.json, weights, tensorboard/)")
    else:
        print("\nThis worker wrote nothing: the cluster's chief writes the run")


def _load_run() -> tuple[Any, PreparedData, dict[str, Any]]:
    """The model, data and config of ``--run_dir``, with ``--diffusion_serving_steps`` applied."""
    model, data, config = load_run(FLAGS.run_dir, FLAGS.data_dir)
    steps = FLAGS.diffusion_serving_steps
    if steps is not None:
        if not isinstance(model, T2DiffModel) or model.generator is None:
            raise app.UsageError(f"--diffusion_serving_steps applies to T2Diff with diffusion, not {config['model']}")
        try:
            model.set_serving_steps(steps)
        except ValueError as err:
            raise app.UsageError(f"--diffusion_serving_steps: {err}") from err
    return model, data, config


def cmd_evaluate() -> None:
    if not FLAGS.run_dir:
        raise app.UsageError("evaluate needs --run_dir (a directory written by `python -m tfcs3 train`)")
    model, data, config = _load_run()
    metrics = evaluate(model, data, FLAGS.split)
    print(f"{data.description} - {config['model']}, {data.protocol} protocol, {FLAGS.split} split")
    print(format_metrics({FLAGS.split: _summary(metrics)}))
    print(json.dumps(metrics, indent=2))


def _export(model: Retriever, data: PreparedData, export_dir: str | Path, model_name: str) -> Path:
    """Exports ``model`` with the index chosen by the export flags."""
    options = None
    if FLAGS.index == "scann":
        options = ScannOptions.for_catalog(data.num_items, FLAGS.k)
        overrides = {
            "num_leaves": FLAGS.scann_leaves,
            "num_leaves_to_search": FLAGS.scann_leaves_to_search,
            "reorder": FLAGS.scann_reorder,
        }
        options = dataclasses.replace(options, **{k: v for k, v in overrides.items() if v is not None})
    return export_model(
        model, data, export_dir, model_name, FLAGS.version, FLAGS.index, FLAGS.k, options, FLAGS.sparse_top_t,
        warmup=FLAGS.warmup,
    )  # fmt: skip


def cmd_export() -> None:
    if not FLAGS.run_dir:
        raise app.UsageError("export needs --run_dir (a directory written by `python -m tfcs3 train`)")
    model, data, config = _load_run()
    path = _export(model, data, FLAGS.export_dir, FLAGS.model_name or config["model"])
    print(f"Exported {config['model']} ({FLAGS.index} index, top-{FLAGS.k}) to {path}")


def cmd_query() -> None:
    """Queries the newest version under ``<export_dir>/<model_name>`` for one test user."""
    if not FLAGS.run_dir:
        raise app.UsageError("query needs --run_dir (a directory written by `python -m tfcs3 train`)")
    model, data, config = _load_run()
    base = Path(FLAGS.export_dir) / (FLAGS.model_name or config["model"])
    latest = next_version(base) - 1
    if latest < 1:
        raise FileNotFoundError(f"{base} holds no exported version: run `python -m tfcs3 export --run_dir=...` first")
    print(recommend_for_user(base / str(latest), model, data, FLAGS.user, FLAGS.top_k))


def cmd_benchmark() -> None:
    """Exports the run (export flags) to a temporary directory and times every signature."""
    if not FLAGS.run_dir:
        raise app.UsageError("benchmark needs --run_dir (a directory written by `python -m tfcs3 train`)")
    model, data, config = _load_run()
    with tempfile.TemporaryDirectory(prefix="tfcs3-benchmark-") as tmp:
        path = _export(model, data, tmp, config["model"])
        print(f"Timing {config['model']} exported with the {FLAGS.index} index ({data.num_items} items) ...")
        try:
            rows = export_latency(path, model, data, FLAGS.seconds, FLAGS.candidates)
        except ValueError as err:
            raise app.UsageError(str(err)) from err
    lines = [f"{'signature':18s} {'batch':>5s} {'p50 ms':>9s} {'p99 ms':>9s} {'queries/s':>10s}"]
    for r in rows:
        timing = f"{r['p50_ms']:9.3f} {r['p99_ms']:9.3f} {r['queries_per_second']:10.0f}"
        lines.append(f"{r['signature']:18s} {r['batch']:5d} {timing}")
    print("\n".join(lines))
    report = {
        "index": FLAGS.index,
        "k": FLAGS.k,
        "candidates": FLAGS.candidates,
        "rows": rows,
        "cpu_count": os.cpu_count(),
        "versions": environment_info(),
        "command": " ".join(sys.argv),
    }
    out = Path(FLAGS.run_dir) / "latency.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nWritten to {out} (timings share the CPU with everything else running)")


def cmd_online() -> None:
    """One time-ordered pass with prequential evaluation (tfcs3.online), optional periodic exports."""
    if FLAGS.protocol == USER_SPLIT:
        raise app.UsageError("online learns in time order: use --protocol=retrieval or preranking, not user_split")
    flags_ = _training_flags()
    data = load_prepared(
        FLAGS.dataset,
        FLAGS.protocol,
        flags_["data_dir"],
        FLAGS.max_history,
        FLAGS.download,
        seed=FLAGS.seed,
        history_gaps=FLAGS.history_gaps,
    )
    model = build_model(FLAGS.model, data, **_hparams())
    export_dir = Path(FLAGS.export_dir) if FLAGS.export_every else None
    print(f"Online learning of {FLAGS.model} on {data.description} ({data.protocol}): predict, then learn ...")
    result = learn_online(
        model,
        data,
        batch_size=FLAGS.batch_size,
        learning_rate=FLAGS.learning_rate,
        export_every=FLAGS.export_every,
        export_dir=export_dir,
        export_name=FLAGS.model_name or FLAGS.model,
        index=FLAGS.index,
        seed=FLAGS.seed,
        verbose=1 if flags_["verbose"] == 1 else 0,
    )
    print(f"\nPrequential metrics ({result['steps']} steps, {result['examples']} examples, {result['seconds']:.0f} s):")
    print(format_metrics({f"{split} (prequential)": _summary(m) for split, m in result["metrics"].items()}))
    for path in result["exports"]:
        print(f"exported {path}")


def cmd_demo() -> None:
    dataset = "ml-100k"
    try:
        find_data_dir(dataset, FLAGS.data_dir, download=True)
    except Exception as err:  # noqa: BLE001 - any failure (no data, no network) falls back
        print(
            f"\n*** MovieLens-100K is not available ({err}).\n"
            "*** Falling back to the SYNTHETIC dataset: the numbers below are NOT MovieLens results.\n"
            "*** Point --data_dir or TFCS3_DATA_DIR at a folder holding u.data, u.user and u.item.\n",
            file=sys.stderr,
        )
        dataset = "synthetic"
    out = Path(FLAGS.output_dir) if FLAGS.output_dir else Path("runs") / f"demo-{dataset}"
    print(f"Training YouTubeDNN two-tower on {dataset} (early stopping on validation NDCG@10) ...")
    hparams = {"embedding_dim": FLAGS.embedding_dim, "hidden_units": [int(u) for u in FLAGS.hidden_units or ["128"]]}
    result = run_experiment("youtubednn", dataset, RETRIEVAL, output_dir=out, hparams=hparams, **_training_flags())
    data, model = result["_data"], result["_model"]
    popularity = build_model("popularity", data)
    print(f"\n{data.description}: full-catalog retrieval, {data.num_items} items, test = last item per user")
    print(
        format_metrics(
            {
                "popularity (test)": _summary(evaluate(popularity, data, "test")),
                "youtubednn (validation)": _summary(result["validation"]),
                "youtubednn (test)": _summary(result["test"]),
            }
        )
    )
    path = export_model(model, data, out / "export", "youtubednn", index="brute_force", k=100)
    print(f"\nExported the model to {path} (TF Serving layout, stock ops only).\n")
    print(recommend_for_user(path, model, data, FLAGS.user, FLAGS.top_k))
    print(f"\nRun written to {out}")


def describe_models(name: str | None = None) -> str:
    """``python -m tfcs3 models``: every registered model with its protocols, or (``name``) that
    model's hyperparameters with their defaults, read from its constructor."""
    if name is None:
        width = max(map(len, model_names())) + 2
        lines = [f"{'model':<{width}}protocols"]
        lines += [f"{n:<{width}}{', '.join(protocols_of(n))}" for n in model_names()]
        lines.append("\npython -m tfcs3 models --model=<name> lists a model's hyperparameters.")
        return "\n".join(lines)
    hparams = model_hparams(name)
    lines = [f"{name} ({', '.join(protocols_of(name))})"]
    if not hparams:
        return lines[0] + ": no hyperparameters"
    width = max(map(len, hparams)) + 2
    lines.append(f"  {'hyperparameter':<{width}}default")
    lines += [f"  {key:<{width}}{json.dumps(_jsonable(value))}" for key, value in hparams.items()]
    lines.append("\nSet them with --hparams='{\"<name>\": <value>}' (train, online); null means the model chooses.")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def cmd_models() -> None:
    print(describe_models(FLAGS.model if FLAGS["model"].present else None))


#: Set to 1 to see the traceback behind an error the command line reports in one line.
TRACEBACK_ENV = "TFCS3_TRACEBACK"
# What a user's mistake raises (an unknown model, dataset or hyperparameter, a protocol that does
# not fit the model, a missing run or data folder, malformed data): reported in one line, status 2.
USER_ERRORS = (ValueError, FileNotFoundError, DataFormatError, PermissionError)


def main(argv: Sequence[str]) -> None:
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"usage: python -m tfcs3 {{{','.join(COMMANDS)}}} [--flags]; see --help")
    logging.set_verbosity(logging.WARNING)
    try:
        _dispatch(argv[1])
    except USER_ERRORS as err:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        print(f"tfcs3 {argv[1]}: error: {err}", file=sys.stderr)
        print(f"(set {TRACEBACK_ENV}=1 to see the traceback)", file=sys.stderr)
        sys.exit(2)


def _dispatch(command: str) -> None:
    commands = {
        "train": cmd_train,
        "evaluate": cmd_evaluate,
        "export": cmd_export,
        "benchmark": cmd_benchmark,
        "query": cmd_query,
        "online": cmd_online,
    }
    {**commands, "demo": cmd_demo, "models": cmd_models}[command]()


def command_help(command: str) -> str:
    """What ``python -m tfcs3 <command> --help`` prints: the command's line of the module
    docstring and the flags it reads, with their defaults and help."""
    doc = (__doc__ or "").splitlines()
    text = []
    for number, line in enumerate(doc):
        if line.strip().startswith(command + " "):
            text.append(line.strip())
            for more in doc[number + 1 :]:  # its continuation lines
                if not more.startswith(" " * 14):
                    break
                text.append(more.strip())
            break
    out = [f"usage: python -m tfcs3 {command} [--flags]", "", " ".join(text), "", "flags:"]
    for name in COMMAND_FLAGS[command]:
        flag = FLAGS[name]
        default = "" if flag.default is None else f" (default: {flag.default_as_str})"
        out.append(f"  --{name}: {flag.help}{default}")
    return "\n".join(out)


def _help_for_command(argv: Sequence[str]) -> str | None:
    """The command help when ``argv`` is ``<command> --help`` (or ``-h``), else ``None``."""
    wanted = [a for a in argv[1:] if not a.startswith("-")]
    if len(wanted) == 1 and wanted[0] in COMMANDS and ({"--help", "-h", "-?"} & set(argv[1:])):
        return command_help(wanted[0])
    return None


def run() -> None:
    """Entry point of ``python -m tfcs3`` and the ``tfcs3`` console script: ``--help`` prints this
    module's docstring (the commands) whichever way it was started; ``<command> --help`` prints
    that command's flags."""
    text = _help_for_command(sys.argv)
    if text is not None:
        print(text)
        sys.exit(0)
    main_module = sys.modules["__main__"]
    main_module.__doc__ = __doc__
    for flag in FLAGS.get_flags_for_module(__name__):  # --help lists tfcs3's own flags, not TF's
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)
