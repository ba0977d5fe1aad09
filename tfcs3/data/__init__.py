"""Datasets, feature specifications, evaluation protocols and ``tf.data`` pipelines."""

from tfcs3.data.amazon import load_amazon
from tfcs3.data.datasets import DATASETS, find_data_dir, load_prepared, load_raw
from tfcs3.data.described import DatasetDescription, load_described
from tfcs3.data.download import download_movielens
from tfcs3.data.features import OOV, PAD, Feature, FeatureSpec, HashedVocabulary, Vocabulary
from tfcs3.data.movielens import load_movielens_1m, load_movielens_100k
from tfcs3.data.pipeline import LABEL, make_dataset
from tfcs3.data.prepared import PreparedData, Split
from tfcs3.data.protocols import (
    PRERANKING,
    PRERANKING_PER_USER,
    RETRIEVAL,
    USER_SPLIT,
    prepare,
    prepare_user_split,
)
from tfcs3.data.raw import DataFormatError, RawDataset
from tfcs3.data.shards import ShardedSplit
from tfcs3.data.streaming import prepare_streaming
from tfcs3.data.synthetic import generate_synthetic

__all__ = [
    "DATASETS", "LABEL", "OOV", "PAD", "PRERANKING", "PRERANKING_PER_USER", "RETRIEVAL", "USER_SPLIT",
    "DataFormatError", "DatasetDescription", "Feature",
    "FeatureSpec", "HashedVocabulary", "PreparedData", "RawDataset", "ShardedSplit", "Split", "Vocabulary",
    "download_movielens", "find_data_dir", "generate_synthetic", "load_amazon", "load_described",
    "load_movielens_100k", "load_movielens_1m", "load_prepared", "load_raw", "make_dataset",
    "prepare", "prepare_streaming", "prepare_user_split",
]  # fmt: skip
