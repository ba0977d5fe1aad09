"""Out-of-core preparation: equal to the in-memory path, in any format, and safe when it fails."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from tfcs3.data import DataFormatError, generate_synthetic, load_prepared, prepare
from tfcs3.data.cache import CacheMiss
from tfcs3.data.datasets import load_raw
from tfcs3.data.features import OOV
from tfcs3.data.shards import ShardedSplit, read_shards
from tfcs3.data.streaming import prepare_streaming, raw_source

SPLITS = ("train", "validation", "test")


def assert_same_prepared(a, b, names=True):
    """Every array of two PreparedData equal: spec, vocabularies, catalog, splits, histories."""
    assert a.spec.to_json() == b.spec.to_json()
    np.testing.assert_array_equal(a.catalog_ids, b.catalog_ids)
    np.testing.assert_array_equal(a.catalog_titles, b.catalog_titles)
    np.testing.assert_array_equal(a.item_probability, b.item_probability)
    assert a.catalog.keys() == b.catalog.keys()
    for k in a.catalog:
        np.testing.assert_array_equal(a.catalog[k], b.catalog[k], err_msg=k)
    assert a.protocol == b.protocol
    if names:
        assert (a.name, a.description) == (b.name, b.description)
    for name in SPLITS:
        x, y = a.split(name), b.split(name)
        assert len(x) == len(y) and x.features.keys() == y.features.keys(), name
        for k in x.features:
            np.testing.assert_array_equal(x.features[k], y.features[k], err_msg=f"{name}/{k}")
        for field in ("target", "users", "labels", "timestamps", "exclusion_indptr", "exclusion_rows"):
            u, v = getattr(x, field), getattr(y, field)
            assert (u is None) == (v is None), f"{name}/{field}"
            if u is not None:
                np.testing.assert_array_equal(u, v, err_msg=f"{name}/{field}")


def _streamed(raw, tmp_path, protocol="retrieval", **kwargs):
    kwargs = {"chunk_rows": 997, "shard_rows": 2_000, **kwargs}
    chunk_rows = kwargs.pop("chunk_rows")
    path = prepare_streaming(raw_source(raw, chunk_rows), tmp_path / "store", "key", protocol, **kwargs)
    return read_shards(path, "key")


@pytest.mark.parametrize("protocol", ["retrieval", "preranking_per_user"])
def test_streaming_equals_in_memory_on_movielens(ml100k_dir, tmp_path, protocol):
    raw = load_raw("ml-100k")
    streamed = _streamed(raw, tmp_path, protocol, chunk_rows=7_001, shard_rows=20_000)
    assert isinstance(streamed.train, ShardedSplit) and len(streamed.train.files) == 5
    assert_same_prepared(prepare(raw, protocol), streamed)


def test_repeated_rows_labels_gaps_and_min_count(tmp_path):
    raw = generate_synthetic(num_users=80, num_items=60, seed=3)
    log = raw.interactions
    log["label"] = (log["rating"] >= 3).astype(np.float32)
    raw.interactions = pd.concat([log, log.iloc[::7]], ignore_index=True)  # 1 in 7 rows twice
    with pytest.warns(UserWarning, match="repeat an earlier row exactly"):
        streamed = _streamed(raw, tmp_path, "preranking_per_user", history_gaps=True, min_count=25)
    from tfcs3.data.raw import drop_repeated_rows

    with pytest.warns(UserWarning, match="repeat an earlier row exactly"):
        raw.interactions = drop_repeated_rows(raw.interactions, "log")
    expected = prepare(raw, "preranking_per_user", history_gaps=True, min_count=25)
    assert_same_prepared(expected, streamed)
    # min_count: an item with fewer than 25 training rows is out of the vocabulary, its rows map to OOV.
    counts = pd.Series(streamed.catalog_ids[streamed.train.target]).value_counts()
    rare = counts.index[counts < 25]
    assert len(rare) and all(r not in streamed.spec.item_vocabulary for r in rare)
    rows = np.isin(streamed.catalog_ids, rare)
    assert (streamed.catalog["item_id"][rows] == OOV).all()


def test_the_training_stream_gives_every_row_once_per_epoch(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    monkeypatch.setattr("tfcs3.data.shards.ROW_GROUP", 150)  # several row groups (the unit read) per shard
    raw = generate_synthetic(num_users=120, seed=1)
    data = _streamed(raw, tmp_path, shard_rows=500)
    train = data.train
    assert len(train.files) > 2 and sum(pq.ParquetFile(f).num_row_groups for f in train.files) > len(train.files)
    seen = [b for b in train.dataset(64, shuffle=True, seed=5)]
    ids = np.concatenate([b["user_id"].numpy() for b in seen])
    history = np.concatenate([b["history"].numpy() for b in seen])
    assert len(ids) == len(train)
    expected = np.lexsort(train.features["history"].T[::-1]), np.lexsort(history.T[::-1])
    np.testing.assert_array_equal(train.features["history"][expected[0]], history[expected[1]])
    first_epoch = ids[:64]
    again = next(iter(train.dataset(64, shuffle=True, seed=5)))["user_id"].numpy()
    np.testing.assert_array_equal(first_epoch, again)  # seeded
    assert len(np.unique(first_epoch)) > 32  # batches mix users (rows are stored shuffled)
    vocabulary = len(data.spec.item_vocabulary)
    expected_counts = np.bincount(train.features["item_id"], minlength=vocabulary)
    np.testing.assert_array_equal(train.id_counts("item_id", vocabulary), expected_counts)
    assert len(train.time_order()) == len(train)  # every array field loads, lazily (timestamps here)
    head = train.head(10)
    assert len(head) == 10 and head.features.keys() == train.features.keys()


def test_a_failed_preparation_leaves_the_store_as_it_was(tmp_path):
    raw = generate_synthetic(num_users=50, seed=2)
    good = _streamed(raw, tmp_path)

    def broken():
        yield raw.interactions.iloc[:100]
        raise DataFormatError("log.csv, row 101: column 'ts': cannot parse 'x' as a time")

    source = raw_source(raw)
    source.chunks = broken
    with pytest.raises(DataFormatError, match="row 101"):
        prepare_streaming(source, tmp_path / "store", "key")
    assert sorted(os.listdir(tmp_path)) == ["store"]  # no spill or half-written store left behind
    assert_same_prepared(good, read_shards(tmp_path / "store", "key"))


def test_a_store_of_another_key_or_a_planted_file_is_refused(tmp_path):
    _streamed(generate_synthetic(num_users=30, seed=0), tmp_path)
    with pytest.raises(CacheMiss):
        read_shards(tmp_path / "store", "other-key")
    meta = json.loads((tmp_path / "store" / "meta.json").read_text())
    shard = tmp_path / "store" / meta["files"]["validation"][0]
    pd.DataFrame({"x": [1]}).to_parquet(shard)  # planted: no key inside
    with pytest.raises(CacheMiss, match="not 'key'"):
        read_shards(tmp_path / "store", "key")
    with pytest.raises(ValueError, match="each user.s rows on their own"):
        prepare_streaming(raw_source(generate_synthetic(num_users=30)), tmp_path / "s2", "k", "preranking")


def _movielens_as_files(raw, folder, fmt):
    """MovieLens-100K written as a user's own log would be: a log, a user table, an item table."""
    log = raw.interactions.rename(columns={"user": "user_id", "item": "movie", "timestamp": "when"})
    users = raw.users.reset_index().rename(columns={"user": "user_id"})
    items = raw.items.reset_index().rename(columns={"item": "movie"})
    if fmt == "csv":
        log.to_csv(folder / "ratings.csv.gz", index=False)
        users.to_csv(folder / "users.csv", index=False)
        items.assign(genres=items["genres"].map("|".join)).to_csv(folder / "movies.csv", index=False)
        names = "ratings.csv.gz", "users.csv", "movies.csv"
    else:
        for name, frame in (("ratings", log), ("users", users), ("movies", items)):
            frame.to_parquet(folder / f"{name}.parquet")
        names = "ratings.parquet", "users.parquet", "movies.parquet"
    description = {
        "name": "movies", "interactions": names[0], "user": "user_id", "item": "movie", "timestamp": "when",
        "rating": "rating", "users": names[1], "user_features": raw.user_features, "items": names[2],
        "item_features": raw.item_features, "item_multi_features": raw.item_multi_features, "title": "title",
        "shard_rows": 30_000,
    }  # fmt: skip
    (folder / "movies.json").write_text(json.dumps(description))
    return folder / "movies.json"


