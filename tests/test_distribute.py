"""tf.distribute: strategies by name, global negatives equal to one device, a 2-worker cluster."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfcs3.distribute import free_local_ports, gather_from_replicas, is_chief, make_strategy, replica_share
from tfcs3.models import build_model
from tfcs3.training import train

WORKER = str(Path(__file__).with_name("distribute_worker.py"))


def _run(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(process: subprocess.Popen, timeout: int) -> str:
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"distribute worker timed out after {timeout} s:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    return output


def test_strategies_by_name_and_clear_refusals(monkeypatch):
    assert make_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_strategy("horovod")
    with pytest.raises(ValueError, match="not supported yet"):
        make_strategy("parameter_server")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG must be JSON"):
        is_chief()


@pytest.mark.parametrize(
    ("config", "chief"),
    [
        (None, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}, False),
        ({"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}, True),
    ],
)
def test_only_the_chief_writes(monkeypatch, config, chief):
    if config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert is_chief() is chief


def test_one_device_is_left_unchanged():
    tensors, offset = gather_from_replicas([tf.ones([3, 2])])
    assert int(offset) == 0 and tensors[0].shape == (3, 2)
    assert float(replica_share(tf.constant(6.0))) == 6.0


def test_train_refuses_a_model_built_outside_the_strategy(synthetic_retrieval):
    model = build_model("youtubednn", synthetic_retrieval)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with pytest.raises(ValueError, match="not built under this strategy"):
        train(model, synthetic_retrieval, epochs=1, strategy=strategy, verbose=0)


@pytest.mark.parametrize(
    "cases",
    [
        ["two_tower_in_batch"],
        pytest.param(["two_tower_full_softmax", "sasrec_full_softmax", "sasrec_in_batch"], marks=pytest.mark.slow),
    ],
)
def test_mirrored_replicas_equal_one_device_on_the_global_batch(tmp_path, cases):
    """Two logical CPUs: loss and gradients of one step summed over the replicas equal one
    device on the global batch (global negatives), local negatives do not, and an epoch of
    train() logs the same losses and reaches the same validation NDCG@10."""
    out = tmp_path / "mirrored.json"
    _wait(_run("mirrored", str(out), ",".join(cases)), timeout=600)
    report = json.loads(out.read_text())
    assert report["replicas"] == 2
    for case in cases:
        r = report[case]
        assert r["relative_loss_gap"] < 1e-5, (case, r)
        assert r["grad_gap"] < 1e-4 * max(1.0, r["grad_scale"]), (case, r)
        assert abs(r["validation_ndcg@10"][0] - r["validation_ndcg@10"][1]) < 1e-4, (case, r)
        np.testing.assert_allclose(r["losses"][0], r["losses"][1], rtol=1e-4)
        if case.endswith("in_batch"):  # each replica's own negatives: a different loss
            assert r["local_relative_loss_gap"] > 1e-3, (case, r)
        else:  # the full softmax has no batch negatives
            assert r["local_relative_loss_gap"] < 1e-5, (case, r)


def test_two_workers_on_localhost_end_with_the_same_weights(tmp_path):
    """MultiWorkerMirroredStrategy over 2 processes (TF_CONFIG, 127.0.0.1): after an epoch the
    workers hold identical weights, and only the chief (worker 0) wrote the run."""
    ports = ",".join(str(p) for p in free_local_ports(2))
    workers = [_run("worker", str(i), ports, str(tmp_path)) for i in range(2)]
    for process in workers:
        _wait(process, timeout=300)
    with np.load(tmp_path / "weights-0.npz") as a, np.load(tmp_path / "weights-1.npz") as b:
        assert len(a.files) == len(b.files) > 0
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
    assert (tmp_path / "run-0" / "metrics.json").is_file()
    assert not (tmp_path / "run-1").exists()
