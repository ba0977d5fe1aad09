import numpy as np
import pandas as pd
import pytest

from tfcs3.data import OOV, RawDataset, load_prepared, make_dataset, prepare
from tfcs3.data.protocols import prepare_user_split


def _raw(rows, users=("u1", "u2")):
    inter = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    inter["rating"] = inter["rating"].astype(np.float32)
    items = sorted(set(inter["item"]), key=int)
    return RawDataset(
        name="tiny",
        interactions=inter,
        users=pd.DataFrame({"user": list(users), "gender": ["F", "M"][: len(users)]}).set_index("user"),
        items=pd.DataFrame(
            {"item": items, "title": [f"t{i}" for i in items], "kind": ["a"] * len(items), "tags": [["x"]] * len(items)}
        ).set_index("item"),
        user_features=["gender"],
        item_features=["kind"],
        item_multi_features=["tags"],
    )


def test_leave_last_out_breaks_timestamp_ties_by_item_id():
    # u1: items 30 and 4 share the last timestamp, so 4 then 30 (numeric id order): test = 30.
    rows = [("u1", "7", 5, 1), ("u1", "30", 4, 9), ("u1", "4", 3, 9), ("u1", "12", 2, 3),
            ("u2", "7", 1, 1), ("u2", "12", 5, 2), ("u2", "99", 5, 3)]  # fmt: skip
    data = prepare(_raw(rows), "retrieval", max_history=3)
    ids = data.catalog_ids
    test = dict(zip(data.test.users, ids[data.test.target], strict=True))
    val = dict(zip(data.validation.users, ids[data.validation.target], strict=True))
    assert test == {"u1": "30", "u2": "99"}
    assert val == {"u1": "4", "u2": "12"}
    assert list(ids) == ["4", "7", "12", "30", "99"]  # numeric, not string, order
    # 99 and 30 appear only in evaluation splits: OOV item ids, but still in the catalog.
    assert data.catalog["item_id"][list(ids).index("99")] == OOV
    assert "99" not in data.spec.item_vocabulary


def test_history_is_strictly_earlier_and_exclusions_keep_target(synthetic_retrieval):
    data = synthetic_retrieval
    vocab = data.spec.item_vocabulary
    for split in (data.validation, data.test):
        for k in range(len(split)):
            earlier = split.exclusions(k)
            assert split.target[k] not in earlier
            hist = split.features["history"][k]
            hist = hist[hist != 0]
            # History = the most recent earlier items (encoded), never the target itself.
            recent = data.catalog["item_id"][earlier[-len(hist) :]] if len(hist) else []
            np.testing.assert_array_equal(hist, recent)
    # Test exclusions contain the validation item of the same user.
    val_of = dict(zip(data.validation.users, data.validation.target, strict=True))
    for k, user in enumerate(data.test.users):
        assert val_of[user] in data.test.exclusions(k)
    assert len(vocab) > 2


def test_training_examples_never_see_their_own_future(synthetic_raw):
    data = prepare(synthetic_raw, "retrieval", max_history=50)
    raw = synthetic_raw.interactions.sort_values(["timestamp"])
    first_items = raw.groupby("user").head(1)
    # A user's first interaction has an empty history.
    n_empty = int((data.train.features["history"] == 0).all(axis=1).sum())
    assert n_empty == len(first_items)


def test_preranking_split_is_global_time_80_10_10(synthetic_raw):
    data = prepare(synthetic_raw, "preranking", max_history=10)
    n = len(data.train) + len(data.validation) + len(data.test)
    assert n == len(synthetic_raw.interactions)
    assert abs(len(data.train) / n - 0.8) < 0.01 and abs(len(data.test) / n - 0.1) < 0.01
    inter = synthetic_raw.interactions.set_index(["user", "item"])["timestamp"]
    ts = {s: inter.loc[list(zip(p.users, data.catalog_ids[p.target], strict=True))].to_numpy()
          for s, p in (("train", data.train), ("val", data.validation), ("test", data.test))}  # fmt: skip
    assert ts["train"].max() <= ts["val"].min() and ts["val"].max() <= ts["test"].min()
    ratings = synthetic_raw.interactions.set_index(["user", "item"])["rating"]
    keys = list(zip(data.test.users, data.catalog_ids[data.test.target], strict=True))
    np.testing.assert_array_equal(data.test.labels, (ratings.loc[keys].to_numpy() >= 4).astype(np.float32))


