"""Hashed user x item cross-feature embeddings (used by the CMS ranker)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tensorflow as tf
import tf_keras

from tfcs3.data.features import CATEGORICAL, MULTI
from tfcs3.layers.masked_mean import MaskedMeanPooling


def hashed_cross_ids(
    query_ids: tf.Tensor, candidate_ids: tf.Tensor, candidate_vocab_size: int, num_buckets: int
) -> tf.Tensor:
    """Bucket of each (query value, candidate value) pair: ``(a * |V_b| + b) mod num_buckets``.

    Args:
        query_ids: ``[batch]`` indices of the query-side categorical feature.
        candidate_ids: ``[batch]`` or ``[batch, len]`` indices of the candidate-side feature.
        candidate_vocab_size: ``|V_b|``, the candidate feature's vocabulary size (with PAD, OOV).
        num_buckets: number of hash buckets.

    Returns:
        int64 buckets with the shape of ``candidate_ids``.
    """
    a = tf.cast(query_ids, tf.int64)
    b = tf.cast(candidate_ids, tf.int64)
    if b.shape.rank == 2:
        a = a[:, None]
    return tf.math.floormod(a * int(candidate_vocab_size) + b, int(num_buckets))


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class HashedCrossEmbedding(tf_keras.layers.Layer):
    """Embedding of a hashed (query feature, candidate feature) value pair.

    ``e = E[(x_p * |V_q| + x_q) mod num_buckets]``; for a multi-valued candidate feature, the mean
    of that over its non-padding entries (all padding gives zeros). ``E`` has
    ``min(num_buckets, |V_p| * |V_q|)`` rows, so a product that fits gets no collisions.

    Args:
        query_feature: name of the query-side categorical feature ``p``.
        candidate_feature: name of the candidate-side feature ``q``.
        candidate_kind: ``"categorical"`` or ``"multi"``.
        query_vocab_size: ``|V_p|``.
        candidate_vocab_size: ``|V_q|``.
        num_buckets: hash buckets.
        embedding_dim: width of the embedding.

    Input shape:
        dict with ``query_feature`` ``[batch]`` and ``candidate_feature`` ``[batch]`` or
        ``[batch, len]``.
    Output shape:
        ``[batch, embedding_dim]``.

    Example:
        >>> layer = HashedCrossEmbedding("segment", "genre", "multi", 5, 7, 101, 8)
        >>> layer({"segment": tf.constant([2, 3]), "genre": tf.constant([[2, 4], [3, 0]])}).shape
        TensorShape([2, 8])
    """

    def __init__(
        self,
        query_feature: str,
        candidate_feature: str,
        candidate_kind: str,
        query_vocab_size: int,
        candidate_vocab_size: int,
        num_buckets: int,
        embedding_dim: int,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if candidate_kind not in (CATEGORICAL, MULTI):
            raise ValueError(f"candidate_kind must be {CATEGORICAL!r} or {MULTI!r}, got {candidate_kind!r}")
        if num_buckets < 1:
            raise ValueError(f"num_buckets must be >= 1, got {num_buckets}")
        self.query_feature = query_feature
        self.candidate_feature = candidate_feature
        self.candidate_kind = candidate_kind
        self.query_vocab_size = int(query_vocab_size)
        self.candidate_vocab_size = int(candidate_vocab_size)
        self.num_buckets = int(num_buckets)
        self.embedding_dim = int(embedding_dim)
        rows = min(self.num_buckets, self.query_vocab_size * self.candidate_vocab_size)
        self.table = tf_keras.layers.Embedding(rows, self.embedding_dim, name="table")
        self.pool = MaskedMeanPooling()

    def buckets(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """The bucket ids of a batch, ``[batch]`` or ``[batch, len]``."""
        for name in (self.query_feature, self.candidate_feature):
            if name not in inputs:
                raise ValueError(f"{self.name}: missing input feature {name!r}; got {sorted(inputs)}")
        return hashed_cross_ids(
            inputs[self.query_feature], inputs[self.candidate_feature], self.candidate_vocab_size, self.num_buckets
        )

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        emb = self.table(self.buckets(inputs))
        if self.candidate_kind == MULTI:
            return self.pool((emb, inputs[self.candidate_feature]))
        return emb

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            query_feature=self.query_feature,
            candidate_feature=self.candidate_feature,
            candidate_kind=self.candidate_kind,
            query_vocab_size=self.query_vocab_size,
            candidate_vocab_size=self.candidate_vocab_size,
            num_buckets=self.num_buckets,
            embedding_dim=self.embedding_dim,
        )
        return config
