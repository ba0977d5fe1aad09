import json

import pytest
from cli_run import run_cli as _cli


def test_helpfull_documents_every_flag():
    proc = _cli("--helpfull")  # absl exits with status 1 after printing help
    for flag in ("--model", "--dataset", "--data_dir", "--epochs", "--seed", "--output_dir", "--protocol",
                 "--validation_sample", "--[no]history_gaps", "--[no]resume"):  # fmt: skip
        assert flag in proc.stdout


def test_unknown_command_is_a_usage_error():
    proc = _cli("fly")
    assert proc.returncode != 0
    assert "usage" in (proc.stdout + proc.stderr).lower()


def test_online_refuses_the_user_split():
    proc = _cli("online", "--dataset=synthetic", "--protocol=user_split")
    assert proc.returncode != 0
    assert "time order" in proc.stdout + proc.stderr


def test_train_then_evaluate_reproduces_metrics(tmp_path):
    # With the optional time-gap feature, so its whole path (run config, reload, export) is covered.
    run = tmp_path / "run"
    proc = _cli("train", "--dataset=synthetic", "--epochs=2", "--batch_size=128", "--embedding_dim=16",
                f"--output_dir={run}", "--verbose=0", "--history_gaps")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"validation", "test", "versions", "command", "fit"} <= set(metrics)
    assert metrics["training"]["history_gaps"] is True
    assert (run / "tensorboard").is_dir() and (run / "checkpoints").is_dir()
    proc = _cli("evaluate", f"--run_dir={run}", "--split=test")
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = json.loads(proc.stdout[proc.stdout.index("{") :])
    for key, value in metrics["test"].items():
        assert printed[key] == pytest.approx(value, abs=1e-9)
    proc = _cli("export", f"--run_dir={run}", f"--export_dir={tmp_path / 'exports'}", "--k=5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "exports" / "youtubednn" / "1" / "saved_model.pb").is_file()
    proc = _cli(
        "export", f"--run_dir={run}", f"--export_dir={tmp_path / 'exports'}", "--index=scann", "--scann_reorder=50"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((tmp_path / "exports" / "youtubednn" / "2" / "assets.extra" / "tfcs3_export.json").read_text())
    assert meta["index"] == "scann" and meta["index_options"]["reorder"] == 50
    assert "history_gap" in meta["inputs"], meta
    proc = _cli("benchmark", f"--run_dir={run}", "--seconds=0.05", "--candidates=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    latency = json.loads((run / "latency.json").read_text())
    timed = {(r["signature"], r["batch"]) for r in latency["rows"]}
    assert timed == {(s, b) for s in ("serving_default", "query_embedding", "score_candidates") for b in (1, 64)}
    assert all(r["calls"] >= 20 and 0 < r["p50_ms"] <= r["p99_ms"] for r in latency["rows"])
    assert "serving_default" in proc.stdout


def test_demo_falls_back_to_synthetic_with_a_clear_message(tmp_path):
    env = {
        "TFCS3_DATA_DIR": str(tmp_path / "none"),
        "TFCS3_CACHE_DIR": str(tmp_path / "cache"),
        "TFCS3_NO_DOWNLOAD": "1",
    }
    proc = _cli("demo", "--epochs=1", "--verbose=0", f"--output_dir={tmp_path / 'demo'}", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "SYNTHETIC" in proc.stderr
    assert "Top-10 recommendations" in proc.stdout
    assert "matches the in-process model" in proc.stdout


def test_train_on_missing_data_names_where_it_looked(tmp_path):
    env = {"TFCS3_DATA_DIR": str(tmp_path), "TFCS3_CACHE_DIR": str(tmp_path / "cache")}
    proc = _cli("train", "--dataset=ml-100k", "--epochs=1", env=env)
    assert proc.returncode != 0
    assert "u.data" in proc.stderr and str(tmp_path) in proc.stderr


@pytest.mark.slow  # the mechanism is tested in process; this is its command line (make test-all)
def test_cs3_switches_and_online_learning_from_the_command_line(tmp_path):
    run = tmp_path / "run"
    proc = _cli("train", "--dataset=synthetic", "--model=cs3_youtubednn", "--epochs=1", "--embedding_dim=8",
                '--hparams={"cms": false, "alpha": 0.5}', f"--output_dir={run}", "--verbose=0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((run / "run_config.json").read_text())
    assert config["hparams"]["cms"] is False and config["hparams"]["alpha"] == 0.5
    proc = _cli("train", "--dataset=synthetic", "--hparams=[1]", f"--output_dir={tmp_path / 'bad'}")
    assert proc.returncode != 0 and "JSON object" in proc.stderr
    exports = tmp_path / "exports"
    proc = _cli("online", "--dataset=synthetic", "--model=cs3_youtubednn", "--protocol=preranking",
                "--embedding_dim=8", "--batch_size=1024", "--export_every=3", f"--export_dir={exports}",
                "--verbose=0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "test (prequential)" in proc.stdout
    assert (exports / "cs3_youtubednn" / "1" / "saved_model.pb").is_file()


@pytest.mark.slow  # the mechanism is tested in process; this is its command line (make test-all)
def test_sparcode_with_its_index_and_fit_from_the_command_line(tmp_path):
    run = tmp_path / "sc"
    proc = _cli("train", "--dataset=synthetic", "--model=sparcode", "--epochs=1", "--embedding_dim=8",
                '--hparams={"codebook_size": 8, "token_dim": 8, "sparsity_bias": -0.5}', f"--output_dir={run}",
                "--verbose=0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    exports = tmp_path / "exports"
    proc = _cli("export", f"--run_dir={run}", f"--export_dir={exports}", "--index=sparse_code", "--sparse_top_t=20")
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((exports / "sparcode" / "1" / "assets.extra" / "tfcs3_export.json").read_text())
    assert meta["index"] == "sparse_code" and meta["sparse_index"]["top_t"] == 20
    proc = _cli("train", "--dataset=synthetic", "--model=fit", f"--output_dir={tmp_path / 'bad'}")
    assert proc.returncode != 0 and "pre-ranking model" in proc.stderr
    proc = _cli("train", "--dataset=synthetic", "--model=fit", "--protocol=preranking", "--epochs=1",
                "--embedding_dim=8", f"--output_dir={tmp_path / 'fit'}", "--verbose=0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["train", "--model=youtubedn"], "Unknown model 'youtubedn'"),
        (["train", "--model=dssm", '--hparams={"embedding_size": 3}'], "unknown hyperparameters ['embedding_size']"),
        (["train", "--model=fit"], "--protocol=preranking"),
        (["evaluate", "--run_dir=/nonexistent/run"], "not a tfcs3 run directory"),
        (["train", "--dataset=ml-100k", "--data_dir=/nonexistent/data"], "not found"),
        (["train", "--strategy=multi_worker"], "TF_CONFIG environment variable"),
    ],
)
def test_a_mistake_is_one_line_and_status_2(args, says, tmp_path):
    env = {"TFCS3_DATA_DIR": str(tmp_path), "TFCS3_CACHE_DIR": str(tmp_path / "cache")}
    if "--dataset=ml-100k" not in args:
        args = [*args, "--dataset=synthetic"]
    proc = _cli(*args, "--epochs=1", "--verbose=0", f"--output_dir={tmp_path / 'run'}", env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    if args[0] == "train" and args[1] == "--model=youtubedn":  # once: each call starts TensorFlow
        traceback_env = {**env, "TFCS3_TRACEBACK": "1"}
        proc = _cli(*args, "--epochs=1", "--verbose=0", f"--output_dir={tmp_path / 'run'}", env=traceback_env)
        assert "Traceback" in proc.stderr


def test_help_lists_the_commands_and_tfcs3s_flags_only():
    proc = _cli("--help")
    for command in ("train", "evaluate", "export", "benchmark", "online", "demo"):
        assert f"\n    {command} " in proc.stdout
    assert "--model" in proc.stdout and "--loss" in proc.stdout
    assert "--xla_" not in proc.stdout and "test_srcdir" not in proc.stdout


def test_each_command_explains_its_own_flags():
    from tfcs3 import cli

    listed = {name for names in cli.COMMAND_FLAGS.values() for name in names}
    own = {flag.name for flag in cli.FLAGS.get_flags_for_module(cli.__name__)}
    assert listed == own  # every flag belongs to a command, and every listed flag exists
    proc = _cli("export", "--help")
    assert proc.returncode == 0
    assert "usage: python -m tfcs3 export" in proc.stdout and "--index" in proc.stdout
    assert "--epochs" not in proc.stdout  # train's, not export's


def test_models_lists_the_registry_and_a_models_hyperparameters():
    proc = _cli("models")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cs3_sasrec" in proc.stdout and "preranking" in proc.stdout
    proc = _cli("models", "--model=cs3_sasrec")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = dict(line.split(None, 1) for line in proc.stdout.splitlines() if line.startswith("  ") and line.strip())
    assert rows["alpha"].strip() == "0.8" and rows["loss"].strip() == '"full_softmax"'
    proc = _cli("models", "--model=sasrek")
    assert proc.returncode == 2 and "Unknown model 'sasrek'" in proc.stderr
