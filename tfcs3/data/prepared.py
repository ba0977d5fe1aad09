"""What preparation produces: a dataset's splits (:class:`Split`) and the whole prepared dataset
(:class:`PreparedData`: feature spec, catalog, three splits), whatever protocol or path made them
(:mod:`tfcs3.data.protocols` in memory, :mod:`tfcs3.data.streaming` out of core)."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfcs3.data.features import FeatureSpec


@dataclasses.dataclass
class Split:
    """One split of a prepared dataset.

    Attributes:
        features: encoded query features plus the candidate features of the target item,
            name -> int32 array ([n] or [n, max_len]).
        target: catalog row of each example's item, int64 [n].
        users: raw user id of each example, [n].
        labels: float32 [n] click labels (pre-ranking only, else ``None``).
        timestamps: int64 [n] time of each example (seconds, as in the raw data); rows are in
            per-user chronological order, :meth:`time_order` gives the global one.
        exclusion_indptr, exclusion_rows: CSR lists of catalog rows to exclude when ranking
            example ``k`` (``exclusion_rows[indptr[k]:indptr[k+1]]``); retrieval only.
    """

    features: dict[str, np.ndarray]
    target: np.ndarray
    users: np.ndarray
    labels: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    exclusion_indptr: np.ndarray | None = None
    exclusion_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.target)

    def time_order(self) -> np.ndarray:
        """Row indices in global chronological order (ties keep the per-user order), for models
        that must see their training data as a stream (CS3's memories, online learning)."""
        if self.timestamps is None:
            raise ValueError("this split has no timestamps (prepared by an older tfcs3); clear the cache")
        return np.argsort(self.timestamps, kind="stable")

    def subset(self, rows: np.ndarray) -> Split:
        """The examples ``rows`` (integer positions or a boolean mask) of this split, in that
        order, with their exclusion lists."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        indptr = excluded = None
        if self.exclusion_indptr is not None and self.exclusion_rows is not None:
            lists = [self.exclusions(int(k)) for k in rows]
            indptr = np.r_[0, np.cumsum([len(x) for x in lists])].astype(np.int64)
            excluded = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, dtype=np.int64)
        return Split(
            features={k: v[rows] for k, v in self.features.items()},
            target=self.target[rows],
            users=self.users[rows],
            labels=None if self.labels is None else self.labels[rows],
            timestamps=None if self.timestamps is None else self.timestamps[rows],
            exclusion_indptr=indptr,
            exclusion_rows=excluded,
        )

    def id_counts(self, name: str, minlength: int) -> np.ndarray:
        """How many rows hold each index of categorical feature ``name`` (a sharded split counts
        its row groups one at a time)."""
        return np.bincount(self.features[name], minlength=minlength)

    def head(self, n: int) -> Split:
        """The first ``n`` rows (a sharded split reads only the shards they are in)."""
        return self.subset(np.arange(min(n, len(self))))

    def exclusions(self, k: int) -> np.ndarray:
        assert self.exclusion_indptr is not None and self.exclusion_rows is not None
        return self.exclusion_rows[self.exclusion_indptr[k] : self.exclusion_indptr[k + 1]]


@dataclasses.dataclass
class PreparedData:
    """A dataset under one protocol: the feature spec, the catalog and three splits.

    Attributes:
        name: dataset name (labels subsets, e.g. ``ml-1m[users1-2999]``).
        protocol: ``"retrieval"`` or ``"preranking"``.
        spec: the features models are built from.
        catalog_ids: raw item id of each catalog row.
        catalog_titles: human-readable title of each catalog row.
        catalog: encoded candidate features of every catalog row.
        item_probability: training frequency of each catalog row (sums to 1), for logQ.
        train, validation, test: the splits.
        description: one line about the data.
    """

    name: str
    protocol: str
    spec: FeatureSpec
    catalog_ids: np.ndarray
    catalog_titles: np.ndarray
    catalog: dict[str, np.ndarray]
    item_probability: np.ndarray
    train: Split
    validation: Split
    test: Split
    description: str = ""

    @property
    def num_items(self) -> int:
        return len(self.catalog_ids)

    def split(self, name: str) -> Split:
        if name not in ("train", "validation", "test"):
            raise ValueError(f"split must be train, validation or test, got {name!r}")
        return getattr(self, name)
