"""A tower: feature embeddings followed by an MLP, as a Keras model over a feature dictionary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf
import tf_keras

from tfcs3.data.features import Feature
from tfcs3.layers import MLP, FeatureEmbedding


def feature_configs(features: Sequence[Feature], item_vocab_size: int) -> list[dict[str, Any]]:
    """Embedding configs for :class:`FeatureEmbedding`.

    A sequence feature holds item ids, so its table has ``item_vocab_size`` rows.
    """
    return [
        {
            "name": f.name,
            "kind": f.kind,
            "input_dim": item_vocab_size if f.vocabulary is None else len(f.vocabulary),
        }
        for f in features
    ]


class FeatureTower(tf_keras.Model):
    """Base of every tower: a :class:`FeatureEmbedding` over named features, plus the constructor
    arguments kept for ``get_config`` (``config`` holds the subclass's own arguments)."""

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        embeddings_regularizer: float = 0.0,
        *,
        config: dict[str, Any],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            features=[dict(f) for f in features],
            embedding_dim=embedding_dim,
            embeddings_regularizer=embeddings_regularizer,
            **config,
        )
        self.feature_names = [f["name"] for f in features]
        self.embedding = FeatureEmbedding(features, embedding_dim, embeddings_regularizer)

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class Tower(FeatureTower):
    """``y = MLP(concat_f embed_f(x_f))``: maps one side's feature dictionary to a vector.

    Args:
        features: :class:`FeatureEmbedding` configs (name, kind, input_dim).
        embedding_dim: width of each feature embedding.
        hidden_units: hidden widths of the MLP.
        output_dim: width of the tower output.
        dropout: dropout after hidden layers.
        l2_normalize: L2-normalise the output.
        embeddings_regularizer: L2 strength on embedding tables.
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        hidden_units: Sequence[int],
        output_dim: int,
        dropout: float = 0.0,
        l2_normalize: bool = False,
        embeddings_regularizer: float = 0.0,
        **kwargs: Any,
    ):
        config = dict(
            hidden_units=list(hidden_units), output_dim=output_dim, dropout=dropout, l2_normalize=l2_normalize
        )
        super().__init__(features, embedding_dim, embeddings_regularizer, config=config, **kwargs)
        self.mlp = MLP(hidden_units, output_dim, dropout, l2_normalize)

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        return self.mlp(self.embedding(inputs), training=training)
