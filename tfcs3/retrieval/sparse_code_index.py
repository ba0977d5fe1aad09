"""SparCode's code -> item inverted index, built from a trained model and searched with stock
TensorFlow ops (servable by stock TF Serving)."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.layers.discrete_codes import nearest_codes
from tfcs3.retrieval.base import IndexedModel, TopKIndex, register_index
from tfcs3.retrieval.brute_force import mask_rows


@register_index("sparse_code")
class SparseCodeIndex(TopKIndex):
    """Posting lists ``code -> {(item, ReLU(f(code, item) + b)) : value > 0}`` in CSR form.

    SparCode (Su et al., SIGIR 2023): a query token takes one of ``N^M`` codes, so the
    interaction ``f`` is evaluated offline for every (code, item) pair and only positive entries
    are kept. Retrieval looks up the ``K_u`` codes of a query (nearest codewords, as in training),
    adds their posting lists into a per-item score (a token whose list misses an item contributes 0,
    exactly ``ReLU`` of a non-positive score), masks exclusions and takes the top k. Without
    truncation the scores are the model's own ``sum_k ReLU(f(z_k, v) + b)``, for every item.

    Search uses ``Gather``, ``RaggedRange``, ``UnsortedSegmentSum`` and ``TopKV2``: stock ops only.

    Args:
        indptr: ``[N^M + 1]`` int64 CSR offsets by flat code id.
        item_rows: ``[nnz]`` int32 catalog rows.
        values: ``[nnz]`` float32 scores.
        num_items: catalog size.
        codebook: ``[M, N, d / M]`` codebooks (copied).
        num_query_tokens: ``K_u``.
        name: module name.
    """

    def __init__(
        self,
        indptr: np.ndarray,
        item_rows: np.ndarray,
        values: np.ndarray,
        num_items: int,
        codebook: np.ndarray,
        num_query_tokens: int,
        name: str | None = None,
    ):
        super().__init__(name=name)
        codebook = np.asarray(codebook, np.float32)
        m, n, _ = codebook.shape
        if len(indptr) != n**m + 1:
            raise ValueError(f"indptr must have N^M + 1 = {n**m + 1} entries, got {len(indptr)}")
        if len(item_rows) != len(values) or int(indptr[-1]) != len(values):
            raise ValueError("item_rows, values and indptr[-1] must agree on the number of entries")
        self.num_items = int(num_items)
        self.num_query_tokens = int(num_query_tokens)
        self.num_codes = int(n**m)
        self.nnz = int(len(values))
        self.indptr = tf.Variable(np.asarray(indptr, np.int64), trainable=False, name="indptr")
        self.item_rows = tf.Variable(np.asarray(item_rows, np.int32), trainable=False, name="item_rows")
        self.values = tf.Variable(np.asarray(values, np.float32), trainable=False, name="values")
        self.codebook = tf.Variable(codebook, trainable=False, name="codebook")
        self.code_weights = tf.constant([n ** (m - 1 - i) for i in range(m)], tf.int32)
        self.top_t: int | None = None  # the cap it was built with, when built by for_model

    @classmethod
    def from_model(
        cls,
        model: Any,
        item_representations: np.ndarray | tf.Tensor,
        top_t: int | None = None,
        verbose: int = 0,
        budget: int = 1 << 23,
    ) -> SparseCodeIndex:
        """Scores every code against every item with the model's interaction and keeps the
        positive entries (at most ``top_t`` per code, the highest, when given).

        Args:
            model: a trained :class:`~tfcs3.models.sparcode.SparCodeModel`.
            item_representations: ``candidate_model`` outputs of the catalog, ``[C, K_i * d]``.
            top_t: per-code cap on posting-list length (``None``: exact, no truncation).
            verbose: 1 shows a progress bar.
            budget: floats per block of the intermediate ``[codes, C, hidden]`` activations.
        """
        quantizer = model.quantizer
        if quantizer is None:
            raise ValueError(f"{type(model).__name__} has no product quantizer to index (SparCode with quantize=True)")
        if top_t is not None and top_t < 1:
            raise ValueError(f"top_t must be >= 1 or None, got {top_t}")
        h = model.hparams
        n_items = int(item_representations.shape[0])
        n_codes = quantizer.num_codes
        bar = tf_keras.utils.Progbar(n_codes, unit_name="code") if verbose else None
        counts, rows, vals = [], [], []
        for block in model.code_item_scores(item_representations, budget):
            for row in block:
                keep = np.flatnonzero(row > 0)
                if top_t is not None and len(keep) > top_t:
                    keep = keep[np.argpartition(-row[keep], top_t - 1)[:top_t]]
                keep = keep[np.argsort(-row[keep], kind="stable")]
                counts.append(len(keep))
                rows.append(keep.astype(np.int32))
                vals.append(row[keep].astype(np.float32))
            if bar is not None:
                bar.add(len(block))
        indptr = np.zeros(n_codes + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(
            indptr,
            np.concatenate(rows) if rows else np.zeros(0, np.int32),
            np.concatenate(vals) if vals else np.zeros(0, np.float32),
            n_items,
            quantizer.codebook.numpy(),
            h["num_query_tokens"],
        )

    @classmethod
    def for_model(cls, model: IndexedModel, embeddings: tf.Variable, k: int, **options: Any) -> SparseCodeIndex:
        """``options``: ``sparse_top_t`` (the per-code posting-list cap; ``None``: exact)."""
        if model.quantizer is None:
            raise ValueError(f"{type(model).__name__} has no discrete query codes; sparse_code needs SparCode")
        index = cls.from_model(model, embeddings.numpy(), top_t=options.get("sparse_top_t"))
        index.top_t = options.get("sparse_top_t")
        return index

    def metadata(self) -> dict[str, Any]:
        return {**super().metadata(), "sparse_index": {"nnz": self.nnz, "density": self.density, "top_t": self.top_t}}

    def truncated(self, top_t: int) -> SparseCodeIndex:
        """The index keeping the ``top_t`` highest entries of each posting list (lists are stored
        best first), without re-scoring: the same as ``from_model(..., top_t=top_t)``."""
        if top_t < 1:
            raise ValueError(f"top_t must be >= 1, got {top_t}")
        indptr = self.indptr.numpy()
        lengths = np.minimum(np.diff(indptr), top_t)
        keep = np.concatenate([np.arange(s, s + n) for s, n in zip(indptr[:-1], lengths, strict=True)])
        new_indptr = np.zeros_like(indptr)
        np.cumsum(lengths, out=new_indptr[1:])
        return SparseCodeIndex(
            new_indptr,
            self.item_rows.numpy()[keep],
            self.values.numpy()[keep],
            self.num_items,
            self.codebook.numpy(),
            self.num_query_tokens,
        )

    @property
    def density(self) -> float:
        """``nnz / (N^M * C)``: the fraction of (code, item) scores stored."""
        return self.nnz / (self.num_codes * self.num_items)

    @property
    def memory_bytes(self) -> int:
        """Bytes of the posting lists (int32 rows, float32 values, int64 offsets)."""
        return self.nnz * 8 + (self.num_codes + 1) * 8

    def codes(self, queries: tf.Tensor) -> tf.Tensor:
        """Flat code ids ``[B, K_u]`` of query representations ``[B, K_u * d]``."""
        d = int(self.codebook.shape[0] * self.codebook.shape[2])
        codes = nearest_codes(tf.convert_to_tensor(self.codebook), tf.reshape(queries, [-1, d]))
        return tf.reshape(tf.reduce_sum(codes * self.code_weights, axis=-1), [-1, self.num_query_tokens])

    def scores(self, queries: tf.Tensor) -> tf.Tensor:
        """Dense ``[B, C]`` scores: the sum of the queries' posting lists."""
        ids = tf.reshape(tf.cast(self.codes(queries), tf.int64), [-1])
        spans = tf.ragged.range(tf.gather(self.indptr, ids), tf.gather(self.indptr, ids + 1))
        positions = spans.flat_values
        owner = spans.value_rowids() // self.num_query_tokens
        items = tf.cast(tf.gather(self.item_rows, positions), tf.int64)
        batch = tf.shape(queries, out_type=tf.int64)[0]
        segments = owner * self.num_items + items
        flat = tf.math.unsorted_segment_sum(tf.gather(self.values, positions), segments, batch * self.num_items)
        return tf.reshape(flat, [-1, self.num_items])

    def search(self, queries: tf.Tensor, k: int, exclude_rows: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Returns ``(scores [B, k'], rows [B, k'])`` best first, ``k' = min(k, C)``."""
        scores = self.scores(queries)
        if exclude_rows is not None:
            scores = mask_rows(scores, exclude_rows)
        return tf.math.top_k(scores, k=min(k, self.num_items))
