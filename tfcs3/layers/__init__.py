"""Keras layers, one mechanism per file; every layer has ``get_config``.

CS3's layers live in :mod:`tfcs3.cs3` and are also reachable here (``tfcs3.layers.CycleAdaptiveDense``,
``CrossTowerMemory``, ``CascadeMemory``); they load on first use, since they build on the layers
here (an :class:`EMAMemory`, an :class:`MLP`).
"""

import importlib
from typing import TYPE_CHECKING, Any

from tfcs3.layers.activation_unit import ActivationUnitAttention
from tfcs3.layers.all_to_all import AllToAllInteraction, sparse_sum
from tfcs3.layers.causal_transformer import CausalTransformerEncoder, causal_mask
from tfcs3.layers.diffusion import DiffusionIntentGenerator, UNet1D, exponential_betas
from tfcs3.layers.discrete_codes import ProductQuantizer, codewords, nearest_codes
from tfcs3.layers.dual_augmented import AdaptiveMimicVector, category_alignment_loss
from tfcs3.layers.ema_memory import EMAMemory, ordered_ema
from tfcs3.layers.feature_embedding import FeatureEmbedding
from tfcs3.layers.gru_encoder import GRUSequenceEncoder
from tfcs3.layers.hashed_cross import HashedCrossEmbedding, hashed_cross_ids
from tfcs3.layers.interaction_tower import LightSE, contrastive_interaction_loss, multi_head_sum_max, paired_sum_max
from tfcs3.layers.masked_mean import MaskedMeanPooling
from tfcs3.layers.meta_query import MetaQueryModule
from tfcs3.layers.mixed_attention import MixedAttention
from tfcs3.layers.mlp import MLP
from tfcs3.layers.similarity_scorer import LightweightSimilarityScorer, head_similarity
from tfcs3.layers.target_attention import TargetAttention

__all__ = [
    "MLP", "CascadeMemory", "CrossTowerMemory", "CycleAdaptiveDense", "CycleAdaptiveMLP", "EMAMemory", "ordered_ema",
    "AdaptiveMimicVector", "FeatureEmbedding", "LightSE", "MaskedMeanPooling", "category_alignment_loss",
    "contrastive_interaction_loss", "multi_head_sum_max", "paired_sum_max", "HashedCrossEmbedding", "hashed_cross_ids",
    "TargetAttention", "ActivationUnitAttention", "MetaQueryModule", "LightweightSimilarityScorer", "head_similarity",
    "AllToAllInteraction", "sparse_sum", "ProductQuantizer", "codewords", "nearest_codes",
    "DiffusionIntentGenerator", "UNet1D", "exponential_betas", "MixedAttention", "CausalTransformerEncoder",
    "causal_mask", "GRUSequenceEncoder",
]  # fmt: skip

if TYPE_CHECKING:
    from tfcs3.cs3.cascade_sharing import CascadeMemory
    from tfcs3.cs3.cross_tower_sync import CrossTowerMemory
    from tfcs3.cs3.cycle_adaptive import CycleAdaptiveDense, CycleAdaptiveMLP

#: CS3's layers, re-exported here: name -> the module of tfcs3.cs3 that defines it.
_CS3_LAYERS = {
    "CascadeMemory": "cascade_sharing",
    "CrossTowerMemory": "cross_tower_sync",
    "CycleAdaptiveDense": "cycle_adaptive",
    "CycleAdaptiveMLP": "cycle_adaptive",
}


def __getattr__(name: str) -> Any:
    if name not in _CS3_LAYERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"tfcs3.cs3.{_CS3_LAYERS[name]}"), name)
