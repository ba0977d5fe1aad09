"""Top-k indices over candidate embeddings: exact brute force (stock ops) and ScaNN."""

from tfcs3.retrieval.brute_force import BruteForceIndex, mask_rows
from tfcs3.retrieval.scann_index import ScannIndex, ScannOptions

__all__ = ["BruteForceIndex", "ScannIndex", "ScannOptions", "mask_rows"]
