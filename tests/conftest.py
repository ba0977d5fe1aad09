"""Shared fixtures. Real datasets come from $TFCS3_DATA_DIR; tests needing them skip without it."""

import os
import tempfile

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
