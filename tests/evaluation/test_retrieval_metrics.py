import numpy as np
import pytest

from tfcs3.evaluation import metrics_from_ranks, target_ranks, top_k_with_exclusions


def _fn(scores):
    return lambda start, end: scores[start:end]


def test_hand_computed_ranks_with_exclusions_and_ties():
    scores = np.array(
        [
            [0.9, 0.5, 0.7, 0.1],  # target 2: item 0 scores higher -> rank 1
            [0.9, 0.5, 0.7, 0.1],  # target 2, item 0 excluded -> rank 0
            [0.3, 0.3, 0.3, 0.3],  # target 2, all tied: items 0 and 1 come first -> rank 2
            [0.3, 0.9, 0.3, 0.3],  # target 0, item 0 excluded in the list but it is the target: kept
        ]
    )
    targets = np.array([2, 2, 2, 0])
    indptr = np.array([0, 0, 1, 1, 2])
    rows = np.array([0, 0])
    ranks = target_ranks(_fn(scores), targets, indptr, rows, batch_size=3)
    np.testing.assert_array_equal(ranks, [1, 0, 2, 1])


def test_metrics_from_hand_ranks():
    m = metrics_from_ranks(np.array([0, 1, 9, 10, 50]), ks=(10,))
    assert m["recall@10"] == pytest.approx(3 / 5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / np.log2(3) + 1 / np.log2(11)) / 5)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 2 + 1 / 10) / 5)


def _brute_force(scores, targets, exclusions, ks):
    """An independent computation: sort every row (stable), drop exclusions, find the target."""
    out = {f"{m}@{k}": [] for k in ks for m in ("recall", "ndcg", "mrr")}
    for row, target, excl in zip(scores, targets, exclusions, strict=True):
        keep = [i for i in range(len(row)) if i not in set(excl) or i == target]
        order = sorted(keep, key=lambda i: (-row[i], i))
        rank = order.index(target)
        for k in ks:
            out[f"recall@{k}"].append(float(rank < k))
            out[f"ndcg@{k}"].append(1 / np.log2(rank + 2) if rank < k else 0.0)
            out[f"mrr@{k}"].append(1 / (rank + 1) if rank < k else 0.0)
    return {k: float(np.mean(v)) for k, v in out.items()}


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_agrees_with_brute_force(batch_size):
    rng = np.random.default_rng(0)
    n_q, n_items = 60, 150
    scores = np.round(rng.normal(size=(n_q, n_items)), 1)  # rounding makes ties common
    targets = rng.integers(n_items, size=n_q)
    exclusions = [rng.choice(n_items, size=rng.integers(0, 40), replace=False) for _ in range(n_q)]
    indptr = np.r_[0, np.cumsum([len(e) for e in exclusions])]
    rows = np.concatenate(exclusions)
    ranks = target_ranks(_fn(scores), targets, indptr, rows, batch_size=batch_size)
    ours = metrics_from_ranks(ranks, ks=(1, 10, 20, 50, 100))
    theirs = _brute_force(scores, targets, exclusions, (1, 10, 20, 50, 100))
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key


def test_large_catalog_is_scored_in_blocks():
    calls = []

    def fn(start, end):
        calls.append(end - start)
        return np.zeros((end - start, 100_000), dtype=np.float32)

    target_ranks(fn, np.zeros(300, dtype=int), num_items=100_000)
    assert max(calls) * 100_000 <= 1 << 23  # never more than ~32 MiB of scores at once
    assert sum(calls) == 300


def test_nan_scores_and_bad_shapes_are_errors():
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(_fn(np.full((2, 3), np.nan)), np.array([0, 1]))
    with pytest.raises(ValueError, match="shape"):
        target_ranks(lambda s, e: np.zeros(3), np.array([0]))
    with pytest.raises(ValueError, match="target rows"):
        target_ranks(_fn(np.zeros((1, 3))), np.array([5]))
    with pytest.raises(ValueError, match="no evaluation"):
        metrics_from_ranks(np.array([]))


def test_top_k_with_exclusions():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.3])
    np.testing.assert_array_equal(top_k_with_exclusions(scores, [3], 3), [1, 2, 4])
    np.testing.assert_array_equal(top_k_with_exclusions(scores, [], 2), [1, 3])
