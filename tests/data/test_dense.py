"""Dense next-item supervision: what the training windows hold, and what they never hold."""

import dataclasses

import numpy as np
import pytest

from tfcs3.data.dense import NEXT_ITEMS, dense_rows, dense_split


def test_dense_rows_keep_every_window_back_from_each_users_last_row():
    users = np.array(["a"] * 7 + ["b"] + ["c"] * 3)
    # a: rows 0..6, window 3 -> 6, 3 (0 is the first row: no history); b: one row, nothing; c: 8..10 -> 10
    np.testing.assert_array_equal(dense_rows(users, 3), [3, 6, 10])


def _per_user(split):
    out = {}
    for u in np.unique(split.users):
        out[u] = split.target[split.users == u]
    return out


def test_dense_windows_predict_each_training_item_once_and_never_a_held_out_one(synthetic_retrieval):
    data = synthetic_retrieval
    dense = dense_split(data.train, "history", "item_id")
    train_targets = {
        u: list(data.train.features["item_id"][data.train.users == u]) for u in np.unique(data.train.users)
    }
    for user in np.unique(data.train.users):
        rows = np.flatnonzero(dense.users == user)
        predicted = (
            np.concatenate([dense.features[NEXT_ITEMS][r][dense.features[NEXT_ITEMS][r] != 0] for r in rows])
            if len(rows)
            else []
        )
        # every training item but the first, in order, exactly once
        assert list(predicted) == train_targets[user][1:]
    train_pairs = set(zip(data.train.users, data.train.target, strict=True))
    for r in range(len(dense)):
        user = dense.users[r]
        items = np.r_[dense.features["history"][r], dense.features[NEXT_ITEMS][r]]
        catalog_rows = {int(np.flatnonzero(data.catalog["item_id"] == i)[0]) for i in items[items != 0]}
        # every input and label is one of this user's training interactions: never a validation
        # or test target that the user did not also meet in training
        assert all((user, row) in train_pairs for row in catalog_rows)


def test_a_dense_window_reads_its_history_shifted_by_one(synthetic_retrieval):
    dense = dense_split(synthetic_retrieval.train, "history", "item_id")
    history, following = dense.features["history"], dense.features[NEXT_ITEMS]
    real = history != 0
    np.testing.assert_array_equal(following[:, :-1][real[:, :-1]], history[:, 1:][real[:, :-1]])
    np.testing.assert_array_equal(following[:, -1], dense.features["item_id"])
    assert (following[~real] == 0).all()


def test_per_position_features_come_from_the_row_each_position_predicts(synthetic_retrieval):
    train = synthetic_retrieval.train
    row = np.arange(len(train), dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    split = dataclasses.replace(train, features={**train.features, "row": row})
    dense = dense_split(split, "history", "item_id", per_position=["row"])
    following, rows = dense.features[NEXT_ITEMS], dense.features["row"]
    assert rows.shape == (*following.shape, 2)
    real = following != 0
    source = rows[..., 0].astype(np.int64)
    # the source row targets the position's next item and belongs to the window's user
    np.testing.assert_array_equal(split.features["item_id"][source[real]], following[real])
    np.testing.assert_array_equal(split.users[source[real]], np.broadcast_to(dense.users[:, None], real.shape)[real])
    assert (rows[~real] == 0).all()
    # each position reads the row just before the next position's (consecutive rows of one user)
    both = real[:, :-1] & real[:, 1:]
    np.testing.assert_array_equal(source[:, 1:][both] - source[:, :-1][both], 1)


def test_per_position_features_refuse_rows_out_of_time_order(synthetic_retrieval):
    split = synthetic_retrieval.train
    shuffled = split.subset(np.random.default_rng(0).permutation(len(split)))
    shuffled = dataclasses.replace(shuffled, features={**shuffled.features, "row": np.zeros((len(split), 1))})
    with pytest.raises(ValueError, match="consecutive and in time order"):
        dense_split(shuffled, "history", "item_id", per_position=["row"])
