"""Sequence backbones: SASRec and GRU4Rec as dot-product retrievers on the two-tower contract.

For a user with history ``x_1..x_L`` (left-padded item-vocabulary indices, most recent last):

    e(i)  = sum_f E_f[a_f(i)]                          item i's candidate features a_f, summed
    h_t   = Encoder(e(x_1) .. e(x_t))                  causal: SASRec blocks or a GRU
    q_t   = h_t + W p                                  p: the user's profile embeddings (optional)
    s(t, i) = q_t . e(i)

The candidate tower *is* ``e``: one table per candidate feature (the item id's among them), summed,
so the history's input embeddings and the candidates share their tables (tied, as in SASRec). A
dataset's item features (MovieLens genres) add their embeddings to the item id's.

User features join after the encoder: ``profile="features"`` (default) embeds the user's
categorical features other than the user id (MovieLens: gender, age, occupation, zip code) and
adds their projection ``W p`` to every position; ``"all"`` includes the user id, ``"none"`` uses
the history alone (RecBole's models). Amazon data has no user features, so both give the same
model there.

The query representation for retrieval and serving is ``q_L``, the last position's. Training uses
dense supervision (:mod:`tfcs3.data.dense`): every position ``t`` of a training window predicts
the next item ``x_{t+1}``, under the model's ``loss`` (default ``full_softmax``, the SASRec+ /
RecBole recipe, which won on validation against sampled and in-batch softmax). With
``dense=False``, or on rows without the ``next_items`` feature (online learning's stream), only
the last position is trained.

Example:
    >>> data = tfcs3.data.load_prepared("ml-100k")
    >>> model = tfcs3.models.build_model("sasrec", data, loss="full_softmax")
    >>> tfcs3.training.train(model, data, epochs=30)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.data.dense import NEXT_ITEMS, dense_split
from tfcs3.data.features import CATEGORICAL, PAD, FeatureSpec
from tfcs3.data.pipeline import make_length_bucketed_dataset
from tfcs3.data.protocols import Split
from tfcs3.layers import FeatureEmbedding
from tfcs3.layers.causal_transformer import CausalTransformerEncoder
from tfcs3.layers.gru_encoder import GRUSequenceEncoder
from tfcs3.models.tower import FeatureTower, embed_items
from tfcs3.models.two_tower import TwoTowerModel

ENCODERS = ("sasrec", "gru4rec")
PROFILES = ("none", "features", "all")


def _sum_features(x: tf.Tensor, num_features: int, dim: int) -> tf.Tensor:
    """``[..., F * D] -> [..., D]``: the sum of ``F`` concatenated embeddings."""
    shape = tf.concat([tf.shape(x)[:-1], [num_features, dim]], axis=0)
    return tf.reduce_sum(tf.reshape(x, shape), axis=-2)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class ItemEmbeddingTower(FeatureTower):
    """``e(i) = sum_f E_f[a_f(i)]``: the sum of an item's feature embeddings (no MLP), so that the
    same function embeds the history's items and the candidates.

    Args:
        features: :class:`FeatureEmbedding` configs of the candidate features.
        embedding_dim: ``D``.
        embeddings_regularizer: L2 strength on the tables.
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        embeddings_regularizer: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(features, embedding_dim, embeddings_regularizer, config={}, **kwargs)
        self.embedding_dim = int(embedding_dim)

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        return _sum_features(self.embedding(inputs), len(self.feature_names), self.embedding_dim)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class SequenceQueryTower(tf_keras.Model):
    """The query tower of the sequence backbones: ``q = Encoder(e(history))_L + W p``.

    Args:
        history: name of the history (sequence) feature.
        profile_features: :class:`FeatureEmbedding` configs of the profile features joined after
            the encoder (may be empty).
        embedding_dim: ``D``.
        item_embedding: the candidate tower's :class:`FeatureEmbedding` (the history's tables).
        item_table: item-vocabulary index -> candidate feature ids (variables).
        encoder: a causal sequence encoder, ``(x [B, L, D], valid [B, L]) -> [B, L, D]``.
        embeddings_regularizer: L2 strength on the profile tables.

    Input shape:
        dict with ``history`` ``[B, L]`` and the profile features ``[B]``.
    Output shape:
        ``[B, D]`` (``call``), ``[B, L, D]`` (:meth:`sequence_outputs`).
    """

    def __init__(
        self,
        history: str,
        profile_features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        item_embedding: FeatureEmbedding,
        item_table: Mapping[str, tf.Variable],
        encoder: tf_keras.layers.Layer,
        embeddings_regularizer: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._config = dict(
            history=history,
            profile_features=[dict(f) for f in profile_features],
            embedding_dim=int(embedding_dim),
            embeddings_regularizer=float(embeddings_regularizer),
        )
        self.history_name = history
        self.embedding_dim = int(embedding_dim)
        self.item_embedding = item_embedding
        self.item_table = dict(item_table)
        self.encoder = encoder
        self.profile = None
        if profile_features:
            self.profile = FeatureEmbedding(profile_features, embedding_dim, embeddings_regularizer, name="profile")
            self.profile_projection = tf_keras.layers.Dense(embedding_dim, name="profile_projection")
        self.feature_names = [history, *(f["name"] for f in profile_features)]

    @property
    def history_embedding_key(self) -> str:
        """The input key that, when present, supplies the history's item embeddings ``[B, L, D]``
        (an export gathers them from :meth:`history_embedding_table`)."""
        return f"{self.name}/history_embeddings"

    def _items(self, ids: tf.Tensor) -> tf.Tensor:
        return _sum_features(
            embed_items(self.item_embedding, self.item_table, ids),
            len(self.item_embedding.features),
            self.embedding_dim,
        )

    def history_embedding_table(self) -> tf.Tensor:
        """``e(i)`` for every item-vocabulary index, ``[V, D]``."""
        return self._items(tf.range(tf.shape(next(iter(self.item_table.values())))[0]))

    def serving_tables(self) -> dict[str, tuple[tf.Tensor, str]]:
        """Per-id inputs an export precomputes: the history's item embeddings."""
        return {self.history_embedding_key: (self.history_embedding_table(), self.history_name)}

    def sequence_outputs(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """``q_t`` for every position, ``[B, L, D]``."""
        ids = tf.cast(inputs[self.history_name], tf.int32)
        if ids.shape.rank is not None and ids.shape.rank != 2:
            raise ValueError(f"{self.name}: {self.history_name!r} must be [batch, length], got shape {ids.shape}")
        x = inputs.get(self.history_embedding_key)
        # Leading columns that are padding in every row change no real position's output (keys
        # are masked, positions count from the right): the encoder runs on the rest only.
        valid = ids != PAD
        length = tf.shape(ids)[1]
        start = length - tf.reduce_max(tf.reduce_sum(tf.cast(valid, tf.int32), axis=1))
        start = tf.minimum(start, length - 1)
        x = self._items(ids[:, start:]) if x is None else tf.convert_to_tensor(x)[:, start:]
        h = self.encoder((x, valid[:, start:]), training=training)
        h = tf.pad(h, [[0, 0], [start, 0], [0, 0]])
        if self.profile is not None:
            h += self.profile_projection(self.profile(inputs))[:, None, :]
        return h

    def call(
        self, inputs: Mapping[str, tf.Tensor], training: bool | None = None, all_positions: bool = False
    ) -> tf.Tensor:
        """``q_L`` ``[B, D]``; with ``all_positions``, :meth:`sequence_outputs` ``[B, L, D]``."""
        outputs = self.sequence_outputs(inputs, training=training)
        return outputs if all_positions else outputs[:, -1, :]

    def get_config(self) -> dict[str, Any]:
        return dict(self._config)


class SequentialModel(TwoTowerModel):
    """SASRec / GRU4Rec on the two-tower contract (see the module docstring). Retrieval only.

    Args:
        spec: the dataset's features (one history sequence).
        item_attributes: :func:`~tfcs3.models.tower.item_attribute_table` of the data.
        encoder: ``"sasrec"`` (Kang & McAuley, ICDM 2018) or ``"gru4rec"`` (Hidasi et al., ICLR
            2016).
        num_blocks, num_heads: SASRec's self-attention blocks and heads.
        attention_dropout: SASRec's dropout on attention weights (default: ``dropout``).
        profile: which user features join (``"none"``, ``"features"``, ``"all"``).
        dense: train every position on its next item (else the last position only).
        hidden_units: its first entry is SASRec's feed-forward width or GRU4Rec's GRU width
            (default 256 and 128, RecBole's).
        dropout: SASRec's hidden dropout or GRU4Rec's embedding dropout (default 0.5 and 0.3).
        **kwargs: :class:`TwoTowerModel` arguments (``embedding_dim``, ``loss`` ...); ``loss``
            defaults to ``"full_softmax"`` here.

    Example:
        >>> model = tfcs3.models.build_model("sasrec", data, loss="full_softmax")
        >>> tfcs3.training.train(model, data, learning_rate=3e-3, batch_size=128)
    """

    def __init__(
        self,
        spec: FeatureSpec,
        item_attributes: Mapping[str, np.ndarray],
        encoder: str = "sasrec",
        num_blocks: int = 2,
        num_heads: int = 2,
        attention_dropout: float | None = None,
        profile: str = "features",
        dense: bool = True,
        hidden_units: Sequence[int] | None = None,
        dropout: float | None = None,
        **kwargs: Any,
    ):
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
        if kwargs.setdefault("mode", "retrieval") != "retrieval":
            raise ValueError(f"{encoder} is a retrieval model; got mode={kwargs['mode']!r}")
        kwargs["tower"] = "youtubednn"  # the query side reads the history
        # The full softmax is the sequence backbones' default: it beat sampled (256 uniform) and
        # in-batch softmax on validation (BENCHMARKS.md, "Competitive retrieval").
        kwargs.setdefault("loss", "full_softmax")
        if len(spec.sequence_features) != 1:
            raise ValueError(f"{encoder} needs exactly one history feature, got {len(spec.sequence_features)}")
        hidden_units = list(hidden_units or ([256] if encoder == "sasrec" else [128]))
        dropout = (0.5 if encoder == "sasrec" else 0.3) if dropout is None else float(dropout)
        self._sequence_args: dict[str, Any] = dict(
            encoder=encoder,
            num_blocks=int(num_blocks),
            num_heads=int(num_heads),
            attention_dropout=dropout if attention_dropout is None else float(attention_dropout),
            profile=profile,
        )
        super().__init__(spec, hidden_units=hidden_units, dropout=dropout, item_attributes=item_attributes, **kwargs)
        self.hparams.update(self._sequence_args, dense=bool(dense))
        self.candidate_vectors(tf.constant([PAD]))  # the shared item tables belong to the candidate tower

    def build_towers(
        self,
        query_features: list[dict[str, Any]],
        candidate_features: list[dict[str, Any]],
        query_args: dict[str, Any],
        candidate_args: dict[str, Any],
    ) -> tuple[tf_keras.Model, tf_keras.Model]:
        a = self._sequence_args
        dim = int(query_args["embedding_dim"])
        reg = float(query_args.get("embeddings_regularizer", 0.0))
        items = ItemEmbeddingTower(candidate_features, dim, reg, name="candidate_tower")
        history = self.spec.sequence_features[0]
        profile = [
            f
            for f in query_features
            if f["kind"] == CATEGORICAL
            and (a["profile"] == "all" or (a["profile"] == "features" and f["name"] != self.spec.user_id))
        ]
        width = int(query_args["hidden_units"][0])
        encoder: tf_keras.layers.Layer
        if a["encoder"] == "sasrec":
            encoder = CausalTransformerEncoder(
                history.max_len,
                a["num_blocks"],
                a["num_heads"],
                width,
                query_args["dropout"],
                a["attention_dropout"],
                name="sasrec",
            )
        else:
            encoder = GRUSequenceEncoder(width, query_args["dropout"], name="gru4rec")
        profile = profile if a["profile"] != "none" else []
        users = SequenceQueryTower(
            history.name, profile, dim, items.embedding, self.item_table, encoder, reg, name="query_tower"
        )
        return users, items

    def training_examples(self, split: Split) -> Split:
        """One row per window of each user's training sequence, with the next item of every
        position (:func:`~tfcs3.data.dense.dense_split`), under dense supervision."""
        if not self.hparams["dense"]:
            return split
        return dense_split(split, self.spec.sequence_features[0].name, self.spec.item_id)

    def training_dataset(self, split: Split, batch_size: int, seed: int, drop_remainder: bool) -> tf.data.Dataset:
        """:meth:`training_examples` shuffled, in batches of similar history length
        (:func:`~tfcs3.data.pipeline.make_length_bucketed_dataset`: the tower skips the columns a
        whole batch pads)."""
        examples = self.training_examples(split)
        history = self.spec.sequence_features[0].name
        return make_length_bucketed_dataset(examples, history, batch_size, seed, drop_remainder)

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        h = self.query_model(features, training=training, all_positions=True)
        sampled = self.loss_name == "sampled_softmax"
        if NEXT_ITEMS in features:
            following = tf.cast(features[NEXT_ITEMS], tf.int32)
            valid = following != PAD
            q = tf.boolean_mask(h, valid)
            item_ids = tf.boolean_mask(following, valid)
            rows = tf.boolean_mask(tf.broadcast_to(tf.range(tf.shape(h)[0])[:, None], tf.shape(valid)), valid)
            known = tf.gather(tf.concat([self.known_items(features), following], axis=1), rows) if sampled else None
        else:
            q = h[:, -1, :]
            item_ids = tf.cast(features[self.spec.item_id], tf.int32)
            known = self.known_items(features) if sampled else None
        c = self.candidate_vectors(item_ids, training=training)
        return self.retrieval_loss(q, c, item_ids, known)
