"""Own logs through a dataset description: formats, the checks, and the whole path to a model."""

import json

import numpy as np
import pandas as pd
import pytest

from tfcs3.data import DataFormatError, DatasetDescription, load_described, load_prepared
from tfcs3.data.synthetic import generate_synthetic


def _write_log(folder, fmt="csv", n_users=60, seed=0):
    """A small synthetic log in the given format, with user and item tables; returns the description path."""
    raw = generate_synthetic(num_users=n_users, num_items=40, seed=seed)
    log = raw.interactions.rename(columns={"user": "uid", "item": "sku", "timestamp": "ts", "rating": "stars"})
    log["clicked"] = (log["stars"] >= 4).astype(int)
    items = raw.items.reset_index().rename(columns={"item": "sku"})
    items["tags"] = (
        [list(v) for v in items[raw.item_multi_features[0]]] if raw.item_multi_features else [[]] * len(items)
    )
    items = items[["sku", "tags", *raw.item_features]]
    users = raw.users.reset_index().rename(columns={"user": "uid"})[["uid", *raw.user_features]]
    if fmt == "csv":
        log.to_csv(folder / "log.csv.gz", index=False)
        items.assign(tags=items["tags"].map("|".join)).to_csv(folder / "items.csv", index=False)
        names = ("log.csv.gz", "items.csv")
    elif fmt == "parquet":
        log.to_parquet(folder / "log.parquet")
        items.to_parquet(folder / "items.parquet")
        names = ("log.parquet", "items.parquet")
    else:
        log.to_json(folder / "log.jsonl", orient="records", lines=True)
        items.to_json(folder / "items.jsonl", orient="records", lines=True)
        names = ("log.jsonl", "items.jsonl")
    users.to_csv(folder / "users.csv", index=False)
    desc = {
        "name": "shop", "interactions": [names[0]], "user": "uid", "item": "sku", "timestamp": "ts",
        "rating": "stars", "label": "clicked", "items": names[1], "item_features": list(raw.item_features),
        "item_multi_features": ["tags"], "users": "users.csv", "user_features": list(raw.user_features),
    }  # fmt: skip
    (folder / "shop.json").write_text(json.dumps(desc))
    return folder / "shop.json", raw


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_each_format_gives_the_same_raw_dataset(tmp_path, fmt):
    path, raw = _write_log(tmp_path, fmt)
    got = load_described(path)
    assert len(got.interactions) == len(raw.interactions)
    assert set(got.items.index) == set(raw.interactions["item"])
    np.testing.assert_array_equal(got.interactions["timestamp"], raw.interactions["timestamp"])
    assert got.has_labels and got.items["tags"].map(len).sum() > 0


def test_a_description_trains_like_a_registered_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("TFCS3_CACHE_DIR", str(tmp_path / "cache"))
    path, _ = _write_log(tmp_path, "csv")
    retrieval = load_prepared(str(path), "retrieval", max_history=10)
    assert retrieval.name == "shop" and len(retrieval.test) > 0
    preranking = load_prepared(str(path), "preranking", max_history=10)
    assert set(np.unique(preranking.test.labels)) <= {0.0, 1.0}
    again = load_prepared(str(path), "retrieval", max_history=10)  # from the cache
    np.testing.assert_array_equal(again.test.target, retrieval.test.target)


def test_toml_descriptions_and_globs(tmp_path):
    (tmp_path / "logs").mkdir()
    for day in (1, 2):
        pd.DataFrame(
            {"u": ["a", "b"], "i": ["x", "y"], "t": [f"2026-01-0{day}T10:00:00", f"2026-01-0{day}T11:00:00"]}
        ).to_csv(tmp_path / "logs" / f"day{day}.csv", index=False)
    (tmp_path / "d.toml").write_text(
        'name = "t"\ninteractions = "logs/day*.csv"\nuser = "u"\nitem = "i"\ntimestamp = "t"\n'
    )
    raw = load_described(tmp_path / "d.toml")
    assert len(raw.interactions) == 4
    assert raw.interactions["timestamp"].min() == pd.Timestamp("2026-01-01T10:00:00Z").value // 10**9


def _desc(tmp_path, **fields):
    base = {"name": "t", "interactions": ["log.csv"], "user": "u", "item": "i", "timestamp": "t", **fields}
    return DatasetDescription(**base, base_dir=str(tmp_path))


@pytest.mark.parametrize(
    "log, fields, message",
    [
        ("u,i\na,x\n", {}, r"log.csv: no column 't'"),
        ("u,i,t\na,x,1\n,y,2\n", {}, r"log.csv, row 2: column 'u' holds a null or empty id"),
        ("u,i,t\na,x,1\nb,y,yesterday-ish\n", {}, r"row 2: column 't': cannot parse 'yesterday-ish' as a time"),
        ("u,i,t,c\na,x,1,1\nb,y,2,7\n", {"label": "c"}, r"row 2: column 'c' must be 0 or 1"),
        ("", {}, r"log.csv: cannot be read|holds no rows"),
        ("u,i,t\n", {}, r"log.csv: the file holds no rows"),
        (
            "u,i,t\na,x,1\nb,zz,2\n",
            {"items": "items.csv"},
            r"log.csv, row 2, column 'i': item 'zz' is not in the item table .*items.csv \(1 item",
        ),
        ("u,i,t\na,x,1\n", {"items": "dup.csv"}, r"dup.csv, row 2, column 'i': item id 'x' repeats row 1"),
    ],
)
def test_bad_logs_are_errors_that_name_file_row_and_column(tmp_path, log, fields, message):
    (tmp_path / "log.csv").write_text(log)
    (tmp_path / "items.csv").write_text("i\nx\n")
    (tmp_path / "dup.csv").write_text("i\nx\nx\n")
    with pytest.raises(DataFormatError, match=message):
        load_described(_desc(tmp_path, **fields))


def test_unknown_items_can_be_kept_with_a_warning(tmp_path):
    (tmp_path / "log.csv").write_text("u,i,t\na,x,1\nb,zz,2\n")
    (tmp_path / "items.csv").write_text("i,brand\nx,acme\n")
    with pytest.warns(UserWarning, match="1 items of the log have no row here"):
        raw = load_described(_desc(tmp_path, items="items.csv", item_features=["brand"], unknown_items="oov"))
    assert raw.items.loc["zz", "brand"] == "unknown" and raw.items.loc["x", "brand"] == "acme"


def test_description_file_mistakes(tmp_path):
    (tmp_path / "bad.json").write_text('{"name": "t", "interactions": "x.csv", "user": "u", "itm": "i"}')
    with pytest.raises(DataFormatError, match=r"unknown fields \['itm'\], missing fields \['item', 'timestamp'\]"):
        DatasetDescription.from_file(tmp_path / "bad.json")
    with pytest.raises(DataFormatError, match="no file matches"):
        _desc(tmp_path, interactions=["nothing*.csv"]).files()
