"""The TFRS two-tower baseline with DSSM or YouTubeDNN towers.

Towers:
    * ``dssm`` (Huang et al., CIKM 2013, as used in recommendation): query tower over the user's
      categorical features, candidate tower over the item's features; each is embeddings -> MLP.
    * ``youtubednn`` (Covington et al., RecSys 2016): the query tower also mean-pools the
      embeddings of the user's earlier items (the history feature).

Objectives:
    * ``retrieval``: in-batch softmax over ``s(u, i) = q_u . c_i / T`` with the logQ correction
      ``s - log p(i)`` (``p`` = training frequency of the item) and accidental-hit removal, via
      ``tfrs.tasks.Retrieval`` (Yi et al., RecSys 2019 for the correction).
    * ``preranking``: pointwise BCE on labelled impressions, ``P(click) = sigmoid(q . c / T + b)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from tfcs3.data.features import SEQUENCE, FeatureSpec
from tfcs3.data.pipeline import LABEL
from tfcs3.models.tower import Tower, feature_configs

TOWERS = ("dssm", "youtubednn")
MODES = ("retrieval", "preranking")


class TwoTowerModel(tfrs.Model):
    """A dot-product two-tower model built from a :class:`FeatureSpec`.

    Args:
        spec: the dataset's features.
        tower: ``"dssm"`` (no history) or ``"youtubednn"`` (adds the masked mean of the history).
        mode: ``"retrieval"`` (in-batch softmax) or ``"preranking"`` (pointwise BCE).
        embedding_dim: width of the query and candidate representations (and feature embeddings).
        hidden_units: hidden layer widths of both towers.
        item_probability: training frequency of each item-vocabulary index, for logQ; ``None``
            disables the correction.
        temperature: softmax temperature ``T``.
        remove_accidental_hits: mask in-batch negatives that are the positive item.
        l2_normalize: cosine towers (use with a temperature below 1).
        dropout: dropout after hidden layers.
        embeddings_regularizer: L2 strength on embedding tables.

    ``query_model`` maps query features to ``[batch, embedding_dim]``; ``candidate_model`` maps
    candidate features to ``[batch, embedding_dim]`` and never sees a query input; ``score`` is
    the dot product.

    Extension points for the mechanisms built on it: ``build_towers`` (other towers),
    ``tower_options`` (extra tower arguments, e.g. CS3's memories),
    ``auxiliary_loss`` (extra losses, e.g. DAT's mimic losses) and, for a score that is not a dot
    product, ``score`` / ``score_candidates`` with ``is_dot = False`` (e.g. IntTower's sum-max);
    training, evaluation and export then work unchanged.
    """

    def __init__(
        self,
        spec: FeatureSpec,
        tower: str = "youtubednn",
        mode: str = "retrieval",
        embedding_dim: int = 64,
        hidden_units: Sequence[int] = (128,),
        item_probability: np.ndarray | None = None,
        temperature: float = 1.0,
        remove_accidental_hits: bool = True,
        l2_normalize: bool = False,
        dropout: float = 0.0,
        embeddings_regularizer: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if tower not in TOWERS:
            raise ValueError(f"tower must be one of {TOWERS}, got {tower!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.spec = spec
        self.tower = tower
        self.mode = mode
        self.hparams = dict(
            tower=tower,
            mode=mode,
            embedding_dim=int(embedding_dim),
            hidden_units=[int(u) for u in hidden_units],
            temperature=float(temperature),
            remove_accidental_hits=bool(remove_accidental_hits),
            l2_normalize=bool(l2_normalize),
            dropout=float(dropout),
            embeddings_regularizer=float(embeddings_regularizer),
        )
        n_items = len(spec.item_vocabulary)
        # DSSM reads no history, so neither the sequences nor the features aligned with them.
        query_features = [f for f in spec.query if tower == "youtubednn" or (f.kind != SEQUENCE and not f.aligned_with)]
        tower_args = dict(
            embedding_dim=embedding_dim,
            hidden_units=hidden_units,
            output_dim=embedding_dim,
            dropout=dropout,
            l2_normalize=l2_normalize,
            embeddings_regularizer=embeddings_regularizer,
        )
        self.query_model, self.candidate_model = self.build_towers(
            feature_configs(query_features, n_items),
            feature_configs(spec.candidate, n_items),
            {**tower_args, **self.tower_options("query")},
            {**tower_args, **self.tower_options("candidate")},
        )

        self.use_logq = item_probability is not None
        if item_probability is not None:
            item_probability = np.asarray(item_probability, dtype=np.float32)
            if item_probability.shape != (n_items,):
                raise ValueError(
                    f"item_probability must have one entry per item-vocabulary index ({n_items}), "
                    f"got shape {item_probability.shape}"
                )
        self.item_probability = tf.Variable(
            np.zeros(n_items, np.float32) if item_probability is None else item_probability,
            trainable=False,
            name="item_probability",
        )
        if mode == "retrieval":
            self.task = tfrs.tasks.Retrieval(temperature=temperature, remove_accidental_hits=remove_accidental_hits)
        else:
            self.bias = tf.Variable(0.0, name="click_bias")
            self.task = tfrs.tasks.Ranking(
                loss=tf_keras.losses.BinaryCrossentropy(from_logits=True),
                metrics=[tf_keras.metrics.AUC(from_logits=True, name="auc")],
            )

    def tower_options(self, side: str) -> dict[str, Any]:
        """Extra constructor arguments of the ``"query"`` or ``"candidate"`` tower (none here;
        CS3 adds Cycle-Adaptive layers and memories this way, on any backbone)."""
        return {}

    def build_towers(
        self,
        query_features: list[dict[str, Any]],
        candidate_features: list[dict[str, Any]],
        query_args: dict[str, Any],
        candidate_args: dict[str, Any],
    ) -> tuple[tf_keras.Model, tf_keras.Model]:
        """The query and candidate towers; subclasses override this to change the towers."""
        return (
            Tower(query_features, name="query_tower", **query_args),
            Tower(candidate_features, name="candidate_tower", **candidate_args),
        )

    def auxiliary_loss(
        self, features: Mapping[str, tf.Tensor], q: tf.Tensor, c: tf.Tensor, positive: tf.Tensor
    ) -> tf.Tensor:
        """Extra training loss (none here), as a per-example mean; ``compute_loss`` scales it to the
        task loss's reduction (sum over the batch for retrieval, mean for pre-ranking), so its
        weights are relative to the per-example task loss. ``positive`` is 1.0 on rows whose
        (query, candidate) pair is a positive (every row for retrieval, label = 1 otherwise)."""
        return tf.constant(0.0)

    @property
    def query_feature_names(self) -> list[str]:
        return self.query_model.feature_names

    @property
    def candidate_feature_names(self) -> list[str]:
        return self.candidate_model.feature_names

    #: True when ``score`` is the plain dot product (then ScaNN and TFRS's retrieval task apply).
    is_dot = True
    #: Score terms per (query, candidate) pair, for sizing evaluation blocks.
    score_width = 1

    def score(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """All-pairs scores ``[num_queries, num_candidates] = Q C^T``."""
        return tf.matmul(query_repr, candidate_repr, transpose_b=True)

    def score_candidates(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """Per-query candidate lists: ``[B, D]`` x ``[B, C, D]`` -> ``[B, C]``."""
        return tf.einsum("bd,bcd->bc", query_repr, candidate_repr)

    def score_pairs(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """Row-aligned pairs: ``[B, D]`` x ``[B, D]`` -> ``[B]``."""
        return self.score_candidates(query_repr, candidate_repr[:, None, :])[:, 0]

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """Per-example score of each (query, candidate) pair in ``features`` (logit of a click)."""
        q = self.query_model(features, training=training)
        c = self.candidate_model(features, training=training)
        return self._pair_logits(q, c)

    def _pair_logits(self, q: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        logit = self.score_pairs(q, c)
        if self.mode == "preranking":
            return logit / self.hparams["temperature"] + self.bias
        return logit

    def _in_batch_softmax(self, q: tf.Tensor, c: tf.Tensor, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """In-batch softmax with logQ correction and accidental-hit removal (summed over the batch).

        Dot models use ``tfrs.tasks.Retrieval``; other scorers get the same steps applied to
        ``score(q, c)``: divide by T, subtract log p(item), mask same-item negatives, softmax CE.
        """
        item_ids = tf.cast(features[self.spec.item_id], tf.int32)
        probability = tf.gather(self.item_probability, item_ids) if self.use_logq else None
        hits = item_ids if self.hparams["remove_accidental_hits"] else None
        dropped = self.dropped_negatives(features)
        if self.is_dot and dropped is None:
            return self.task(
                q, c, candidate_sampling_probability=probability, candidate_ids=hits, compute_metrics=False
            )
        scores = self.score(q, c) / self.hparams["temperature"]
        labels = tf.eye(tf.shape(scores)[0], tf.shape(scores)[1])
        if probability is not None:
            scores = tfrs.layers.loss.SamplingProbablityCorrection()(scores, probability)
        if hits is not None:
            scores = tfrs.layers.loss.RemoveAccidentalHits()(labels, scores, hits)
        if dropped is not None:
            drop = tf.logical_and(dropped, tf.equal(labels, 0.0))
            scores = tf.where(drop, tf.cast(scores.dtype.min, scores.dtype), scores)
        loss = tf_keras.losses.CategoricalCrossentropy(from_logits=True, reduction=tf_keras.losses.Reduction.SUM)
        return loss(labels, scores)

    def dropped_negatives(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor | None:
        """``[B, B]`` bool: in-batch (query r, candidate j) pairs to leave out of the softmax as
        negatives (besides same-item accidental hits); ``None`` keeps them all (the default)."""
        return None

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        q = self.query_model(features, training=training)
        c = self.candidate_model(features, training=training)
        return self.loss_from_representations(features, q, c)

    def positive_mask(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """1.0 on rows whose (query, candidate) pair is a positive: every row in retrieval, the
        label in pre-ranking."""
        if self.mode == "preranking":
            if LABEL not in features:
                raise ValueError(f"pre-ranking batches need a {LABEL!r} entry")
            return tf.cast(features[LABEL], tf.float32)
        return tf.ones_like(features[self.spec.item_id], dtype=tf.float32)

    def loss_from_representations(self, features: Mapping[str, tf.Tensor], q: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        """The training loss of a batch given its query and candidate representations."""
        positive = self.positive_mask(features)
        if self.mode == "preranking":
            task_loss = self.task(labels=features[LABEL], predictions=self._pair_logits(q, c))
        else:
            task_loss = self._in_batch_softmax(q, c, features)
        # The retrieval task sums its loss over the batch (TFRS's default), the ranking task
        # averages it; auxiliary losses are per-example means, scaled to match.
        scale = tf.reduce_sum(positive) if self.mode == "retrieval" else 1.0
        return task_loss + scale * self.auxiliary_loss(features, q, c, positive)

    def get_config(self) -> dict[str, Any]:
        return {"spec": self.spec.to_json(), "use_logq": self.use_logq, **self.hparams}
