import pytest

from tfcs3.data import DataFormatError, load_amazon, prepare


def test_small_amazon(tmp_path):
    (tmp_path / "Beauty.txt").write_text("1 5 6 7\n2 6 7 8 5\n")
    (tmp_path / "Beauty_item2attributes.json").write_text('{"5": [1, 2], "6": [3]}')
    raw = load_amazon(tmp_path, "beauty")
    assert len(raw.interactions) == 7
    assert raw.items.loc["5", "attributes"] == ["1", "2"]
    assert raw.items.loc["8", "attributes"] == []
    assert not raw.has_ratings
    with pytest.raises(ValueError, match="no ratings"):
        prepare(raw, "preranking")


def test_malformed_amazon_line(tmp_path):
    (tmp_path / "Beauty.txt").write_text("1 5 6\n2 x 7\n")
    (tmp_path / "Beauty_item2attributes.json").write_text("{}")
    with pytest.raises(DataFormatError, match=r"Beauty.txt, line 2"):
        load_amazon(tmp_path, "beauty")


def test_real_beauty(beauty_dir):
    raw = load_amazon(beauty_dir, "beauty")
    assert raw.interactions["user"].nunique() == 22_363
    assert raw.interactions["item"].nunique() == 12_101
