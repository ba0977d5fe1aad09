"""What tfcs3's evaluation and export ask of a trained two-tower model: the :class:`Retriever`
contract, and :class:`TowerRetriever`, which puts any pair of Keras towers under it.

A retriever maps query features to ``q = f(x_u)`` ``[B, d]`` with ``query_model`` and candidate
features to ``c = g(x_i)`` ``[N, d]`` with ``candidate_model`` (which never sees a query input),
and scores ``s(u, i) = q . c`` unless a subclass overrides :meth:`Retriever.score` (and sets
``is_dot = False``). :func:`tfcs3.evaluation.evaluate` ranks the whole catalog with it, and
:func:`tfcs3.export.export_model` writes it as a SavedModel with raw-id signatures.
:class:`~tfcs3.models.TwoTowerModel` and every model built on it are retrievers; a model written
with TFRS alone is one through :class:`TowerRetriever`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras


def represent(
    tower: tf_keras.Model,
    features: Mapping[str, np.ndarray],
    names: Sequence[str],
    batch_size: int = 2048,
) -> tf.Tensor:
    """Runs ``tower`` over the feature arrays ``names`` of ``features``, in batches.

    Rows go through the tower ordered by how many real (non-zero) entries their list features
    hold, and come back in their own order: each batch then holds lists of similar length, so a
    tower that skips the columns a whole batch pads (the sequence towers) does not spend its time
    on padding. Every row's output is its own, whatever batch it is in.
    """
    names = list(names)
    if not names:
        raise ValueError(f"{tower.name}: no input feature names given")
    missing = [n for n in names if n not in features]
    if missing:
        raise ValueError(f"{tower.name} needs features {missing}, which the data does not have")
    n = len(features[names[0]])

    def run(arrays: Mapping[str, np.ndarray]) -> tf.Tensor:
        parts = [
            tower({k: tf.constant(arrays[k][lo : lo + batch_size]) for k in names}, training=False)
            for lo in range(0, n, batch_size)
        ]
        return tf.concat(parts, axis=0)

    lists = [np.asarray(features[name]) for name in names if np.ndim(features[name]) == 2]
    if not lists or n <= batch_size:
        return run(features)
    order = np.argsort(sum(np.count_nonzero(x, axis=1) for x in lists), kind="stable")
    return tf.gather(run({name: np.asarray(features[name])[order] for name in names}), np.argsort(order))


class Retriever:
    """The contract of a trained two-tower model (see the module docstring).

    Subclasses provide ``query_model`` and ``candidate_model`` (Keras models called on a dict of
    int feature tensors) and the names of the features each reads, and override the hooks below
    whose defaults (dot-product score, nothing frozen at export) do not fit.
    """

    query_model: tf_keras.Model
    candidate_model: tf_keras.Model
    #: Hyperparameters recorded in an export's ``tfcs3_export.json``; a subclass sets its own (an
    #: empty record by default, so a retriever that has none still exports).
    hparams: Mapping[str, Any] = MappingProxyType({})
    #: True when ``score`` is the plain dot product (then ScaNN and TFRS's retrieval task apply).
    is_dot = True
    #: Score terms per (query, candidate) pair, for sizing evaluation blocks.
    score_width = 1
    #: SparCode's product quantizer of query codes (the ``sparse_code`` index needs one).
    quantizer: Any = None

    @property
    def query_feature_names(self) -> list[str]:
        """The features ``query_model`` reads (the export's request inputs)."""
        raise NotImplementedError(f"{type(self).__name__} must say which features its query_model reads")

    @property
    def candidate_feature_names(self) -> list[str]:
        """The features ``candidate_model`` reads (columns of the catalog)."""
        raise NotImplementedError(f"{type(self).__name__} must say which features its candidate_model reads")

    def represent_queries(self, features: Mapping[str, np.ndarray], batch_size: int = 2048) -> tf.Tensor:
        """``q`` ``[B, d]`` of feature arrays (inference mode)."""
        return represent(self.query_model, features, self.query_feature_names, batch_size)

    def represent_candidates(self, features: Mapping[str, np.ndarray], batch_size: int = 2048) -> tf.Tensor:
        """``c`` ``[N, d]`` of feature arrays, e.g. ``data.catalog`` (inference mode)."""
        return represent(self.candidate_model, features, self.candidate_feature_names, batch_size)

    @property
    def scorer_variables(self) -> list[tf.Variable]:
        """Variables of a learned score outside the towers (FIT's LSS, SparCode's interaction);
        the export tracks them."""
        return []

    def serving_tables(self) -> dict[str, tuple[tf.Tensor, str]]:
        """Per-id query-tower inputs an export freezes: ``{input key: (table, id feature)}``
        (memories, history item embeddings); serving gathers ``table[ids]`` under the key."""
        return {}

    def score(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """All-pairs scores ``[num_queries, num_candidates] = Q C^T``."""
        return tf.matmul(query_repr, candidate_repr, transpose_b=True)

    def score_candidates(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """Per-query candidate lists: ``[B, D]`` x ``[B, C, D]`` -> ``[B, C]``."""
        return tf.einsum("bd,bcd->bc", query_repr, candidate_repr)

    def score_pairs(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """Row-aligned pairs: ``[B, D]`` x ``[B, D]`` -> ``[B]``."""
        return self.score_candidates(query_repr, candidate_repr[:, None, :])[:, 0]

    def catalog_scorer(
        self, candidate_repr: tf.Tensor, num_queries: int | None = None
    ) -> tuple[Callable[[tf.Tensor], tf.Tensor], int]:
        """``(score_fn(queries) -> [B, N], floats per (query, item) pair)`` against the whole
        catalog ``candidate_repr``, for full-catalog evaluation (SparCode precomputes per-code
        tables here)."""
        return (lambda queries: self.score(queries, candidate_repr)), self.score_width


class TowerRetriever(Retriever):
    """Any two Keras towers as a dot-product :class:`Retriever`, for tfcs3's evaluation and export.

    Args:
        query_model: maps a dict of query feature tensors to ``[B, d]``.
        candidate_model: maps a dict of candidate feature tensors to ``[N, d]``.
        query_features: the names of the features ``query_model`` reads (in the data's spec).
        candidate_features: the names of the features ``candidate_model`` reads.
        hparams: what an export records about the model (JSON-serializable).

    Example:
        >>> retriever = TowerRetriever(model.user_model, model.item_model, ["user_id"], ["item_id"])
        >>> tfcs3.evaluation.evaluate(retriever, data)            # exact full-catalog metrics
        >>> tfcs3.export.export_model(retriever, data, "exports")  # raw-id SavedModel
    """

    def __init__(
        self,
        query_model: tf_keras.Model,
        candidate_model: tf_keras.Model,
        query_features: Sequence[str],
        candidate_features: Sequence[str],
        hparams: Mapping[str, Any] | None = None,
    ):
        for side, names in (("query_features", query_features), ("candidate_features", candidate_features)):
            if isinstance(names, str) or not names or not all(isinstance(n, str) for n in names):
                raise ValueError(f"{side} must be a non-empty list of feature names, got {names!r}")
        self.query_model, self.candidate_model = query_model, candidate_model
        self._query_features, self._candidate_features = list(query_features), list(candidate_features)
        self.hparams = dict(hparams or {})

    @property
    def query_feature_names(self) -> list[str]:
        return self._query_features

    @property
    def candidate_feature_names(self) -> list[str]:
        return self._candidate_features
