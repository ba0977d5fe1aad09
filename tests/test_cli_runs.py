"""The command line on whole runs: resume after a kill, a sequence backbone, your own log."""

import json
import os
import subprocess
import sys

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


def test_your_own_csv_through_train_evaluate_export_and_query(tmp_path):
    # The README's "Your own data" path, on a CSV log with user and item tables.
    from tfcs3.data.synthetic import generate_synthetic

    raw = generate_synthetic(num_users=80, num_items=40, seed=1)
    raw.interactions.rename(columns={"timestamp": "ts"}).to_csv(tmp_path / "log.csv", index=False)
    raw.items.reset_index()[["item", "title", "category"]].to_csv(tmp_path / "items.csv", index=False)
    raw.users.reset_index().to_csv(tmp_path / "users.csv", index=False)
    (tmp_path / "log.toml").write_text(
        'name = "mine"\ninteractions = "log.csv"\nuser = "user"\nitem = "item"\ntimestamp = "ts"\n'
        'items = "items.csv"\nitem_features = ["category"]\ntitle = "title"\n'
        'users = "users.csv"\nuser_features = ["segment"]\n'
    )
    env = {"TFCS3_CACHE_DIR": str(tmp_path / "cache")}
    run, exports = tmp_path / "run", tmp_path / "exports"
    proc = _cli("train", f"--dataset={tmp_path / 'log.toml'}", "--epochs=2", "--embedding_dim=8",
                f"--output_dir={run}", "--verbose=0", env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"] == "mine"
    stores = [p for p in (tmp_path / "cache" / "prepared").iterdir() if p.is_dir()]
    assert len(stores) == 1 and list(stores[0].glob("train-*.parquet"))  # prepared into shards, trained from them
    proc = _cli("evaluate", f"--run_dir={run}", "--split=test", env=env)
    assert proc.returncode == 0 and "ndcg@10" in proc.stdout, proc.stderr[-2000:]
    proc = _cli("export", f"--run_dir={run}", f"--export_dir={exports}", "--k=5", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _cli("query", f"--run_dir={run}", f"--export_dir={exports}", "--user=3", "--top_k=5", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "User 3:" in proc.stdout and "matches the in-process model's top-5" in proc.stdout
    assert "(category " in proc.stdout  # titles from the item table
    proc = _cli("query", f"--run_dir={run}", f"--export_dir={tmp_path / 'none'}", env=env)
    assert proc.returncode == 2 and "holds no exported version" in proc.stderr
    proc = _cli("train", "--dataset=nowhere.toml", "--epochs=1")
    assert proc.returncode == 2 and "Unknown dataset 'nowhere.toml'" in proc.stderr
