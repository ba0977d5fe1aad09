"""Honest data loading: every doubtful file is an error naming it, or a documented, reported fix."""

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from tfcs3.data import DataFormatError, load_movielens_100k
from tfcs3.data import datasets as ds
from tfcs3.data import download as dl
from tfcs3.data.amazon import load_amazon
from tfcs3.data.raw import find_file, quote

GENRE_FLAGS = "|".join(["0"] * 18 + ["1"])
USERS = "1|24|M|technician|85711\n2|53|F|other|94043\n"
ITEMS = f"10|Film A (1995)|01-Jan-1995||http://x|{GENRE_FLAGS}\n20|Film B (1994)|01-Jan-1994||http://y|{GENRE_FLAGS}\n"


def _ml100k(folder: Path, ratings: str = "1\t10\t5\t100\n2\t20\t3\t50\n", users: str = USERS) -> Path:
    for name, text in {"u.data": ratings, "u.user": users, "u.item": ITEMS}.items():
        (folder / name).write_text(text, encoding="latin-1")
    return folder


def test_rows_that_repeat_exactly_are_dropped_with_a_count(tmp_path):
    _ml100k(tmp_path, "1\t10\t5\t100\n" * 3 + "1\t10\t4\t100\n2\t20\t3\t50\n")
    with pytest.warns(UserWarning, match="dropped 2 interaction rows"):
        raw = load_movielens_100k(tmp_path)
    assert len(raw.interactions) == 3  # the row with another rating is kept


def test_a_repeated_id_in_a_side_table_is_an_error(tmp_path):
    _ml100k(tmp_path, users=USERS + "2|30|M|writer|12345\n")
    with pytest.raises(DataFormatError, match=r"u\.user, row \d+: user id '2' repeats row \d+"):
        load_movielens_100k(tmp_path)


def test_amazon_repeats_are_errors(tmp_path):
    (tmp_path / "Beauty.txt").write_text("1 10 20\n2 20\n1 30\n")
    (tmp_path / "Beauty_item2attributes.json").write_text('{"10": [1], "20": [2], "30": [3]}')
    with pytest.raises(DataFormatError, match="line 3: user '1' already has line 1"):
        load_amazon(tmp_path, "beauty")
    (tmp_path / "Beauty.txt").write_text("1 10 20\n2 20\n")
    (tmp_path / "Beauty_item2attributes.json").write_text('{"10": [1], "20": [2], "10": [3]}')
    with pytest.raises(DataFormatError, match="item '10' is listed more than once"):
        load_amazon(tmp_path, "beauty")


def test_a_plain_file_beside_its_gzip_is_an_error(tmp_path):
    _ml100k(tmp_path)
    with gzip.open(tmp_path / "u.data.gz", "wt") as fh:
        fh.write("1\t10\t5\t100\n")
    with pytest.raises(DataFormatError, match="Two candidate files for u.data"):
        load_movielens_100k(tmp_path)


def test_a_corrupt_gzip_is_reported_as_corruption(tmp_path):
    _ml100k(tmp_path)
    data = gzip.compress((tmp_path / "u.data").read_bytes() * 50)
    (tmp_path / "u.data").unlink()
    (tmp_path / "u.data.gz").write_bytes(data[: len(data) // 2])  # cut short
    with pytest.raises(DataFormatError, match="u.data.gz: the gzip file is corrupt or truncated"):
        load_movielens_100k(tmp_path)
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    (tmp_path / "u.data.gz").write_bytes(bytes(flipped))
    with pytest.raises(DataFormatError, match="corrupt or truncated"):
        load_movielens_100k(tmp_path)


def test_checksums_beside_the_data_are_verified(tmp_path):
    _ml100k(tmp_path)
    good = hashlib.sha256((tmp_path / "u.data").read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{good}  u.data\n{'0' * 64}  u.item\n")
    with pytest.raises(DataFormatError, match=r"u\.item: its content does not match .*SHA256SUMS"):
        load_movielens_100k(tmp_path)
    (tmp_path / "SHA256SUMS").write_text(f"{good}  u.data\n")
    assert len(load_movielens_100k(tmp_path).interactions) == 2


def test_the_shared_data_match_their_checksums(ml100k_dir):
    assert find_file(ml100k_dir, "u.data").name.startswith("u.data")  # verified against SHA256SUMS


def test_long_values_are_cut_in_messages(tmp_path):
    _ml100k(tmp_path, "1\t10\t5\t100\n2\t20\t3\t" + "9x" * 2_000_000 + "\n")
    with pytest.raises(DataFormatError) as err:
        load_movielens_100k(tmp_path)
    assert len(str(err.value)) < 400 and "characters)" in str(err.value)
    assert quote("abc") == "'abc'"


def test_an_unreadable_folder_is_a_data_error(tmp_path, monkeypatch):
    _ml100k(tmp_path)

    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "is_file", denied)
    with pytest.raises(DataFormatError, match="permission denied"):
        find_file(tmp_path, "u.data")
    with pytest.raises(DataFormatError, match="permission denied"):
        ds.find_data_dir("ml-100k", tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_a_data_error(tmp_path):
    _ml100k(tmp_path)
    (tmp_path / "u.data").chmod(0)
    with pytest.raises(DataFormatError, match="permission denied"):
        load_movielens_100k(tmp_path)


def test_an_explicit_data_dir_never_falls_back(tmp_path, monkeypatch, ml100k_dir):
    monkeypatch.setenv("TFCS3_DATA_DIR", str(ml100k_dir.parent))
    assert ds.find_data_dir("ml-100k") == ml100k_dir
    with pytest.raises(DataFormatError, match="only .a data folder given explicitly"):
        ds.find_data_dir("ml-100k", tmp_path)


def test_a_download_cut_short_is_fetched_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TFCS3_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TFCS3_DATA_DIR", raising=False)
    target = tmp_path / "movielens-100k"
    target.mkdir()
    (target / "u.data").write_text("1\t10\t5\t100\n")  # the first file landed, then the run died
    with pytest.raises(DataFormatError, match=r"incomplete ml-100k download \(missing \['u.user', 'u.item'\]\)"):
        ds.find_data_dir("ml-100k")
    fetched = []
    monkeypatch.setattr(ds, "download_movielens", lambda name, where: fetched.append((name, where)) or where)
    assert ds.find_data_dir("ml-100k", download=True) == target and fetched == [("ml-100k", target)]
    assert set(dl.RELEASES["ml-100k"][2]) == {"u.data", "u.user", "u.item"}
