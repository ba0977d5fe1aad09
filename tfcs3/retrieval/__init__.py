"""Top-k indices: exact brute force (stock ops), ScaNN, and SparCode's sparse code index (stock ops)."""

from tfcs3.retrieval.base import INDEXES, IndexedModel, TopKIndex, register_index
from tfcs3.retrieval.brute_force import BruteForceIndex, block_top_k, mask_rows
from tfcs3.retrieval.scann_index import ScannIndex, ScannOptions
from tfcs3.retrieval.sparse_code_index import SparseCodeIndex

__all__ = [
    "INDEXES", "BruteForceIndex", "IndexedModel", "ScannIndex", "ScannOptions", "SparseCodeIndex", "TopKIndex",
    "block_top_k", "mask_rows", "register_index",
]  # fmt: skip
