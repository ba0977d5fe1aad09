"""FIT: the fully interacted two-tower model for pre-ranking (Meta Query Module + Lightweight
Similarity Scorer).

Xiong et al., "A Learnable Fully Interacted Two-Tower Model for Pre-Ranking System", SIGIR 2025
(arXiv 2509.12948). See :mod:`tfcs3.layers.meta_query`, :mod:`tfcs3.layers.similarity_scorer` and
:mod:`tfcs3.layers.activation_unit` for the equations. Training (pointwise BCE on impressions):

    e_c = [embed_f(item_f)]_f                         the candidate's attribute embeddings  [B, D]
    q   = softmax(e_c Q^T / tau) Q*                   soft meta query (MQM)                 [B, D]
    h   = DIN(q, [e(x_1) .. e(x_L)])                  attention over the user's history     [B, D]
    Z_u = MLP_u([profile; h; q])   -> [H_u, p]        Z_v = MLP_v(e_c) -> [H_v, p]
    logit = LSS(Z_u Z_v^T),   loss = BCE(label, logit)

``tau`` falls linearly from 1 to ``min_temperature`` over the first ``anneal_epochs`` epochs of
examples, then stays there. At inference the query is the hard one, ``Q*[argmax e_c Q^T]``.

Decoupling (the tfcs3 contract). The user tower never sees the real candidate: at serving time it
runs once per hard query, so ``query_model`` returns all ``N`` user representations
``[B, N * H_u * p]``; ``candidate_model`` returns the item heads and the item's hard-query index
``[C, H_v * p + 1]`` (the index as a float in the last column, exact below 2^24), computed once
per item. ``score`` gathers, for each candidate, the user representation of its index and applies
the LSS. Evaluation of the model itself (``call``) computes only the row's own hard query: the same
function, one user pass per row instead of ``N``.

INTERPRETATIONS (the paper's body could not be read):

* ``e_c`` is the candidate tower's own attribute embeddings (shared tables); the history items are
  embedded with the same tables through an item -> attributes table built from the catalog, so
  the meta query, ``e_c`` and the behaviour embeddings share one ``D``-space.
* the meta query is both the DIN target and a user-MLP input; no auxiliary loss.
* ablations: ``use_mqm=False`` pools the history with a masked mean and drops the query (one user
  representation, index 0 for every item); ``use_lss=False`` scores ``sum_h <u_h, v_h> + b``
  (the dot product of the flattened heads) instead of the LSS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.data.features import FeatureSpec
from tfcs3.data.pipeline import LABEL
from tfcs3.data.protocols import PRERANKING
from tfcs3.layers import MLP, FeatureEmbedding, MaskedMeanPooling
from tfcs3.layers.activation_unit import ActivationUnitAttention
from tfcs3.layers.meta_query import MetaQueryModule
from tfcs3.layers.similarity_scorer import LightweightSimilarityScorer, head_similarity
from tfcs3.models import retrieval_loss
from tfcs3.models.tower import BehaviourTower, FeatureTower
from tfcs3.models.two_tower import TwoTowerModel


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class FITItemTower(FeatureTower):
    """``[vec(Z_v); idx]``: item heads ``Z_v = MLP_v(e_c)`` and the item's hard-query index.

    Args:
        features, embedding_dim, hidden_units, dropout, embeddings_regularizer: as for
            :class:`~tfcs3.models.tower.Tower`.
        num_heads: ``H_v``.
        head_dim: ``p``.
        meta: the model's :class:`MetaQueryModule` (``None`` without MQM: index 0 for all).
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        hidden_units: Sequence[int],
        num_heads: int,
        head_dim: int,
        dropout: float = 0.0,
        embeddings_regularizer: float = 0.0,
        meta: MetaQueryModule | None = None,
        **kwargs: Any,
    ):
        config = dict(hidden_units=list(hidden_units), num_heads=num_heads, head_dim=head_dim, dropout=dropout)
        super().__init__(features, embedding_dim, embeddings_regularizer, config=config, **kwargs)
        self.mlp = MLP(hidden_units, num_heads * head_dim, dropout)
        self.meta = meta

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        attributes = self.embedding(inputs)
        heads = self.mlp(attributes, training=training)
        if self.meta is None:
            index = tf.zeros_like(heads[:, :1])
        else:
            index = tf.cast(self.meta.hard_index(attributes), heads.dtype)[:, None]
        return tf.concat([heads, index], axis=-1)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class FITUserTower(BehaviourTower):
    """User heads ``Z_u = MLP_u([profile; DIN(q, history); q])`` for one or more meta queries.

    Called on features alone it returns the representations for every hard query
    ``Q*[0..N-1]``, flattened to ``[B, N * H_u * p]`` (serving and catalog evaluation); with
    ``queries=[B, Nq, D]`` (the soft query in training, one row's hard query) ``[B, Nq * H_u * p]``.

    Args:
        features: :class:`FeatureEmbedding` configs of the query side; the sequence feature is
            the history (item ids), the others form the profile.
        embedding_dim, hidden_units, dropout, embeddings_regularizer: as for
            :class:`~tfcs3.models.tower.Tower`.
        num_heads: ``H_u``.
        head_dim: ``p``.
        attention_units: hidden width of the DIN activation unit.
        item_embedding: the candidate tower's :class:`FeatureEmbedding` (shared tables).
        item_attributes: item-vocabulary index -> candidate feature ids
            (:func:`item_attribute_table`); held as non-trainable variables, exported with the tower.
        meta: the model's :class:`MetaQueryModule` (``None``: masked-mean history, no query).
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        hidden_units: Sequence[int],
        num_heads: int,
        head_dim: int,
        dropout: float = 0.0,
        embeddings_regularizer: float = 0.0,
        attention_units: int = 32,
        item_embedding: FeatureEmbedding | None = None,
        item_attributes: Mapping[str, np.ndarray] | None = None,
        meta: MetaQueryModule | None = None,
        **kwargs: Any,
    ):
        config = dict(
            hidden_units=list(hidden_units),
            num_heads=num_heads,
            head_dim=head_dim,
            dropout=dropout,
            attention_units=attention_units,
        )
        super().__init__(
            features, embedding_dim, embeddings_regularizer, item_embedding, item_attributes, config=config, **kwargs
        )
        self.meta = meta
        self.attention = ActivationUnitAttention(attention_units) if meta is not None else None
        self.pool = MaskedMeanPooling()
        self.mlp = MLP(hidden_units, num_heads * head_dim, dropout)
        self.width = num_heads * head_dim

    def represent(
        self, inputs: Mapping[str, tf.Tensor], queries: tf.Tensor | None, training: bool | None = None
    ) -> tf.Tensor:
        """User vectors ``[B, Nq, H_u * p]`` for queries ``[B, Nq, D]`` (``None`` without MQM)."""
        profile = self.embed(inputs)
        history, ids = self.behaviour(inputs)
        if queries is None or self.attention is None:
            parts = [profile[:, None, :], self.pool((history, ids))[:, None, :]]
        else:
            pooled = self.attention((queries, history, ids))
            tiled = tf.tile(profile[:, None, :], [1, tf.shape(queries)[1], 1])
            parts = [tiled, pooled, queries]
        return self.mlp(tf.concat(parts, axis=-1), training=training)

    def call(
        self, inputs: Mapping[str, tf.Tensor], training: bool | None = None, queries: tf.Tensor | None = None
    ) -> tf.Tensor:
        """``[B, Nq * H_u * p]`` for ``queries`` ``[B, Nq, D]``; by default every hard query."""
        if queries is None and self.meta is not None:
            group = self.meta.query_group()
            batch = tf.shape(inputs[self.history_name])[0]
            queries = tf.tile(group[None], [batch, 1, 1])
        users = self.represent(inputs, queries, training=training)
        return tf.reshape(users, [-1, users.shape[1] * self.width])


class FITModel(TwoTowerModel):
    """FIT on the tfcs3 two-tower contract (see the module docstring). Pre-ranking only.

    Args:
        spec: the dataset's features (needs a history sequence feature).
        item_attributes: :func:`item_attribute_table` of the data.
        anneal_examples: training examples over which ``tau`` falls from 1 to ``min_temperature``
            (the registry sets ``anneal_epochs`` x the training-split size).
        num_meta: ``N`` meta vectors.
        num_heads: ``H_u = H_v``.
        head_dim: ``p``.
        lss_units: ``d_r = d_c`` of the LSS.
        attention_units: hidden width of the DIN activation unit.
        min_temperature: the floor of the ``tau`` schedule.
        use_mqm, use_lss: switch the mechanisms off for the ablation.
        **kwargs: ``embedding_dim``, ``hidden_units``, ``dropout``, ``embeddings_regularizer`` as
            for :class:`TwoTowerModel`.

    Example:
        >>> data = tfcs3.data.load_prepared("ml-100k", "preranking")
        >>> model = tfcs3.models.build_model("fit", data, num_meta=16)
        >>> tfcs3.training.train(model, data)
    """

    is_dot = False
    # Pointwise BCE on the LSS's score: no softmax (temperature, losses, negatives) and no L2
    # normalisation; the user tower always reads the history.
    excluded_hparams = frozenset(
        {"tower", "temperature", "l2_normalize", "remove_accidental_hits", *retrieval_loss.LOSS_HPARAMS}
    )

    def __init__(
        self,
        spec: FeatureSpec,
        item_attributes: Mapping[str, np.ndarray],
        anneal_examples: int = 0,
        num_meta: int = 16,
        num_heads: int = 4,
        head_dim: int = 16,
        lss_units: int = 8,
        attention_units: int = 32,
        min_temperature: float = 1e-3,
        use_mqm: bool = True,
        use_lss: bool = True,
        **kwargs: Any,
    ):
        if kwargs.setdefault("mode", PRERANKING) != PRERANKING:
            raise ValueError(f"FIT is a pre-ranking model (pointwise BCE); got mode={kwargs['mode']!r}")
        if kwargs.setdefault("tower", "youtubednn") != "youtubednn":
            raise ValueError("FIT's user tower reads the history: tower must be 'youtubednn'")
        if kwargs.get("l2_normalize"):
            raise ValueError("FIT's towers are not L2-normalised (the LSS reads raw similarities)")
        if not 0.0 < min_temperature <= 1.0:
            raise ValueError(f"min_temperature must be in (0, 1], got {min_temperature}")
        self._fit_args: dict[str, Any] = dict(
            num_meta=int(num_meta),
            num_heads=int(num_heads),
            head_dim=int(head_dim),
            attention_units=int(attention_units),
            use_mqm=bool(use_mqm),
        )
        self._item_attributes = item_attributes
        super().__init__(spec, **kwargs)
        self.hparams.update(
            self._fit_args,
            lss_units=int(lss_units),
            min_temperature=float(min_temperature),
            use_lss=bool(use_lss),
            anneal_examples=int(anneal_examples),
        )
        self.lss = LightweightSimilarityScorer(lss_units, lss_units, name="lss") if use_lss else None
        self.examples_seen = tf.Variable(0.0, trainable=False, name="examples_seen")
        self.num_users = int(num_meta) if use_mqm else 1
        self.score_width = int(num_heads) * int(head_dim)

    def build_towers(
        self,
        query_features: list[dict[str, Any]],
        candidate_features: list[dict[str, Any]],
        query_args: dict[str, Any],
        candidate_args: dict[str, Any],
    ) -> tuple[tf_keras.Model, tf_keras.Model]:
        a = self._fit_args
        self.meta = None
        if a["use_mqm"]:
            # Built now (D = one embedding per candidate feature), so either tower may run first.
            self.meta = MetaQueryModule(a["num_meta"], name="meta_query")
            self.meta.build(tf.TensorShape([None, len(candidate_features) * candidate_args["embedding_dim"]]))

        def common(args: dict[str, Any]) -> dict[str, Any]:
            keep = ("embedding_dim", "hidden_units", "dropout", "embeddings_regularizer")
            return {k: args[k] for k in keep} | dict(num_heads=a["num_heads"], head_dim=a["head_dim"])

        items = FITItemTower(candidate_features, meta=self.meta, name="candidate_tower", **common(candidate_args))
        users = FITUserTower(
            query_features,
            attention_units=a["attention_units"],
            item_embedding=items.embedding,
            item_attributes=self._item_attributes,
            meta=self.meta,
            name="query_tower",
            **common(query_args),
        )
        return users, items

    # --- representations -> scores -------------------------------------------------------------

    def _heads(self, flat: tf.Tensor) -> tf.Tensor:
        """``[..., H * p]`` -> ``[..., H, p]``."""
        h, p = self.hparams["num_heads"], self.hparams["head_dim"]
        return tf.reshape(flat, tf.concat([tf.shape(flat)[:-1], [h, p]], axis=0))

    def _split_candidates(self, candidate_repr: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(item heads ``[..., H_v, p]``, hard-query index int32 ``[...]``)."""
        return self._heads(candidate_repr[..., :-1]), tf.cast(candidate_repr[..., -1], tf.int32)

    def _users(self, query_repr: tf.Tensor) -> tf.Tensor:
        """``[Q, N * H_u * p]`` -> ``[Q, N, H_u * p]``."""
        return tf.reshape(query_repr, [tf.shape(query_repr)[0], self.num_users, -1])

    @property
    def scorer_variables(self) -> list[tf.Variable]:
        """Variables of the score outside the towers (the export tracks them)."""
        return [self.bias, *(self.lss.variables if self.lss is not None else [])]

    def _logit(self, user_heads: tf.Tensor, item_heads: tf.Tensor) -> tf.Tensor:
        """``LSS(Z_u Z_v^T) + b`` (``sum_h <u_h, v_h> + b`` without the LSS)."""
        if self.lss is None:
            return tf.reduce_sum(user_heads * item_heads, axis=[-2, -1]) + self.bias
        return self.lss(head_similarity(user_heads, item_heads)) + self.bias

    def score(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """All pairs ``[Q, C]``: each candidate uses the user representation of its own index."""
        item_heads, index = self._split_candidates(candidate_repr)
        users = self._heads(tf.gather(self._users(query_repr), index, axis=1))  # [Q, C, H, p]
        if self.lss is None:
            return tf.einsum("qchp,chp->qc", users, item_heads) + self.bias
        return self.lss(tf.einsum("qchp,cvp->qchv", users, item_heads)) + self.bias

    def score_candidates(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """Per-query lists: ``[B, N * H_u * p]`` x ``[B, C, H_v * p + 1]`` -> ``[B, C]``."""
        item_heads, index = self._split_candidates(candidate_repr)
        users = self._heads(tf.gather(self._users(query_repr), index, axis=1, batch_dims=1))
        return self._logit(users, item_heads)

    def _pair_logits(self, q: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        return self.score_pairs(q, c)

    # --- training / inference on (query, candidate) rows ---------------------------------------

    def temperature_now(self) -> tf.Tensor:
        """``max(1 - seen / anneal_examples, min_temperature)`` (the floor when nothing anneals)."""
        floor = self.hparams["min_temperature"]
        total = float(self.hparams["anneal_examples"])
        if total <= 0:
            return tf.constant(floor)
        return tf.maximum(1.0 - self.examples_seen / total, floor)

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """Logit of each row's (user, candidate) pair: soft meta query when training, the hard one
        (exactly what ``score`` uses) otherwise."""
        candidate = self.candidate_model(features, training=training)
        item_heads, _ = self._split_candidates(candidate)
        queries = None
        if self.meta is not None:
            attributes = self.candidate_model.embedding(features)
            queries = self.meta(attributes, training=training)[:, None, :]
        users = self.query_model(features, training=training, queries=queries)
        return self._logit(self._heads(users), item_heads)

    def unsynchronized_state(self) -> list[str]:
        """The Meta Query Module's temperature schedule counts the examples seen outside the
        gradients, from each replica's own rows."""
        return ["the temperature schedule's example counter"] if self.meta is not None else []

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        if LABEL not in features:
            raise ValueError(f"FIT trains on labelled impressions: batches need a {LABEL!r} entry")
        if training and self.meta is not None:
            self.meta.temperature.assign(self.temperature_now())
            self.examples_seen.assign_add(tf.cast(tf.shape(features[LABEL])[0], tf.float32))
        logits = self(features, training=training)
        return self.task(labels=features[LABEL], predictions=logits)
