import gzip
from pathlib import Path

import numpy as np
import pytest

from tfcs3.data import DataFormatError, load_movielens_1m, load_movielens_100k
from tfcs3.data.movielens import age_bucket

GENRE_FLAGS = "|".join(["0"] * 18 + ["1"])


def _write_ml100k(folder: Path, ratings: str, gz: bool = False) -> None:
    files = {
        "u.data": ratings,
        "u.user": "1|24|M|technician|85711\n2|53|F|other|94043\n",
        "u.item": f"10|Film A (1995)|01-Jan-1995||http://x|{GENRE_FLAGS}\n"
        f"20|Film B (1994)|01-Jan-1994||http://y|{GENRE_FLAGS}\n",
    }
    for name, text in files.items():
        if gz:
            with gzip.open(folder / (name + ".gz"), "wt", encoding="latin-1") as fh:
                fh.write(text)
        else:
            (folder / name).write_text(text, encoding="latin-1")


@pytest.mark.parametrize("gz", [False, True])
def test_small_ml100k_plain_and_gzip(tmp_path, gz):
    _write_ml100k(tmp_path, "1\t10\t5\t100\n2\t20\t3\t50\n", gz=gz)
    raw = load_movielens_100k(tmp_path)
    assert len(raw.interactions) == 2
    assert raw.users.loc["1", "age"] == "18"
    assert raw.items.loc["10", "year"] == "1995"
    assert raw.items.loc["10", "genres"] == ["Western"]


@pytest.mark.parametrize(
    "bad_line, message",
    [("2\t20\t3\n", "expected 4 fields"), ("2\tx\t3\t50\n", "item id must be an integer"), ("2\t20\t9\t50\n", "1..5")],
)
def test_malformed_ratings_line_names_file_and_line(tmp_path, bad_line, message):
    _write_ml100k(tmp_path, "1\t10\t5\t100\n" + bad_line)
    with pytest.raises(DataFormatError, match=message) as err:
        load_movielens_100k(tmp_path)
    assert "u.data" in str(err.value)
    assert "line 2" in str(err.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataFormatError, match="u.data"):
        load_movielens_100k(tmp_path)


def test_unknown_item_in_ratings_is_reported(tmp_path):
    _write_ml100k(tmp_path, "1\t99\t5\t100\n")
    with pytest.raises(DataFormatError, match="99"):
        load_movielens_100k(tmp_path)


def test_age_buckets():
    assert [age_bucket(a) for a in (7, 18, 24, 25, 44, 49, 50, 55, 56, 80)] == [
        "1", "18", "18", "25", "35", "45", "50", "50", "56", "56"
    ]  # fmt: skip


def test_real_ml100k(ml100k_dir):
    raw = load_movielens_100k(ml100k_dir)
    assert len(raw.interactions) == 100_000
    assert raw.interactions["user"].nunique() == 943
    assert raw.interactions["item"].nunique() == 1682
    assert "Misérables, Les (1995)" in set(raw.items["title"])  # latin-1 decoded
    assert set(np.unique(raw.interactions["rating"])) == {1, 2, 3, 4, 5}


def test_real_ml1m_partial_is_labelled_as_subset(ml1m_dir):
    raw = load_movielens_1m(ml1m_dir)
    assert raw.name == "ml-1m[users1-2999]"
    assert "SUBSET" in raw.description
    assert len(raw.interactions) == 487_650
    assert raw.interactions["user"].astype(int).max() == 2999
    assert raw.items.loc["1", "genres"] == ["Animation", "Children's", "Comedy"]


def test_ml1m_malformed_line(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::10::5::978300760\n1::10::5\n")
    (tmp_path / "users.dat").write_text("1::F::1::10::48067\n")
    (tmp_path / "movies.dat").write_text("10::Film (1995)::Comedy\n")
    with pytest.raises(DataFormatError, match=r"ratings.dat, line 2"):
        load_movielens_1m(tmp_path)