def test_preranking_labels_are_rating_at_least_4():
    rows = [("u1", "1", 5, 1), ("u1", "2", 3, 2), ("u1", "3", 4, 3), ("u2", "1", 1, 4), ("u2", "2", 4, 5),
            ("u1", "4", 2, 6), ("u2", "3", 5, 7), ("u1", "5", 4, 8), ("u2", "5", 1, 9), ("u2", "4", 4, 10)]  # fmt: skip
    data = prepare(_raw(rows), "preranking", max_history=4)
    assert len(data.train) == 8 and len(data.validation) == 1 and len(data.test) == 1
    assert data.test.labels.tolist() == [1.0]
    assert data.validation.labels.tolist() == [0.0]


def test_bad_protocol_and_empty_data():
    with pytest.raises(ValueError, match="protocol"):
        prepare(_raw([("u1", "1", 5, 1)]), "ranking")
    with pytest.raises(ValueError, match="no interactions"):
        prepare(_raw([]), "retrieval")


def test_tf_data_pipeline(synthetic_preranking):
    ds = make_dataset(synthetic_preranking.train, batch_size=32, shuffle=True, seed=0)
    batch = next(iter(ds))
    assert batch["label"].shape == (32,)
    assert batch["history"].shape == (32, 20)
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(synthetic_preranking.train, batch_size=0)


def test_user_split_holds_out_whole_users_with_one_target_each(synthetic_raw):
    data = prepare_user_split(synthetic_raw, max_history=10, targets_per_user=3, seed=1)
    train, val, test = (set(data.split(s).users) for s in ("train", "validation", "test"))
    assert not (train & val or train & test or val & test)
    users = len(train | val | test)
    assert users == synthetic_raw.interactions["user"].nunique()
    assert abs(len(test) - 0.2 * users) <= 1 and abs(len(val) - 0.08 * users) <= 1
    assert len(data.test) == len(test) and len(data.validation) == len(val)
    assert max(np.unique(data.train.users, return_counts=True)[1]) <= 3
    # New users: no user-id feature; nothing is excluded from the ranking.
    assert "user_id" not in [f.name for f in data.spec.query]
    assert data.test.exclusion_indptr is None and data.protocol == "retrieval"
    # Each target has a full window of earlier items when the user has one, ending with the item
    # just before the target in time order.
    df = synthetic_raw.interactions.copy()
    df["_item"] = df["item"].astype(int)
    df = df.sort_values(["user", "timestamp", "_item"], kind="stable")
    sizes = df.groupby("user").size()
    hist = data.test.features["history"]
    full = sizes.loc[data.test.users].to_numpy() > 10
    assert (hist[full] != 0).all()
    item_ids = list(data.catalog_ids)
    for k, (user, target) in enumerate(zip(data.test.users, data.test.target, strict=True)):
        items = df.loc[df["user"] == user, "item"].tolist()
        position = items.index(item_ids[target])
        if position:
            assert hist[k, -1] == data.catalog["item_id"][item_ids.index(items[position - 1])]
    # The item vocabulary is exactly what training users interacted with (the rest maps to OOV).
    assert set(data.spec.item_vocabulary.values) == set(df.loc[df["user"].isin(train), "item"])
    same = prepare_user_split(synthetic_raw, max_history=10, targets_per_user=3, seed=1)
    np.testing.assert_array_equal(same.test.target, data.test.target)
    other = prepare_user_split(synthetic_raw, max_history=10, targets_per_user=3, seed=2)
    assert set(other.test.users) != test


def test_user_split_rejects_bad_fractions(synthetic_raw):
    with pytest.raises(ValueError, match="fractions"):
        prepare_user_split(synthetic_raw, test_fraction=1.5)
    with pytest.raises(ValueError, match="no training users"):
        prepare_user_split(synthetic_raw, test_fraction=0.9, validation_fraction=0.99)


def test_load_prepared_knows_the_user_split(ml100k_dir):
    # Cached per split seed: the same seed gives the same held-out users, another seed others.
    first = load_prepared("ml-100k", "user_split", ml100k_dir, seed=0)
    again = load_prepared("ml-100k", "user_split", ml100k_dir, seed=0)
    other = load_prepared("ml-100k", "user_split", ml100k_dir, seed=1)
    assert first.protocol == "retrieval" and first.name.endswith("user split")
    np.testing.assert_array_equal(first.test.users, again.test.users)
    assert set(first.test.users) != set(other.test.users)
    assert "user_id" not in [f.name for f in first.spec.query]


