"""The trivial reference: recommend the items most frequent in training, to everyone."""

from __future__ import annotations

import numpy as np


class PopularityRecommender:
    """Scores every catalog item by its training frequency, the same for every query.

    Retrieval: ``score(u, i) = count_train(i) / N``. Pre-ranking: the item's smoothed training
    click rate ``(clicks_i + m * r) / (shows_i + m)`` (``r`` = global rate, ``m`` = 10). Any
    personalised model should beat it.

    Args:
        item_probability: training frequency of each catalog row.
        click_rate: optional smoothed training click rate of each catalog row (pre-ranking).

    Example:
        >>> model = tfcs3.models.build_model("popularity", data)
        >>> tfcs3.evaluation.evaluate(model, data, "test")
    """

    def __init__(self, item_probability: np.ndarray, click_rate: np.ndarray | None = None):
        self.item_probability = np.asarray(item_probability, dtype=np.float64)
        self.click_rate = None if click_rate is None else np.asarray(click_rate, dtype=np.float64)

    @classmethod
    def from_training(
        cls, item_rows: np.ndarray, num_items: int, labels: np.ndarray | None = None, prior: float = 10.0
    ) -> PopularityRecommender:
        """Counts training impressions (and clicks, when labels are given) per catalog row."""
        shows = np.bincount(item_rows, minlength=num_items).astype(np.float64)
        rate = None
        if labels is not None:
            clicks = np.bincount(item_rows, weights=labels, minlength=num_items)
            overall = clicks.sum() / max(shows.sum(), 1.0)
            rate = (clicks + prior * overall) / (shows + prior)
        return cls(shows / max(shows.sum(), 1.0), rate)

    def score_catalog(self, num_queries: int) -> np.ndarray:
        """``[num_queries, num_items]`` scores (every row the same)."""
        return np.broadcast_to(self.item_probability, (num_queries, len(self.item_probability)))

    def click_probability(self, item_rows: np.ndarray) -> np.ndarray:
        """Pre-ranking: the items' smoothed click rates (frequency if no labels were given)."""
        table = self.click_rate if self.click_rate is not None else self.item_probability
        return table[np.asarray(item_rows)]
