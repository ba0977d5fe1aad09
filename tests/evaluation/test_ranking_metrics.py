import itertools

import numpy as np
import pytest

from tfcs3.evaluation import auc, gauc, logloss


def _pairwise_auc(labels, scores):
    pos = [s for s, y in zip(scores, labels, strict=True) if y == 1]
    neg = [s for s, y in zip(scores, labels, strict=True) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_hand_cases():
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)
    assert auc([1, 1], [0.1, 0.2]) != auc([1, 1], [0.1, 0.2])  # NaN: one class only


def test_auc_matches_pairwise_count_with_ties():
    rng = np.random.default_rng(1)
    labels = rng.integers(2, size=300)
    scores = np.round(rng.normal(size=300), 1)
    assert auc(labels, scores) == pytest.approx(_pairwise_auc(labels, scores), abs=1e-12)


def test_logloss():
    assert logloss([1, 0], [0.8, 0.3]) == pytest.approx(-(np.log(0.8) + np.log(0.7)) / 2)
    assert np.isfinite(logloss([1], [0.0]))


def test_gauc_weights_users_by_impressions_and_skips_single_class_users():
    users = np.array(["a", "a", "a", "a", "b", "b", "c"])
    labels = np.array([1, 0, 1, 0, 1, 0, 1])
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.3, 0.6, 0.5])
    expected = (4 * 0.75 + 2 * 0.0) / 6  # a: 3 of 4 pairs right; b: none; c has one class only
    assert gauc(users, labels, scores) == pytest.approx(expected)
