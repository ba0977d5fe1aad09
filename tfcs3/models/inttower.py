"""IntTower: Light-SE towers, FE-Block multi-head sum-max scoring and the CIR loss.

Li, Chen et al., "IntTower: the Next Generation of Two-Tower Model for Pre-Ranking System",
CIKM 2022. See :mod:`tfcs3.layers.interaction_tower` for the equations.

Representations (what ``query_model`` / ``candidate_model`` return):

* ``scorer="sum_max"`` (the paper): query ``[B, L*H_u*d_h + d]`` = every layer's user heads, then
  the last hidden state ``h_u^L``; candidate ``[N, H_v*d_h + d]`` = item heads, then ``h_v^L``.
  ``score`` is the multi-head sum-max over the head parts; the hidden states feed CIR. Item
  representations are still computed once per item, so candidate scoring and brute-force top-k
  export work; ScaNN does not apply (the score is not a dot product).
* ``scorer="dot"``: the towers' last hidden states and their dot product: a plain dot-product
  backbone (with Light-SE and CIR) that ScaNN and CS3 can use.

INTERPRETATION: no batch normalisation in the towers (dropout only); the pre-ranking logit is
``s / T + b`` and retrieval uses the same in-batch softmax with logQ as the other models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf
import tf_keras

from tfcs3.cs3.cycle_adaptive import CycleAdaptiveDense
from tfcs3.data.features import FeatureSpec
from tfcs3.layers.interaction_tower import (
    LightSE,
    contrastive_interaction_loss,
    multi_head_sum_max,
    paired_sum_max,
)
from tfcs3.models.sequential import SequentialModel
from tfcs3.models.tower import FeatureTower
from tfcs3.models.two_tower import TwoTowerModel

SCORERS = ("sum_max", "dot")


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class InteractionTower(FeatureTower):
    """Field embeddings -> Light-SE -> dense layers, with FE-Block head projections.

    Args:
        features: :class:`FeatureEmbedding` configs.
        embedding_dim: width of each field embedding.
        hidden_units: hidden ReLU layer widths; with the output layer that makes ``L`` layers.
        output_dim: width of the last hidden state ``h^L``.
        num_heads: heads per projection (``H_u`` or ``H_v``).
        head_dim: ``d_h``.
        side: ``"query"`` (heads from every layer's input) or ``"candidate"`` (heads from ``h^L``).
        scorer: ``"sum_max"`` (output heads and ``h^L``) or ``"dot"`` (output ``h^L`` only).
        dropout: dropout after hidden layers.
        embeddings_regularizer: L2 strength on embedding tables.
        cycles: 0 for plain dense layers; ``>= 1`` makes them Cycle-Adaptive blocks (CS3's CAS).
        memories: per-id memories (CS3); their vectors join the Light-SE output before the
            dense layers (see :class:`~tfcs3.models.tower.FeatureTower`).
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        hidden_units: Sequence[int],
        output_dim: int,
        num_heads: int = 2,
        head_dim: int = 32,
        side: str = "query",
        scorer: str = "sum_max",
        dropout: float = 0.0,
        embeddings_regularizer: float = 0.0,
        l2_normalize: bool = False,
        cycles: int = 0,
        **kwargs: Any,
    ):
        if side not in ("query", "candidate") or scorer not in SCORERS:
            raise ValueError(f"side must be query/candidate and scorer one of {SCORERS}, got {side!r}, {scorer!r}")
        config: dict[str, Any] = dict(
            hidden_units=list(hidden_units),
            output_dim=output_dim,
            num_heads=num_heads,
            head_dim=head_dim,
            side=side,
            scorer=scorer,
            dropout=dropout,
            l2_normalize=l2_normalize,
            cycles=cycles,
        )
        super().__init__(features, embedding_dim, embeddings_regularizer, config=config, **kwargs)
        self.num_fields = len(self.feature_names)
        self.embedding_dim = int(embedding_dim)
        self.side, self.scorer, self.l2_normalize = side, scorer, bool(l2_normalize)
        self.light_se = LightSE(self.num_fields)

        def dense(units: int, activation: str | None) -> tf_keras.layers.Layer:
            if cycles:
                return CycleAdaptiveDense(units, activation, cycles=cycles)
            return tf_keras.layers.Dense(units, activation=activation)

        self.dense = [dense(u, "relu") for u in hidden_units]
        self.dense.append(dense(output_dim, None))
        self.drop = tf_keras.layers.Dropout(dropout) if dropout else None
        width = num_heads * head_dim
        n_projections = len(self.dense) if side == "query" else 1
        self.heads = [tf_keras.layers.Dense(width, use_bias=False) for _ in range(n_projections)]

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        fields = tf.reshape(self.embedding(inputs), [-1, self.num_fields, self.embedding_dim])
        x = tf.reshape(self.light_se(fields), [-1, self.num_fields * self.embedding_dim])
        x = tf.concat([x, *self.memory_vectors(inputs)], axis=-1)
        layer_inputs = []
        for i, layer in enumerate(self.dense):
            layer_inputs.append(x)
            x = layer(x)
            if i < len(self.dense) - 1 and self.drop is not None:
                x = self.drop(x, training=training)
        if self.l2_normalize:
            x = tf.math.l2_normalize(x, axis=-1)
        if self.scorer == "dot":
            return x
        sources = layer_inputs if self.side == "query" else [x]
        heads = [proj(h) for proj, h in zip(self.heads, sources, strict=True)]
        return tf.concat([*heads, x], axis=-1)


class IntTowerModel(TwoTowerModel):
    """IntTower on the tfcs3 two-tower contract (see the module docstring).

    Args:
        spec: the dataset's features.
        scorer: ``"sum_max"`` (FE-Block late interaction) or ``"dot"``.
        num_heads: ``H_u = H_v``.
        head_dim: ``d_h``.
        cir_weight: weight of the contrastive interaction loss (0 disables it).
        cir_temperature: ``tau`` of CIR.
        **kwargs: the remaining :class:`TwoTowerModel` arguments.

    Example:
        >>> model = tfcs3.models.build_model("inttower_youtubednn", preranking_data, cir_weight=0.1)
        >>> tfcs3.training.train(model, preranking_data)  # AUC on validation
    """

    def __init__(
        self,
        spec: FeatureSpec,
        scorer: str = "sum_max",
        num_heads: int = 2,
        head_dim: int = 32,
        cir_weight: float = 0.1,
        cir_temperature: float = 0.07,
        **kwargs: Any,
    ):
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {SCORERS}, got {scorer!r}")
        self.is_dot = scorer == "dot"
        self._heads = (int(num_heads), int(head_dim))
        super().__init__(spec, **kwargs)
        self.hparams.update(
            scorer=scorer,
            num_heads=int(num_heads),
            head_dim=int(head_dim),
            cir_weight=float(cir_weight),
            cir_temperature=float(cir_temperature),
        )
        layers = len(self.hparams["hidden_units"]) + 1
        self.score_width = 1 if self.is_dot else layers * num_heads * num_heads
        self._hidden_dim = self.hparams["embedding_dim"]

    def build_towers(
        self,
        query_features: list[dict[str, Any]],
        candidate_features: list[dict[str, Any]],
        query_args: dict[str, Any],
        candidate_args: dict[str, Any],
    ) -> tuple[tf_keras.Model, tf_keras.Model]:
        num_heads, head_dim = self._heads
        scorer = "dot" if self.is_dot else "sum_max"
        common: dict[str, Any] = dict(num_heads=num_heads, head_dim=head_dim, scorer=scorer)
        return (
            InteractionTower(query_features, side="query", name="query_tower", **common, **query_args),
            InteractionTower(candidate_features, side="candidate", name="candidate_tower", **common, **candidate_args),
        )

    def _split(self, repr_: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(heads ``[..., n_heads, d_h]``, last hidden state ``[..., d]``) of a sum-max representation."""
        d = self._hidden_dim
        head_dim = self.hparams["head_dim"]
        heads = repr_[..., :-d]
        shape = tf.concat([tf.shape(heads)[:-1], [-1, head_dim]], axis=0)
        return tf.reshape(heads, shape), repr_[..., -d:]

    def score(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        if self.is_dot:
            return super().score(query_repr, candidate_repr)
        return multi_head_sum_max(self._split(query_repr)[0], self._split(candidate_repr)[0])

    def score_candidates(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        if self.is_dot:
            return super().score_candidates(query_repr, candidate_repr)
        return paired_sum_max(self._split(query_repr)[0], self._split(candidate_repr)[0])

    def auxiliary_loss(
        self, features: Mapping[str, tf.Tensor], q: tf.Tensor, c: tf.Tensor, positive: tf.Tensor
    ) -> tf.Tensor:
        if not self.hparams["cir_weight"]:
            return tf.constant(0.0)
        user, item = (q, c) if self.is_dot else (self._split(q)[1], self._split(c)[1])
        return self.hparams["cir_weight"] * contrastive_interaction_loss(
            user, item, positive, self.hparams["cir_temperature"]
        )


class IntTowerSequentialModel(SequentialModel, IntTowerModel):
    """IntTower's dot-product variant on a sequence backbone (registered as ``inttower_sasrec``):
    the backbone's towers and loss plus the contrastive interaction regularization on every
    supervised (position, next item) pair:

        L = L_backbone + cir_weight * CIR(q_t, c(next_t))

    Of IntTower's other parts, the FE-Block needs the sum-max scorer (no dot product, so no
    index), and Light-SE re-weights a tower's input fields, which a sequence tower does not
    have (one history whose items sum their feature embeddings); neither applies here.

    Args:
        spec, item_attributes: as for :class:`~tfcs3.models.sequential.SequentialModel`.
        **kwargs: ``cir_weight``, ``cir_temperature`` and the
            :class:`~tfcs3.models.sequential.SequentialModel` arguments.

    Example:
        >>> model = tfcs3.models.build_model("inttower_sasrec", data, cir_weight=0.1)
    """

    excluded_hparams = SequentialModel.excluded_hparams | {"scorer", "head_dim"}  # dot scorer: no FE-Block

    def __init__(self, spec: FeatureSpec, item_attributes: Mapping[str, Any], **kwargs: Any):
        super().__init__(spec, item_attributes, scorer="dot", **kwargs)
