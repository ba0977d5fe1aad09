"""Approximate top-k with ScaNN's TensorFlow ops (Guo et al., ICML 2020, "Accelerating
Large-Scale Inference with Anisotropic Vector Quantization").

An export using this index needs the ScaNN ops at load time: ``import scann`` in Python, or a
TF Serving binary built with them (stock TF Serving cannot load it).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.progress import status
from tfcs3.retrieval.base import IndexedModel, TopKIndex, register_index


@dataclasses.dataclass
class ScannOptions:
    """ScaNN searcher settings; :meth:`for_catalog` picks defaults by catalog size.

    Attributes:
        num_leaves: partitions of the tree (0 = no tree: score every point with AH).
        num_leaves_to_search: partitions searched per query.
        dimensions_per_block: AH quantization block width.
        anisotropic_quantization_threshold: AH threshold (ScaNN's recommended 0.2 for MIPS).
        reorder: exact re-scoring of this many AH candidates (0 = none).
        training_sample_size: points used to train the tree and the codebooks.
    """

    num_leaves: int = 0
    num_leaves_to_search: int = 0
    dimensions_per_block: int = 2
    anisotropic_quantization_threshold: float = 0.2
    reorder: int = 0
    training_sample_size: int = 100_000

    @classmethod
    def for_catalog(cls, num_items: int, k: int = 100) -> ScannOptions:
        """Defaults by catalog size, after ScaNN's rules of thumb (AH + reorder below 100k points,
        a tree above), tuned on embeddings distributed like a trained tfcs3 model's
        (``benchmarks/serving.py``; recall@100 about 0.97 at 10^5 and 10^6 items):

        * below 100k items: no tree, AH scoring of every item, ``max(6k, 400)`` re-scored exactly;
        * 100k to 500k: about sqrt(N) leaves, 1/6 of them searched, ``max(8k, 400)`` re-scored
          (at this size a query is cheap either way, so the defaults favour recall);
        * 500k and more: about 2 sqrt(N) leaves, 1/25 searched, ``max(5k, 400)`` re-scored, and a
          larger training sample (250k) for the tree.
        """
        if num_items < 100_000:
            return cls(reorder=min(max(6 * k, 400), num_items))
        root = int(2 ** round(math.log2(math.sqrt(num_items))))
        if num_items < 500_000:
            return cls(num_leaves=root, num_leaves_to_search=max(16, root // 6), reorder=max(8 * k, 400))
        leaves = 2 * root
        return cls(
            num_leaves=leaves,
            num_leaves_to_search=max(16, leaves // 25),
            reorder=max(5 * k, 400),
            training_sample_size=250_000,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@register_index("scann")
class ScannIndex(TopKIndex):
    """``top_k(Q E^T)`` approximated by a ScaNN searcher, with per-query exclusions.

    Exclusions are honoured by over-fetching ``k + n_excluded`` neighbours and dropping the
    excluded rows, so the result is exact with respect to exclusions whenever the searcher's
    candidates are.

    Args:
        embeddings: ``[N, d]`` float32 candidate embeddings (catalog-row order).
        k: the usual number of neighbours (ScaNN's default result size).
        options: searcher settings (default :meth:`ScannOptions.for_catalog`).
    """

    def __init__(
        self, embeddings: np.ndarray, k: int = 100, options: ScannOptions | None = None, name: str | None = None
    ):
        super().__init__(name=name)
        from scann.scann_ops.py import scann_ops  # the ScaNN TF ops; optional dependency at serve time

        self._ops = scann_ops
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or len(embeddings) == 0:
            raise ValueError(f"embeddings must be a non-empty [N, d] matrix, got shape {embeddings.shape}")
        self.num_items = int(embeddings.shape[0])
        self.options = options or ScannOptions.for_catalog(self.num_items, k)
        o = self.options
        builder = scann_ops.builder(embeddings, min(k, self.num_items), "dot_product")
        sample = min(o.training_sample_size, self.num_items)
        if o.num_leaves:
            builder = builder.tree(
                num_leaves=o.num_leaves, num_leaves_to_search=o.num_leaves_to_search, training_sample_size=sample
            )
        builder = builder.score_ah(
            o.dimensions_per_block,
            anisotropic_quantization_threshold=o.anisotropic_quantization_threshold,
            training_sample_size=sample,
        )
        if o.reorder:
            builder = builder.reorder(o.reorder)
        with status(f"Building the ScaNN index over {self.num_items:,} items"):
            self.state = builder.build().serialize_to_module()

    @classmethod
    def for_model(cls, model: IndexedModel, embeddings: tf.Variable, k: int, **options: Any) -> ScannIndex:
        """``options``: ``scann_options`` (:class:`ScannOptions`, default by catalog size)."""
        if not model.is_dot:
            raise ValueError(f"{type(model).__name__} does not score by dot product; ScaNN needs one (use brute_force)")
        return cls(embeddings.numpy(), k, options.get("scann_options"))

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "index_options": self.options.to_dict()}

    def search(self, queries: tf.Tensor, k: int, exclude_rows: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Returns ``(scores [B, k'], rows [B, k'])`` best first, ``k' = min(k, N)``."""
        k = min(k, self.num_items)
        fetch = tf.constant(k, tf.int32)
        if exclude_rows is not None:
            fetch = tf.minimum(fetch + tf.shape(exclude_rows)[1], self.num_items)
        searcher = self._ops.searcher_from_module(self.state)
        rows, scores = searcher.search_batched_parallel(queries, final_num_neighbors=fetch)
        rows = tf.cast(rows, tf.int64)
        scores = tf.where(tf.math.is_nan(scores), tf.constant(-np.inf, scores.dtype), scores)
        if exclude_rows is not None:
            excluded = tf.reduce_any(tf.equal(rows[:, :, None], tf.cast(exclude_rows, tf.int64)[:, None, :]), axis=-1)
            scores = tf.where(excluded, tf.constant(-np.inf, scores.dtype), scores)
        top_scores, order = tf.math.top_k(scores, k=tf.minimum(k, tf.shape(scores)[1]))
        return top_scores, tf.gather(rows, order, batch_dims=1)
