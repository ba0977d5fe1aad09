"""The base class of the top-k indices an export serves, and the table of them by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

import tensorflow as tf


class IndexedModel(Protocol):
    """What an index asks of a trained model: whether its score is a dot product, the score
    itself, and (SparCode) its product quantizer of query codes (``None`` when it has none)."""

    is_dot: bool
    quantizer: Any

    def score(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor: ...


class TopKIndex(tf.Module):
    """A top-k search over the catalog's candidate representations, with per-query exclusions.

    Subclasses implement :meth:`search` and :meth:`for_model` and register under a name
    (:func:`register_index`); the export picks one from :data:`INDEXES` by that name.
    """

    #: The registered name (set by :func:`register_index`).
    kind: ClassVar[str] = ""

    def search(self, queries: tf.Tensor, k: int, exclude_rows: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """``(scores [B, k'], rows [B, k'])`` best first, ``k' = min(k, N)``; ``exclude_rows``
        ``[B, n]`` lists catalog rows never to return (negative entries pad)."""
        raise NotImplementedError

    @classmethod
    def for_model(cls, model: IndexedModel, embeddings: tf.Variable, k: int, **options: Any) -> TopKIndex:
        """The index of ``model``'s catalog ``embeddings`` ``[N, d]`` (``options``: the index's own
        settings); a clear ``ValueError`` when the model's score does not suit the index."""
        raise NotImplementedError

    def metadata(self) -> dict[str, Any]:
        """What the export's ``tfcs3_export.json`` records about the index."""
        return {"index_options": None, "sparse_index": None}


INDEXES: dict[str, type[TopKIndex]] = {}


def register_index(name: str) -> Callable[[type[TopKIndex]], type[TopKIndex]]:
    """Class decorator adding a :class:`TopKIndex` to :data:`INDEXES` under ``name``."""

    def wrap(cls: type[TopKIndex]) -> type[TopKIndex]:
        if name in INDEXES:
            raise ValueError(f"index {name!r} is already registered")
        cls.kind = name
        INDEXES[name] = cls
        return cls

    return wrap