def test_load_prepared_rejects_an_unknown_protocol():
    assert load_prepared("synthetic", "user_split").name.endswith("user split")
    with pytest.raises(ValueError, match="protocol must be one of"):
        load_prepared("synthetic", "leave_one_out")


def test_gap_buckets_are_log2_minutes():
    from tfcs3.data.sequences import GAP_BUCKETS, gap_buckets

    minutes = np.array([0, 0.99, 1, 2.99, 3, 6.99, 7, 1e9])
    np.testing.assert_array_equal(gap_buckets(minutes * 60), [0, 0, 1, 1, 2, 2, 3, GAP_BUCKETS - 1])
    with pytest.raises(ValueError, match="time gaps must be >= 0"):
        gap_buckets(np.array([-1]))


@pytest.mark.parametrize("protocol", ["retrieval", "preranking"])
def test_history_gaps_are_aligned_with_the_history(protocol):
    # u1 rates at minutes 0, 1, 3, 10 and 12; every history slot carries the bucket of
    # (example time - that item's time), padding stays 0.
    minute = 60
    rows = [("u1", "1", 5, 0), ("u1", "2", 4, 1 * minute), ("u1", "3", 5, 3 * minute), ("u1", "4", 4, 10 * minute),
            ("u1", "5", 5, 12 * minute), ("u2", "1", 5, 0), ("u2", "2", 5, 5), ("u2", "3", 5, 10)]  # fmt: skip
    data = prepare(_raw(rows), protocol, max_history=3, history_gaps=True)
    spec = data.spec.feature("history_gap")
    assert spec.kind == "multi" and spec.max_len == 3
    for split in (data.train, data.validation, data.test):
        hist, gaps = split.features["history"], split.features["history_gap"]
        np.testing.assert_array_equal(hist == 0, gaps == 0)
    # The u1 example at minute 12 (its last) has history items 2, 3, 4 at gaps of 11, 9 and 2
    # minutes: buckets 3, 3, 1 (a reversed or shifted window would give 1, 3, 3 or 3, 3, 3).
    k = [i for i, t in enumerate(data.test.target) if data.catalog_ids[t] == "5"]
    assert len(k) == 1  # the last test example in either protocol
    got = spec.vocabulary.raw(data.test.features["history_gap"][k[0]])
    assert got == ["3", "3", "1"]
    without = prepare(_raw(rows), protocol, max_history=3)
    assert "history_gap" not in without.spec.names and "history_gap" not in without.train.features


def test_history_gaps_need_real_timestamps():
    rows = [("u1", "1", 5, 0), ("u1", "2", 4, 1), ("u1", "3", 5, 2), ("u2", "1", 5, 0), ("u2", "2", 5, 1)]
    raw = _raw(rows)
    raw.timestamps_are_times = False
    with pytest.raises(ValueError, match="no timestamps"):
        prepare(raw, "retrieval", max_history=3, history_gaps=True)
    with pytest.raises(ValueError, match="no timestamps"):
        prepare_user_split(raw, max_history=1, history_gaps=True)
    raw.timestamps_are_times = True
    with pytest.raises(ValueError, match="needs a history"):
        prepare(raw, "retrieval", max_history=0, history_gaps=True)


def test_per_user_preranking_split_keeps_each_users_time_order(synthetic_raw):
    """Per user, every training impression is earlier than every held-out one (time, then item
    id), validation comes before test, and held-out rows belong to users seen in training."""
    from tfcs3.data.protocols import PRERANKING_PER_USER, per_user_split

    data = prepare(synthetic_raw, PRERANKING_PER_USER, max_history=20)
    assert data.protocol == "preranking" and data.validation.labels is not None
    train_users = set(data.train.users)
    assert set(data.validation.users) <= train_users and set(data.test.users) <= train_users
    key = {}
    for name in ("train", "validation", "test"):
        split = data.split(name)
        for user, t, item in zip(split.users, split.timestamps, split.target, strict=True):
            key.setdefault(user, {}).setdefault(name, []).append((t, item))
    for user, parts in key.items():
        latest_train = max(parts["train"])
        assert all(latest_train < x for x in parts.get("validation", []) + parts.get("test", [])), user
        if "test" in parts:
            assert max(parts["validation"]) < min(parts["test"]), user
    # the documented rule: >= 10 impressions hold out round(20%), halved (validation rounded up)
    position = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0, 1, 2])
    count = np.array([11] * 11 + [3] * 3)
    train, validation, test = per_user_split(position, count)
    np.testing.assert_array_equal(validation, [9])
    np.testing.assert_array_equal(test, [10])
    np.testing.assert_array_equal(train, [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13])
