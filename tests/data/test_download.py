import hashlib
import io
import zipfile

import pytest

from tfcs3.data import DataFormatError, download_movielens
from tfcs3.data import download as dl


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_git_blob_digest_matches_git():
    # `printf 'hello\\n' | git hash-object --stdin`
    assert dl.digest(b"hello\n", "gitblob") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_verified_files_are_extracted(tmp_path, monkeypatch):
    payload = b"1\t2\t5\t100\n"
    monkeypatch.setitem(
        dl.RELEASES, "fake", ("fake.zip", "fake", {"u.data": ("sha256", hashlib.sha256(payload).hexdigest())})
    )
    dl.extract_verified(_zip({"fake/u.data": payload}), "fake", tmp_path)
    assert (tmp_path / "u.data").read_bytes() == payload


def test_checksum_mismatch_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(dl.RELEASES, "fake", ("fake.zip", "fake", {"u.data": ("sha256", "0" * 64)}))
    with pytest.raises(DataFormatError, match="does not match"):
        dl.extract_verified(_zip({"fake/u.data": b"tampered"}), "fake", tmp_path)
    assert not (tmp_path / "u.data").exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_member_and_offline_switch(tmp_path, monkeypatch):
    monkeypatch.setitem(dl.RELEASES, "fake", ("fake.zip", "fake", {"u.data": ("sha256", "0" * 64)}))
    with pytest.raises(DataFormatError, match="no fake/u.data"):
        dl.extract_verified(_zip({"other": b""}), "fake", tmp_path)
    monkeypatch.setenv("TFCS3_NO_DOWNLOAD", "1")
    with pytest.raises(DataFormatError, match="TFCS3_NO_DOWNLOAD"):
        download_movielens("ml-100k", tmp_path)
