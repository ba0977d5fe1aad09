"""Embeds a tower's raw-index features and concatenates them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf
import tf_keras

from tfcs3.layers.masked_mean import MaskedMeanPooling

_KINDS = ("categorical", "multi", "sequence")


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class FeatureEmbedding(tf_keras.layers.Layer):
    """One embedding table per feature; multi-valued features are mean-pooled over non-padding ids.

    ``out = concat_f e_f`` where ``e_f = E_f[x_f]`` for a categorical feature and
    ``e_f = mean_{t: x_f[t] != 0} E_f[x_f[t]]`` for a multi-valued or sequence feature.

    Args:
        features: one dict per feature with ``name``, ``kind`` (``categorical``, ``multi`` or
            ``sequence``) and ``input_dim`` (vocabulary size including padding and OOV).
        embedding_dim: width of every feature embedding.
        embeddings_regularizer: optional L2 strength on the embedding tables.

    Input shape:
        dict name -> int tensor, ``[batch]`` (categorical) or ``[batch, len]`` (multi, sequence).
    Output shape:
        ``[batch, len(features) * embedding_dim]``.

    Example:
        >>> layer = FeatureEmbedding([{"name": "user_id", "kind": "categorical", "input_dim": 10}], 8)
        >>> layer({"user_id": tf.constant([2, 5])}).shape  # TensorShape([2, 8])
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        embeddings_regularizer: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not features:
            raise ValueError("FeatureEmbedding needs at least one feature")
        self.features = [dict(f) for f in features]
        for f in self.features:
            if f["kind"] not in _KINDS:
                raise ValueError(f"feature {f['name']!r}: unknown kind {f['kind']!r}")
        self.embedding_dim = int(embedding_dim)
        self.embeddings_regularizer = float(embeddings_regularizer)
        reg = tf_keras.regularizers.l2(self.embeddings_regularizer) if self.embeddings_regularizer else None
        self.tables = {
            f["name"]: tf_keras.layers.Embedding(
                int(f["input_dim"]), self.embedding_dim, embeddings_regularizer=reg, name=f"{f['name']}_embedding"
            )
            for f in self.features
        }
        self.pool = MaskedMeanPooling()

    def call(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        parts = []
        for f in self.features:
            name = f["name"]
            if name not in inputs:
                raise ValueError(
                    f"{self.name}: missing input feature {name!r}; got {sorted(inputs)}, "
                    f"expected {[g['name'] for g in self.features]}"
                )
            ids = tf.cast(inputs[name], tf.int32)
            want_rank = 1 if f["kind"] == "categorical" else 2
            if ids.shape.rank is not None and ids.shape.rank != want_rank:
                raise ValueError(
                    f"{self.name}: feature {name!r} ({f['kind']}) must have rank {want_rank}, got shape {ids.shape}"
                )
            emb = self.tables[name](ids)
            parts.append(emb if want_rank == 1 else self.pool((emb, ids)))
        return tf.concat(parts, axis=-1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            features=self.features,
            embedding_dim=self.embedding_dim,
            embeddings_regularizer=self.embeddings_regularizer,
        )
        return config
