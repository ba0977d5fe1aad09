"""Shared fixtures. Real datasets come from $TFCS3_DATA_DIR; tests needing them skip without it."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TFCS3_NO_DOWNLOAD"] = "1"
os.environ["TFCS3_CACHE_DIR"] = tempfile.mkdtemp(prefix="tfcs3-test-cache-")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

import tfcs3  # noqa: E402, F401
from tfcs3.data import generate_synthetic, prepare  # noqa: E402


def _shared(folder: str) -> Path | None:
    root = os.environ.get("TFCS3_DATA_DIR")
    if root and (Path(root) / folder).is_dir():
        return Path(root) / folder
    return None


def _data_fixture(folder: str, label: str):
    @pytest.fixture(scope="session")
    def fixture() -> Path:
        path = _shared(folder)
        if path is None:
            pytest.skip(f"{label} not available (set TFCS3_DATA_DIR)")
        return path

    return fixture


ml100k_dir = _data_fixture("movielens-100k", "MovieLens-100K")
ml1m_dir = _data_fixture("movielens-1m", "MovieLens-1M")
beauty_dir = _data_fixture("amazon-beauty", "Amazon Beauty")


@pytest.fixture(scope="session")
def synthetic_raw():
    return generate_synthetic(num_users=300, num_items=200, seed=3)


@pytest.fixture(scope="session")
def synthetic_retrieval(synthetic_raw):
    return prepare(synthetic_raw, "retrieval", max_history=20)


@pytest.fixture(scope="session")
def synthetic_preranking(synthetic_raw):
    return prepare(synthetic_raw, "preranking", max_history=20)


FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    blocked = set(sys.argv[2].split(","))
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in blocked:
                raise ImportError("blocked for this test: " + name)
    sys.meta_path.insert(0, Block())
    for name in blocked:
        try:
            __import__(name)
        except ImportError:
            pass
        else:
            raise SystemExit(name + " should not be importable here")
    if "scann" not in blocked:
        import scann  # noqa: F401  (registers the ScaNN ops)
    import tensorflow as tf
    raw = json.load(open(sys.argv[3]))
    f = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    out = f(**{k: tf.constant(v) for k, v in raw.items()})
    print(json.dumps({"ids": [[i.decode() for i in r] for r in out["item_ids"].numpy()],
                      "scores": out["scores"].numpy().tolist()}))
    """
)


@pytest.fixture
def serve_in_fresh_process(tmp_path):
    """``serve(export_path, blocked_modules, raw_request) -> {"ids", "scores"}``: calls
    ``serving_default`` in a new Python process where the comma-separated modules cannot be
    imported (e.g. ``"tfcs3,scann,tensorflow_recommenders"``: stock TensorFlow only)."""
    return lambda path, blocked, raw: _fresh(path, blocked, raw, tmp_path)


def _fresh(path: Path, blocked: str, raw: dict, tmp_path: Path) -> dict:
    request = tmp_path / "request.json"
    request.write_text(json.dumps(raw))
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(path), blocked, str(request)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
