"""Sequence backbones: SASRec and GRU4Rec as dot-product retrievers on the two-tower contract.

For a user with history ``x_1..x_L`` (left-padded item-vocabulary indices, most recent last):

    e(i)  = sum_f E_f[a_f(i)]                          item i's candidate features a_f, summed
    h_t   = Encoder(e(x_1) .. e(x_t))                  causal: SASRec blocks or a GRU
    q_t   = h_t + W p                                  p: the user's profile embeddings (optional)
    s(t, i) = q_t . e(i)

The candidate tower *is* ``e``: one table per candidate feature (the item id's among them), summed,
so the history's input embeddings and the candidates share their tables (tied, as in SASRec). A
dataset's item features (MovieLens genres) add their embeddings to the item id's. A mechanism may
add per-id :class:`SideVectors` to ``q_t`` and to the candidate (DAT's vectors, CS3's memories);
the history keeps reading ``e``.

User features join after the encoder: ``profile="features"`` (default) embeds the user's
categorical features other than the user id (MovieLens: gender, age, occupation, zip code) and
adds their projection ``W p`` to every position; ``"all"`` includes the user id, ``"none"`` uses
the history alone (RecBole's models). Amazon data has no user features other than the id, so
``"features"`` and ``"none"`` give the same model there (``"all"`` adds the user id).

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
from tfcs3.data.prepared import Split
from tfcs3.layers import FeatureEmbedding
from tfcs3.layers.causal_transformer import CausalTransformerEncoder
from tfcs3.layers.dual_augmented import AdaptiveMimicVector
from tfcs3.layers.gru_encoder import GRUSequenceEncoder
from tfcs3.models.tower import FeatureTower, MemoryTower, embed_items
from tfcs3.models.two_tower import TwoTowerModel

ENCODERS = ("sasrec", "gru4rec")
PROFILES = ("none", "features", "all")


def _sum_features(x: tf.Tensor, num_features: int, dim: int) -> tf.Tensor:
    """``[..., F * D] -> [..., D]``: the sum of ``F`` concatenated embeddings."""
    shape = tf.concat([tf.shape(x)[:-1], [num_features, dim]], axis=0)
    return tf.reduce_sum(tf.reshape(x, shape), axis=-2)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class SideVectors(tf_keras.layers.Layer):
    """Per-id vectors joined to a sequence tower's output, ``y = x + sum_k W_k v_k``: the tower's
    memory reads (CS3's CTS / CMS) and an adaptive-mimic vector ``a[id]`` (DAT). A vector
    ``[B, d_k]`` is added to every position of an ``[B, L, D]`` output; a per-position one
    ``[B, L, d_k]`` (a dense-supervision batch's memory reads) position by position.

    This is how the towers that have no dense stack to feed (the sequence backbones) take the
    inputs that DAT and CS3 concatenate to a tower's input: ``W [x; v] = W_x x + W_v v``. The
    memory reads' ``W_k`` start at zero (the tower starts as its backbone).

    Args:
        width: ``D``.
        num_vectors: how many memory reads precede the augmented vector.
        augment_feature: the id feature selecting the augmented vector (``None``: none).
        augment_input_dim: that feature's vocabulary size.

    Example:
        >>> side = SideVectors(64, num_vectors=1)
        >>> side.join(tf.zeros([4, 50, 64]), side.vectors({}, [tf.zeros([4, 32])])).shape  # [4, 50, 64]
    """

    def __init__(
        self,
        width: int,
        num_vectors: int = 0,
        augment_feature: str | None = None,
        augment_input_dim: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if augment_feature is not None and augment_input_dim < 1:
            raise ValueError(f"augment_input_dim must be >= 1 with an augment_feature, got {augment_input_dim}")
        self.width, self.num_vectors = int(width), int(num_vectors)
        self.augment_feature, self.augment_input_dim = augment_feature, int(augment_input_dim)
        self.augment = None
        if augment_feature is not None:
            self.augment = AdaptiveMimicVector(augment_input_dim, width, name="augment")
        count = self.num_vectors + (self.augment is not None)
        # A memory's projection starts at zero and has no bias (a constant added to the query would
        # be an item prior the backbone lacks), so the tower starts as its backbone: the first
        # replay fills the memories with the outputs of untrained towers, which a random projection
        # would add as noise of the backbone's own scale (CS3 on SASRec then learned from 0.032
        # validation NDCG@10 after one epoch, the backbone from 0.052). DAT's augmented vector is
        # a learned embedding and keeps the default initialisation.
        self.projections = [
            tf_keras.layers.Dense(
                width,
                use_bias=k >= self.num_vectors,
                kernel_initializer="zeros" if k < self.num_vectors else "glorot_uniform",
                name=f"side_projection_{k}",
            )
            for k in range(count)
        ]

    def augmented(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """DAT's augmented vectors ``a[id]`` of a batch, ``[B, D]``."""
        if self.augment is None or self.augment_feature is None:
            raise ValueError(f"{self.name} has no augmented vector")
        return self.augment(inputs[self.augment_feature])

    def vectors(self, inputs: Mapping[str, tf.Tensor], memory_reads: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """The memory reads, then the augmented vector (if any)."""
        if len(memory_reads) != self.num_vectors:
            raise ValueError(f"{self.name} expects {self.num_vectors} memory reads, got {len(memory_reads)}")
        return [*memory_reads, *([self.augmented(inputs)] if self.augment is not None else [])]

    def join(self, x: tf.Tensor, vectors: Sequence[tf.Tensor]) -> tf.Tensor:
        """``x + sum_k W_k v_k`` (see the class docstring)."""
        for vector, projection in zip(vectors, self.projections, strict=True):
            projected = projection(vector)
            if x.shape.rank == 3 and projected.shape.rank == 2:
                projected = projected[:, None, :]
            x = x + projected
        return x

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            width=self.width,
            num_vectors=self.num_vectors,
            augment_feature=self.augment_feature,
            augment_input_dim=self.augment_input_dim,
        )
        return config


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class ItemEmbeddingTower(FeatureTower):
    """``c(i) = e(i) + sum_k W_k v_k(i)`` with ``e(i) = sum_f E_f[a_f(i)]``: the sum of an item's
    feature embeddings (no MLP), so that the same ``e`` embeds the history's items, plus the
    item's :class:`SideVectors` (CS3's item memories, DAT's item vector; none by default), which
    the history does not read.

    Args:
        features: :class:`FeatureEmbedding` configs of the candidate features.
        embedding_dim: ``D``.
        embeddings_regularizer: L2 strength on the tables.
        memories: per-item memories (see :class:`~tfcs3.models.tower.MemoryTower`).
        augment_feature, augment_input_dim: DAT's augmented vector (see :class:`SideVectors`).
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        embeddings_regularizer: float = 0.0,
        augment_feature: str | None = None,
        augment_input_dim: int = 0,
        **kwargs: Any,
    ):
        config = dict(augment_feature=augment_feature, augment_input_dim=int(augment_input_dim))
        super().__init__(features, embedding_dim, embeddings_regularizer, config=config, **kwargs)
        self.embedding_dim = int(embedding_dim)
        self.side = SideVectors(embedding_dim, len(self.memories), augment_feature, augment_input_dim, name="side")

    def augmented(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """DAT's item vectors ``a_v`` of a batch."""
        return self.side.augmented(inputs)

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        e = _sum_features(self.embedding(inputs), len(self.feature_names), self.embedding_dim)
        return self.side.join(e, self.side.vectors(inputs, self.memory_vectors(inputs)))


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class SequenceQueryTower(MemoryTower):
    """The query tower of the sequence backbones: ``q = Encoder(e(history))_L + W p + sum_k W_k
    v_k(u)``, the last term the user's :class:`SideVectors` (CS3's user memories, DAT's user
    vector; none by default).

    Args:
        history: name of the history (sequence) feature.
        profile_features: :class:`FeatureEmbedding` configs of the profile features joined after
            the encoder (may be empty).
        embedding_dim: ``D``.
        item_embedding: the candidate tower's :class:`FeatureEmbedding` (the history's tables).
        item_table: item-vocabulary index -> candidate feature ids (variables).
        encoder: a causal sequence encoder, ``(x [B, L, D], valid [B, L]) -> [B, L, D]``.
        embeddings_regularizer: L2 strength on the profile tables.
        user_id: the user id feature, read when memories or an augmented vector need it.
        memories: per-user memories (see :class:`~tfcs3.models.tower.MemoryTower`), keyed by
            ``user_id``.
        augment_input_dim: the user vocabulary size for DAT's augmented vector (0: none).

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
        user_id: str | None = None,
        memories: Sequence[Mapping[str, Any]] = (),
        augment_input_dim: int = 0,
        **kwargs: Any,
    ):
        names = [history, *(f["name"] for f in profile_features)]
        if memories or augment_input_dim:
            if user_id is None:
                raise ValueError("user memories and augmented vectors need the user_id feature")
            names += [] if user_id in names else [user_id]
        super().__init__(names, memories, **kwargs)
        self._config = dict(
            history=history,
            profile_features=[dict(f) for f in profile_features],
            embedding_dim=int(embedding_dim),
            embeddings_regularizer=float(embeddings_regularizer),
            user_id=user_id,
            memories=[dict(m) for m in memories],
            augment_input_dim=int(augment_input_dim),
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
        augment_feature = user_id if augment_input_dim else None
        self.side = SideVectors(embedding_dim, len(self.memories), augment_feature, augment_input_dim, name="side")

    def augmented(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """DAT's user vectors ``a_u`` of a batch."""
        return self.side.augmented(inputs)

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
        """Per-id inputs an export precomputes: the history's item embeddings and the normalised
        memories."""
        return {
            **super().serving_tables(),
            self.history_embedding_key: (self.history_embedding_table(), self.history_name),
        }

    @property
    def base_key(self) -> str:
        """The input key that, when present, supplies :meth:`base_outputs` of the last position
        ``[B, D]`` already computed (CS3's replay takes them from the training windows)."""
        return f"{self.name}/base_outputs"

    def base_outputs(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """``Encoder(e(history))_t + W p`` for every position, ``[B, L, D]``: the query before its
        side vectors."""
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

    def sequence_outputs(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """``q_t`` for every position, ``[B, L, D]`` (``[B, 1, D]`` from :attr:`base_key`)."""
        if self.base_key in inputs:
            h = tf.convert_to_tensor(inputs[self.base_key])[:, None, :]
        else:
            h = self.base_outputs(inputs, training=training)
        return self.side.join(h, self.side.vectors(inputs, self.memory_vectors(inputs)))

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
        loss: the retrieval loss; the full softmax by default here, as it beat sampled (256
            uniform) and in-batch softmax on validation (BENCHMARKS.md, "Competitive retrieval").
        **kwargs: :class:`TwoTowerModel` arguments (``embedding_dim``, ``temperature`` ...).

    Example:
        >>> model = tfcs3.models.build_model("sasrec", data, loss="full_softmax")
        >>> tfcs3.training.train(model, data, learning_rate=3e-3, batch_size=128)
    """

    excluded_hparams = frozenset({"tower"})  # the query side always reads the history

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
        loss: str = "full_softmax",
        **kwargs: Any,
    ):
        if encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
        if kwargs.setdefault("mode", "retrieval") != "retrieval":
            raise ValueError(f"{encoder} is a retrieval model; got mode={kwargs['mode']!r}")
        kwargs["tower"] = "youtubednn"  # the query side reads the history
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
        super().__init__(
            spec, hidden_units=hidden_units, dropout=dropout, item_attributes=item_attributes, loss=loss, **kwargs
        )
        self.hparams.update(self._sequence_args, dense=bool(dense))
        self.candidate_vectors(tf.constant([PAD]))  # the shared item tables belong to the candidate tower

    def build_towers(
        self,
        query_features: list[dict[str, Any]],
        candidate_features: list[dict[str, Any]],
        query_args: dict[str, Any],
        candidate_args: dict[str, Any],
    ) -> tuple[tf_keras.Model, tf_keras.Model]:
        """The item tower (feature embeddings summed) and the sequence query tower. From
        :meth:`tower_options` they take ``memories`` (CS3), ``cycles`` (CS3's CAS: the encoder's
        feed-forward layers; the item side has no dense layer) and ``augment`` (DAT's vectors)."""
        a = self._sequence_args
        spec = self.spec
        dim = int(query_args["embedding_dim"])
        reg = float(query_args.get("embeddings_regularizer", 0.0))
        augment = bool(query_args.get("augment", False))
        items = ItemEmbeddingTower(
            candidate_features,
            dim,
            reg,
            augment_feature=spec.item_id if augment else None,
            augment_input_dim=len(spec.item_vocabulary) if augment else 0,
            memories=candidate_args.get("memories", ()),
            name="candidate_tower",
        )
        history = spec.sequence_features[0]
        profile = [
            f
            for f in query_features
            if f["kind"] == CATEGORICAL
            and (a["profile"] == "all" or (a["profile"] == "features" and f["name"] != spec.user_id))
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
                cycles=int(query_args.get("cycles", 0)),
                name="sasrec",
            )
        else:
            if query_args.get("cycles", 0):
                raise ValueError("gru4rec has no feed-forward layers for Cycle-Adaptive blocks (cas='none' there)")
            encoder = GRUSequenceEncoder(width, query_args["dropout"], name="gru4rec")
        profile = profile if a["profile"] != "none" else []
        user_vocabulary = spec.feature(spec.user_id).vocabulary if spec.user_id in spec.names else None
        users = SequenceQueryTower(
            history.name,
            profile,
            dim,
            items.embedding,
            self.item_table,
            encoder,
            reg,
            user_id=spec.user_id if user_vocabulary is not None else None,
            memories=query_args.get("memories", ()),
            augment_input_dim=len(user_vocabulary) if augment and user_vocabulary is not None else 0,
            name="query_tower",
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
        """The retrieval loss of every supervised position (:data:`NEXT_ITEMS`; else of the last
        one) plus the mechanism's :meth:`auxiliary_loss` on those (query, next item) pairs, whose
        features are :meth:`position_features`."""
        h = self.query_model(features, training=training, all_positions=True)
        if NEXT_ITEMS in features:
            following = tf.cast(features[NEXT_ITEMS], tf.int32)
            valid = following != PAD
            q = tf.boolean_mask(h, valid)
            rows = tf.boolean_mask(tf.broadcast_to(tf.range(tf.shape(h)[0])[:, None], tf.shape(valid)), valid)
            positions = self.position_features(features, valid, rows, tf.boolean_mask(following, valid))
        else:
            q = h[:, -1, :]
            positions = dict(features)
            rows = following = None
        item_ids = tf.cast(positions[self.spec.item_id], tf.int32)
        c = self.candidate_model(positions, training=training)
        known = None
        if self.loss_name == "sampled_softmax" or self.drops_known_items:
            known = self.position_known_items(features, rows, following)
        task = self.retrieval_loss(q, c, item_ids, known)
        positive = tf.ones_like(item_ids, tf.float32)
        return task + tf.reduce_sum(positive) * self.auxiliary_loss(positions, q, c, positive)

    def position_known_items(
        self, features: Mapping[str, tf.Tensor], rows: tf.Tensor | None, following: tf.Tensor | None
    ) -> tf.Tensor:
        """``[R, K]`` items each supervised position knows as positives (0 pads), left out of its
        negatives (``sampled_softmax``, :attr:`drops_known_items`): here its window's items, the
        history and the next items (``rows`` ``None``: the last position of each row, its history
        and target)."""
        if rows is None or following is None:
            return self.known_items(features)
        return tf.gather(tf.concat([self.known_items(features), following], axis=1), rows)

    def position_features(
        self, features: Mapping[str, tf.Tensor], valid: tf.Tensor, rows: tf.Tensor, item_ids: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """One row per supervised position (``valid`` ``[B, L]``, in ``tf.boolean_mask`` order):
        the window's per-row features (user id, profile) repeated (``rows``: each position's
        window), its per-position features ``[B, L, ...]`` (memory reads) taken at the position,
        and the candidate features of its next item ``item_ids``."""
        out = {}
        towers = (self.query_model, self.candidate_model)
        memory_inputs = {t.memory_input_key(m) for t in towers if isinstance(t, MemoryTower) for m in t.memories}
        for name, value in features.items():
            value = tf.convert_to_tensor(value)
            if name in memory_inputs and value.shape.rank != 3:
                # One read per window would be the read of its last row: it holds the window's
                # earlier labels. Per-position reads come from dense_split(per_position=...).
                raise ValueError(f"{name!r} must hold one memory read per position [B, L, d], got {value.shape}")
            if name == NEXT_ITEMS or name in self.item_table or value.shape.rank is None:
                continue
            if value.shape.rank == 1:
                out[name] = tf.gather(value, rows)
            elif value.shape.rank >= 3:
                out[name] = tf.boolean_mask(value, valid)
        out.update({name: tf.gather(table, item_ids) for name, table in self.item_table.items()})
        return out
