"""Keras layers, one mechanism per file; every layer has ``get_config``."""

from tfcs3.layers.feature_embedding import FeatureEmbedding
from tfcs3.layers.masked_mean import MaskedMeanPooling
from tfcs3.layers.mlp import MLP

__all__ = ["MLP", "FeatureEmbedding", "MaskedMeanPooling"]
