"""The command line on whole runs: resume after a kill, a sequence backbone, your own log."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from cli_run import run_cli as _cli


def test_resume_needs_a_run_directory_and_leaves_none_behind(tmp_path):
    proc = _cli("train", "--dataset=synthetic", "--resume")
    assert proc.returncode != 0 and "--resume needs --output_dir" in proc.stdout + proc.stderr
    run = tmp_path / "run"
    proc = _cli("train", "--dataset=synthetic", "--epochs=1", "--embedding_dim=8", f"--output_dir={run}",
                "--verbose=0", "--resume")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run / "metrics.json").is_file() and not (run / "resume").exists()


def test_a_sequence_backbone_with_a_loss_from_the_command_line(tmp_path):
    run = tmp_path / "run"
    proc = _cli("train", "--dataset=synthetic", "--model=sasrec", "--loss=sampled_softmax", "--num_negatives=32",
                "--epochs=1", "--batch_size=64", "--embedding_dim=16", f"--output_dir={run}",
                "--verbose=0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    config = json.loads((run / "model_config.json").read_text())
    assert config["name"] == "sasrec" and config["hparams"]["loss"] == "sampled_softmax"
    assert "hidden_units" not in config["hparams"]  # the model's own default (SASRec's 256)
    proc = _cli("export", f"--run_dir={run}", f"--export_dir={tmp_path / 'exports'}", "--k=5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _cli("train", "--dataset=synthetic", "--model=youtubednn", "--hidden_units=128,abc", f"--output_dir={run}2")
    assert proc.returncode != 0 and "--hidden_units must be integers" in proc.stderr


def test_a_training_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path):
    # kill -9 while epoch 3 trains (epochs 1-2 are in the resume state), then rerun the command.
    import signal
    import time

    args = ["train", "--dataset=synthetic", "--model=youtubednn", "--epochs=4", "--patience=10",
            "--batch_size=32", "--embedding_dim=8", "--verbose=0"]  # fmt: skip
    straight = _cli(*args, f"--output_dir={tmp_path / 'straight'}")
    assert straight.returncode == 0, straight.stderr[-2000:]
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "tfcs3", *args, f"--output_dir={run}", "--resume"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run / "resume" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epochs_done"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["epochs_done"] in (2, 3)
    resumed = _cli(*args, f"--output_dir={run}", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((run / "metrics.json").read_text())
    assert b["fit"]["resumed_at"] and a["fit"]["history"] == b["fit"]["history"]
    assert a["validation"] == b["validation"] and a["test"] == b["test"]


def _readme_block(name: str) -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split(f"<!-- {name}:begin -->")[1].split(f"<!-- {name}:end -->")[0]
    return block.split("\n", 2)[2].rsplit("```", 1)[0]  # inside the fence


def test_the_readmes_own_data_example_end_to_end(tmp_path):
    # "Your own data" in the README, as a new user runs it: the snippet writes the CSV files and
    # the description, then train, evaluate, export and query run from the command line.
    env = {**os.environ, "TFCS3_CACHE_DIR": str(tmp_path / "cache")}
    made = subprocess.run([sys.executable, "-c", _readme_block("own-data-python")], cwd=tmp_path, env=env)
    assert made.returncode == 0 and (tmp_path / "shop" / "shop.toml").is_file()
    outputs = []
    for line in _readme_block("own-data-commands").strip().splitlines():
        args = shlex.split(line.split("#")[0])
        assert args[:3] == ["python", "-m", "tfcs3"]
        proc = subprocess.run([sys.executable, *args[1:]], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
        outputs.append(proc.stdout)
    assert json.loads((tmp_path / "runs" / "shop" / "metrics.json").read_text())["dataset"] == "shop"
    prepared = tmp_path / "cache" / "prepared"
    stores = sorted(p for p in prepared.iterdir() if p.is_dir())
    assert len(stores) == 1 and list(stores[0].glob("train-*.parquet"))  # prepared into shards, trained from them
    assert "ndcg@10" in outputs[1]
    assert "User c7:" in outputs[3] and "matches the in-process model's top-5" in outputs[3]
    assert "Product " in outputs[3]  # titles from the item table

    proc = _cli("query", "--run_dir=" + str(tmp_path / "runs" / "shop"), f"--export_dir={tmp_path / 'none'}", env=env)
    assert proc.returncode == 2 and "holds no exported version" in proc.stderr

    # A malformed variant gets a named error, and what was prepared before stays as it was.
    before = {p.name: p.stat().st_mtime_ns for p in stores[0].iterdir()}
    with open(tmp_path / "shop" / "log.csv", "a") as log:
        log.write("c1,sku3,yesterday-ish\n")
    proc = _cli("train", f"--dataset={tmp_path / 'shop' / 'shop.toml'}", "--epochs=1", env=env)
    assert proc.returncode == 2
    assert "log.csv, row " in proc.stderr and "column 'ts': cannot parse 'yesterday-ish' as a time" in proc.stderr
    assert sorted(prepared.iterdir()) == stores  # no half-written store or spill left behind
    assert {p.name: p.stat().st_mtime_ns for p in stores[0].iterdir()} == before
    proc = _cli("train", "--dataset=nowhere.toml", "--epochs=1")
    assert proc.returncode == 2 and "Unknown dataset 'nowhere.toml'" in proc.stderr
