"""Feature specifications: which features a model is built from, and their vocabularies.

Every categorical value is spelled as a string, exactly as the dataset spells it ("196", "M",
"technician"). A :class:`Vocabulary` maps those strings to integer indices with two reserved
slots:

* index 0 (``PAD``) pads variable-length features (genres, histories) and is masked out;
* index 1 (``OOV``) is the bucket for any value never seen in the training split.

Known values get indices 2, 3, ... in the order they were first seen in training.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

PAD = 0
OOV = 1
NUM_RESERVED = 2

CATEGORICAL = "categorical"  # one id per example, int32 [batch]
# a set of ids per example (genres, attributes), int32 [batch, max_len], 0-padded; history_gap is
# the one multi feature aligned position by position with the (left-padded) history
MULTI = "multi"
SEQUENCE = "sequence"  # the user's earlier items in time order, int32 [batch, max_len], left-padded
KINDS = (CATEGORICAL, MULTI, SEQUENCE)


class Vocabulary:
    """A string -> index lookup with a padding slot (0) and an OOV bucket (1).

    Args:
        values: the known values, in index order (duplicates are dropped).
    """

    def __init__(self, values: Iterable[Any]):
        seen: dict[str, int] = {}
        for value in values:
            key = str(value)
            if key not in seen:
                seen[key] = len(seen) + NUM_RESERVED
        self._index = seen
        self.values: list[str] = list(seen)

    def __len__(self) -> int:
        """Number of indices, reserved slots included (the embedding table size)."""
        return len(self.values) + NUM_RESERVED

    def __contains__(self, value: Any) -> bool:
        return str(value) in self._index

    def lookup(self, values: Iterable[Any]) -> np.ndarray:
        """Maps raw values to int32 indices; unknown values go to the OOV bucket."""
        get = self._index.get
        return np.fromiter((get(str(v), OOV) for v in values), dtype=np.int32)

    def lookup_lists(self, lists: Sequence[Sequence[Any]], max_len: int) -> np.ndarray:
        """Maps lists of raw values to a right-padded int32 matrix [len(lists), max_len]."""
        out = np.zeros((len(lists), max_len), dtype=np.int32)
        get = self._index.get
        for row, values in enumerate(lists):
            ids = [get(str(v), OOV) for v in list(values)[:max_len]]
            out[row, : len(ids)] = ids
        return out

    def raw(self, indices: Iterable[int]) -> list[str]:
        """Inverse lookup: index -> raw value ("<pad>" and "<oov>" for the reserved slots)."""
        names = ["<pad>", "<oov>", *self.values]
        return [names[int(i)] for i in indices]


class HashedVocabulary(Vocabulary):
    """Ids hashed into ``buckets`` indices after the two reserved slots, for id spaces too large
    (or too open) to list: index ``2 + FarmHash64(value) mod buckets``, TensorFlow's
    ``tf.strings.to_hash_bucket_fast``, so an export computes the same index from the raw string.

    Every value has an index (there is no OOV: a new user gets its bucket's embedding, shared with
    the ids that collide there); the raw value of an index cannot be recovered.

    Example:
        >>> vocab = HashedVocabulary(2**18)
        >>> vocab.lookup(["u1", "u2"])        # two indices in [2, 2 + 2**18)
    """

    def __init__(self, buckets: int):
        if int(buckets) < 1:
            raise ValueError(f"HashedVocabulary needs buckets >= 1, got {buckets}")
        super().__init__(())
        self.buckets = int(buckets)

    def __len__(self) -> int:
        return self.buckets + NUM_RESERVED

    def __contains__(self, value: Any) -> bool:
        return True

    def lookup(self, values: Iterable[Any]) -> np.ndarray:
        import tensorflow as tf

        strings = np.array([str(v) for v in values], dtype=object)
        if not len(strings):
            return np.zeros(0, dtype=np.int32)
        return (tf.strings.to_hash_bucket_fast(strings, self.buckets).numpy() + NUM_RESERVED).astype(np.int32)

    def lookup_lists(self, lists: Sequence[Sequence[Any]], max_len: int) -> np.ndarray:
        raise ValueError("a hashed vocabulary serves a single id feature, not lists")

    def raw(self, indices: Iterable[int]) -> list[str]:
        return [f"<hash bucket {int(i) - NUM_RESERVED}>" for i in indices]


@dataclasses.dataclass
class Feature:
    """One model input.

    Attributes:
        name: input name in the feature dictionaries and in exported signatures.
        kind: ``"categorical"``, ``"multi"`` or ``"sequence"``.
        vocabulary: the raw values seen in training (``None`` for a sequence feature, which shares
            the item-id vocabulary).
        max_len: width of ``multi`` and ``sequence`` features (1 for categorical).
        aligned_with: for a ``multi`` feature that describes a sequence feature entry by entry (the
            history's time gaps), that sequence's name: position ``t`` belongs to the sequence's
            entry ``t``, so whatever reorders, crops or drops the sequence does the same to it.
    """

    name: str
    kind: str
    vocabulary: Vocabulary | None = None
    max_len: int = 1
    aligned_with: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Feature {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind != SEQUENCE and self.vocabulary is None:
            raise ValueError(f"Feature {self.name!r} of kind {self.kind!r} needs a vocabulary")
        if self.aligned_with is not None and self.kind != MULTI:
            raise ValueError(f"Feature {self.name!r}: only a multi feature can be aligned with a sequence")

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "kind": self.kind,
            "max_len": self.max_len,
            "vocabulary": None if self.vocabulary is None else self.vocabulary.values,
            "aligned_with": self.aligned_with,
        }
        if isinstance(self.vocabulary, HashedVocabulary):
            out["hash_buckets"] = self.vocabulary.buckets
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Feature:
        vocab: Vocabulary | None = None if d["vocabulary"] is None else Vocabulary(d["vocabulary"])
        if d.get("hash_buckets"):
            vocab = HashedVocabulary(d["hash_buckets"])
        return cls(
            name=d["name"],
            kind=d["kind"],
            vocabulary=vocab,
            max_len=int(d["max_len"]),
            aligned_with=d.get("aligned_with"),
        )


@dataclasses.dataclass
class FeatureSpec:
    """The features of a dataset split into the query side and the candidate side.

    The candidate side never sees query inputs, so candidate representations can be indexed.
    ``item_id`` names the candidate feature whose vocabulary also encodes sequence features.

    Attributes:
        query: query-side features (user id, demographics, history ...).
        candidate: candidate-side features (item id, genres, year ...).
        item_id: name of the candidate id feature.
        user_id: name of the query id feature (used for GAUC and for reporting).
    """

    query: list[Feature]
    candidate: list[Feature]
    item_id: str = "item_id"
    user_id: str = "user_id"

    def __post_init__(self) -> None:
        names = [f.name for f in self.query + self.candidate]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"FeatureSpec: feature names used twice: {sorted(dupes)}")
        if self.item_id not in {f.name for f in self.candidate}:
            raise ValueError(f"FeatureSpec: item id feature {self.item_id!r} is not a candidate feature")
        sequences = {f.name: f.max_len for f in self.query if f.kind == SEQUENCE}
        for side, features in (("query", self.query), ("candidate", self.candidate)):
            for f in features:
                if f.aligned_with is None or (side == "query" and sequences.get(f.aligned_with) == f.max_len):
                    continue
                raise ValueError(
                    f"FeatureSpec: {side} feature {f.name!r} is aligned with {f.aligned_with!r}, which must be a "
                    f"query sequence feature of the same length {f.max_len} (query sequences: {sequences})"
                )

    @property
    def item_vocabulary(self) -> Vocabulary:
        vocab = self.feature(self.item_id).vocabulary
        assert vocab is not None
        return vocab

    def feature(self, name: str) -> Feature:
        for f in self.query + self.candidate:
            if f.name == name:
                return f
        raise KeyError(f"FeatureSpec has no feature {name!r}; it has {self.names}")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.query + self.candidate]

    @property
    def sequence_features(self) -> list[Feature]:
        return [f for f in self.query if f.kind == SEQUENCE]

    def to_json(self) -> str:
        return json.dumps(
            {
                "query": [f.to_dict() for f in self.query],
                "candidate": [f.to_dict() for f in self.candidate],
                "item_id": self.item_id,
                "user_id": self.user_id,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        d = json.loads(text)
        return cls(
            query=[Feature.from_dict(f) for f in d["query"]],
            candidate=[Feature.from_dict(f) for f in d["candidate"]],
            item_id=d["item_id"],
            user_id=d["user_id"],
        )