@pytest.mark.parametrize("protocol", ["retrieval", "preranking"])
def test_csv_parquet_and_the_movielens_loader_prepare_the_same_data(ml100k_dir, tmp_path, monkeypatch, protocol):
    monkeypatch.setenv("TFCS3_CACHE_DIR", str(tmp_path / "cache"))
    raw = load_raw("ml-100k")
    reference = load_prepared("ml-100k", protocol, use_cache=False)
    for fmt in ("csv", "parquet"):
        (tmp_path / fmt).mkdir()
        own = load_prepared(str(_movielens_as_files(raw, tmp_path / fmt, fmt)), protocol)
        assert isinstance(own.train, ShardedSplit) == (protocol == "retrieval")
        assert_same_prepared(reference, own, names=False)


def test_hashed_user_ids_prepare_alike_and_serve_new_users(tmp_path):
    from harness import export_matches_model

    from tfcs3.data.features import HashedVocabulary
    from tfcs3.models import build_model

    raw = generate_synthetic(num_users=90, seed=4)
    streamed = _streamed(raw, tmp_path, user_id_buckets=32)
    assert_same_prepared(prepare(raw, user_id_buckets=32), streamed)
    vocab = streamed.spec.feature("user_id").vocabulary
    assert isinstance(vocab, HashedVocabulary) and len(vocab) == 34
    model = build_model("youtubednn", streamed, embedding_dim=8)
    served = export_matches_model(model, streamed, tmp_path / "export", "hashed")  # raw user ids, hashed in the export
    loaded = tf.saved_model.load(str(served["path"]))
    request = {k: v[:1] for k, v in served["raw"].items() if k in model.query_feature_names}
    new_user = {**request, "user_id": ["a user never seen"]}
    embed = loaded.signatures["query_embedding"]
    features = {k: tf.constant(v) for k, v in new_user.items()}
    mine = dict(streamed.test.head(1).features, user_id=vocab.lookup(["a user never seen"]))
    np.testing.assert_allclose(embed(**features)["embedding"].numpy(), model.represent_queries(mine).numpy(), atol=1e-5)


