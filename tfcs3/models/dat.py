"""DAT: the two-tower model with adaptive-mimic augmented vectors and category alignment.

Yu et al., "A Dual Augmented Two-tower Model for Online Large-scale Recommendation", DLP-KDD 2021.
See :mod:`tfcs3.layers.dual_augmented` for the equations.

    p_u = norm(MLP_u([e_u1; ...; e_un; a_u]))      p_v = norm(MLP_v([e_v1; ...; e_vm; a_v]))
    s(u, v) = <p_u, p_v> / T
    L = L_task + amm_weight * (L_u + L_v) + cal_weight * L_CA

``L_task`` is the backbone's: the in-batch softmax with logQ (retrieval) or pointwise BCE
(pre-ranking). INTERPRETATION: in retrieval every batch row is a positive pair for the mimic
losses; in pre-ranking only rows with label 1 are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import tensorflow as tf
import tf_keras

from tfcs3.data.features import CATEGORICAL, MULTI, FeatureSpec
from tfcs3.layers.dual_augmented import AdaptiveMimicVector, category_alignment_loss
from tfcs3.models.sequential import SequentialModel
from tfcs3.models.tower import Tower
from tfcs3.models.two_tower import TwoTowerModel


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class AugmentedTower(Tower):
    """``y = MLP([concat_f embed_f(x_f); a[x_id]])``: a tower with an adaptive-mimic vector.

    Args:
        features, embedding_dim, hidden_units, output_dim, dropout, l2_normalize,
        embeddings_regularizer: as for :class:`~tfcs3.models.tower.Tower`.
        augment_feature: the id feature that selects the augmented vector.
        augment_input_dim: that feature's vocabulary size.
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        hidden_units: Sequence[int],
        output_dim: int,
        augment_feature: str,
        augment_input_dim: int,
        **kwargs: Any,
    ):
        super().__init__(features, embedding_dim, hidden_units, output_dim, **kwargs)
        self._config.update(augment_feature=augment_feature, augment_input_dim=augment_input_dim)
        self.augment_feature = augment_feature
        self.augment = AdaptiveMimicVector(augment_input_dim, output_dim)

    def augmented(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """The augmented vectors ``a`` of a batch, ``[batch, output_dim]``."""
        return self.augment(inputs[self.augment_feature])

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        x = tf.concat([self.embed(inputs), self.augmented(inputs)], axis=-1)
        return self.mlp(x, training=training)


def default_category_feature(spec: FeatureSpec) -> str | None:
    """The candidate feature used as the item category: the first multi-valued one (genres,
    attributes), else the first categorical one other than the item id."""
    for kind in (MULTI, CATEGORICAL):
        for f in spec.candidate:
            if f.kind == kind and f.name != spec.item_id:
                return f.name
    return None


class DATModel(TwoTowerModel):
    """Dual Augmented Two-tower on a DSSM or YouTubeDNN backbone.

    Args:
        spec: the dataset's features.
        amm_weight: weight of each adaptive-mimic loss (``lambda_1 = lambda_2``).
        cal_weight: weight of the category alignment loss (0 disables it).
        category_feature: candidate feature giving the item category (default: see
            :func:`default_category_feature`).
        l2_normalize, temperature: cosine towers with temperature, as in DAT.
        **kwargs: the remaining :class:`TwoTowerModel` arguments (tower, mode, embedding_dim ...).

    Example:
        >>> model = tfcs3.models.build_model("dat_youtubednn", data, amm_weight=0.5)
        >>> tfcs3.training.train(model, data)
    """

    def __init__(
        self,
        spec: FeatureSpec,
        amm_weight: float = 0.5,
        cal_weight: float = 1.0,
        category_feature: str | None = None,
        l2_normalize: bool = True,
        temperature: float = 0.1,
        **kwargs: Any,
    ):
        category_feature = category_feature or default_category_feature(spec)
        if category_feature is not None:
            spec.feature(category_feature)  # a clear KeyError for an unknown name
        super().__init__(spec, l2_normalize=l2_normalize, temperature=temperature, **kwargs)
        self.hparams.update(
            amm_weight=float(amm_weight), cal_weight=float(cal_weight), category_feature=category_feature
        )

    def build_towers(
        self,
        query_features: list[dict[str, Any]],
        candidate_features: list[dict[str, Any]],
        query_args: dict[str, Any],
        candidate_args: dict[str, Any],
    ) -> tuple[tf_keras.Model, tf_keras.Model]:
        spec = self.spec
        user_vocab = spec.feature(spec.user_id).vocabulary
        assert user_vocab is not None
        query = AugmentedTower(
            query_features,
            augment_feature=spec.user_id,
            augment_input_dim=len(user_vocab),
            name="query_tower",
            **query_args,
        )
        candidate = AugmentedTower(
            candidate_features,
            augment_feature=spec.item_id,
            augment_input_dim=len(spec.item_vocabulary),
            name="candidate_tower",
            **candidate_args,
        )
        return query, candidate

    def auxiliary_loss(
        self, features: Mapping[str, tf.Tensor], q: tf.Tensor, c: tf.Tensor, positive: tf.Tensor
    ) -> tf.Tensor:
        a_u = self.query_model.augmented(features)
        a_v = self.candidate_model.augmented(features)
        loss = self.hparams["amm_weight"] * (
            AdaptiveMimicVector.mimic_loss(a_u, c, positive) + AdaptiveMimicVector.mimic_loss(a_v, q, positive)
        )
        name = self.hparams["category_feature"]
        if self.hparams["cal_weight"] and name is not None:
            category = features[name]
            if category.shape.rank == 2:
                category = category[:, 0]
            loss += self.hparams["cal_weight"] * category_alignment_loss(c, category)
        return loss


class DATSequentialModel(SequentialModel, DATModel):
    """DAT on a sequence backbone (registered as ``dat_sasrec``).

    The augmented vectors join the sequence towers as
    :class:`~tfcs3.models.sequential.SideVectors`: ``q_t = h_t + W p + W_u a_u`` and
    ``c(i) = e(i) + W_v a_v(i)`` (the history keeps reading ``e``). The mimic losses pull
    ``a_u`` towards the (stopped) candidate vector of each supervised position's next item and
    ``a_v`` towards that position's (stopped) query, and the category alignment loss acts on the
    candidates of the batch's supervised positions:

        L = L_backbone + amm_weight * (L_u + L_v) + cal_weight * L_CA

    The score and loss stay the backbone's (dot product, temperature 1, full softmax): DAT's
    cosine with temperature 0.1 is a choice of its original backbone, not of its mechanisms.

    Args:
        spec, item_attributes: as for :class:`~tfcs3.models.sequential.SequentialModel`.
        **kwargs: :class:`DATModel` and :class:`~tfcs3.models.sequential.SequentialModel`
            arguments (``amm_weight``, ``cal_weight``, ``encoder``, ``loss`` ...).

    Example:
        >>> model = tfcs3.models.build_model("dat_sasrec", data, amm_weight=0.1)
        >>> tfcs3.training.train(model, data, learning_rate=3e-3, batch_size=128)
    """

    def __init__(
        self,
        spec: FeatureSpec,
        item_attributes: Mapping[str, Any],
        l2_normalize: bool = False,
        temperature: float = 1.0,
        **kwargs: Any,
    ):
        super().__init__(spec, item_attributes, l2_normalize=l2_normalize, temperature=temperature, **kwargs)

    def tower_options(self, side: str) -> dict[str, Any]:
        return {**super().tower_options(side), "augment": True}