def test_a_file_that_switches_from_integer_times_to_dates_is_refused_chunk_by_chunk(tmp_path):
    from tfcs3.data import DatasetDescription
    from tfcs3.data.streaming import described_source

    rows = [f"u{i % 3},i{i},{i}" for i in range(10)] + [f"u{i % 3},i{i},2024-01-{i:02d}" for i in range(10, 20)]
    (tmp_path / "log.csv").write_text("u,i,t\n" + "\n".join(rows) + "\n")
    desc = DatasetDescription(name="mixed", interactions=["log.csv"], user="u", item="i", timestamp="t",
                              base_dir=str(tmp_path))  # fmt: skip
    with pytest.raises(DataFormatError, match=r"log.csv, row 11: column 't': '2024-01-10' is not one of the integers"):
        prepare_streaming(described_source(desc, chunk_rows=10), tmp_path / "store", "k")
    with pytest.raises(DataFormatError, match=r"row 11: column 't': cannot parse '2024-01-10'"):
        load_prepared(desc, use_cache=False)  # the whole file at once: the same row refused


def test_leftovers_of_a_killed_preparation_are_removed_and_numbers_are_whole(tmp_path):
    from tfcs3.data import DatasetDescription

    dead = tmp_path / ".store.spill-999999999-abc"
    mine = tmp_path / f".store.tmp-{os.getpid()}-abc"  # a live process's: left alone
    dead.mkdir(), mine.mkdir()
    _streamed(generate_synthetic(num_users=20, seed=0), tmp_path)
    assert not dead.exists() and mine.exists()
    fields = {"name": "n", "interactions": ["x.csv"], "user": "u", "item": "i", "timestamp": "t"}
    assert DatasetDescription(**fields, shard_rows=1e6).shard_rows == 1_000_000  # JSON's 1e6
    with pytest.raises(DataFormatError, match="min_count must be a whole number"):
        DatasetDescription(**fields, min_count="3")


def test_the_description_says_how_a_label_is_derived(tmp_path, monkeypatch):
    monkeypatch.setenv("TFCS3_CACHE_DIR", str(tmp_path / "cache"))
    raw = generate_synthetic(num_users=60, seed=5)
    raw.interactions.to_csv(tmp_path / "log.csv", index=False)
    fields = {"name": "r", "interactions": "log.csv", "user": "user", "item": "item", "timestamp": "timestamp",
              "rating": "rating"}  # fmt: skip
    for threshold in (4, 2.5):
        (tmp_path / "r.json").write_text(json.dumps({**fields, "positive_rating": threshold}))
        for protocol in ("preranking", "preranking_per_user"):  # in memory, and out of core
            data = load_prepared(str(tmp_path / "r.json"), protocol)
            split = data.test
            ratings = raw.interactions.set_index(["user", "timestamp"])["rating"]
            expected = ratings.loc[list(zip(split.users, split.timestamps, strict=True))].to_numpy() >= threshold
            np.testing.assert_array_equal(split.labels, expected.astype(np.float32))


def test_no_held_out_rows_look_alike_on_both_paths(tmp_path):
    raw = generate_synthetic(num_users=30, num_items=40, interactions_per_user=(8, 9), seed=6)  # < 10 each
    streamed = _streamed(raw, tmp_path, "preranking_per_user")
    assert len(streamed.test) == 0 and streamed.test.features.keys() == streamed.train.features.keys()
    assert_same_prepared(prepare(raw, "preranking_per_user"), streamed)
