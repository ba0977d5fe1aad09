"""SparCode's discrete query codes: product quantization with EMA codebooks."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras


def nearest_codes(codebook: tf.Tensor, vectors: tf.Tensor) -> tf.Tensor:
    """Product-quantization codes of ``vectors [n, M * s]`` under ``codebook [M, N, s]``:
    ``codes[i, m] = argmin_j ||v_i^m - C_m[j]||``, int32 ``[n, M]``."""
    m, _, s = codebook.shape
    parts = tf.transpose(tf.reshape(vectors, [-1, m, s]), [1, 0, 2])  # [M, n, s]
    # ||v - c||^2 up to the per-row constant ||v||^2.
    distance = tf.reduce_sum(tf.square(codebook), -1)[:, None, :] - 2.0 * tf.matmul(parts, codebook, transpose_b=True)
    return tf.transpose(tf.argmin(distance, axis=-1, output_type=tf.int32))


def codewords(codebook: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
    """The quantized vectors ``concat_m C_m[codes[:, m]]``, ``[n, M * s]``."""
    m = codebook.shape[0]
    return tf.concat([tf.gather(codebook[i], codes[:, i]) for i in range(m)], axis=-1)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class ProductQuantizer(tf_keras.layers.Layer):
    """Product quantization of query tokens with ``M`` EMA codebooks of ``N`` codewords.

    Su et al., "Beyond Two-Tower Matching: Learning Sparse Retrievable Cross-Interactions for
    Recommendation" (SparCode), SIGIR 2023; the VQ-VAE-EMA update (van den Oord et al., 2017).
    A token ``z in R^d`` is split into ``M`` sub-vectors of ``d / M``; sub-vector ``m`` takes its
    nearest codeword of codebook ``C_m``; the code is ``(c^1, ..., c^M)`` and the quantized token
    ``z_q = concat_m C_m[c^m]``. The codebooks are shared by every token.

    * forward: ``z_st = z + stop_gradient(z_q - z)`` (straight-through: the value is ``z_q``, the
      gradient goes to ``z`` unchanged); the codebooks get no gradient;
    * :meth:`update` (after the loss): ``n_j <- g n_j + (1 - g) count_j``,
      ``s_j <- g s_j + (1 - g) sum_{i -> j} z_i``, ``C[j] = s_j / n~_j`` with Laplace-smoothed
      ``n~_j = (n_j + eps) / (n + N eps) * n``; codewords whose ``n_j`` fell below
      ``restart_threshold`` are restarted at random sub-vectors of the batch;
    * :meth:`initialize` (first quantized batch): k-means (``kmeans_iterations`` Lloyd steps) on the
      batch's sub-vectors, seeded with random ones;
    * :meth:`commitment_loss`: ``mean ||z - stop_gradient(z_q)||^2`` (the whole VQ loss with EMA).

    INTERPRETATION: decay 0.99, eps 1e-5 and the restart threshold (an EMA count below 1, i.e. less
    than one assignment per batch on average lately) follow the VQ-VAE-EMA lineage the official
    code uses; the paper's values are unknown.

    Args:
        num_codebooks: ``M``.
        codebook_size: ``N``; ``N ** M`` codes in all.
        decay: EMA decay ``g``.
        epsilon: Laplace smoothing.
        restart_threshold: EMA count under which a codeword is restarted (0 disables restarts).
        kmeans_iterations: Lloyd steps of the initialisation.

    Input shape:
        ``[batch, d]`` (``d`` divisible by ``M``).
    Output shape:
        ``(z_st [batch, d], codes int32 [batch, M])``.

    Example:
        >>> pq = ProductQuantizer(2, 16)
        >>> z_st, codes = pq(tf.random.normal([8, 6]))
        >>> z_st.shape, codes.shape
        (TensorShape([8, 6]), TensorShape([8, 2]))
    """

    def __init__(
        self,
        num_codebooks: int = 2,
        codebook_size: int = 64,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        restart_threshold: float = 1.0,
        kmeans_iterations: int = 10,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if num_codebooks < 1 or codebook_size < 2:
            raise ValueError(f"need num_codebooks >= 1 and codebook_size >= 2, got {num_codebooks}, {codebook_size}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.num_codebooks = int(num_codebooks)
        self.codebook_size = int(codebook_size)
        self.decay = float(decay)
        self.epsilon = float(epsilon)
        self.restart_threshold = float(restart_threshold)
        self.kmeans_iterations = int(kmeans_iterations)

    def build(self, input_shape: tf.TensorShape) -> None:
        dim = int(input_shape[-1])
        if dim % self.num_codebooks:
            raise ValueError(f"token width {dim} is not divisible by num_codebooks={self.num_codebooks}")
        shape = (self.num_codebooks, self.codebook_size, dim // self.num_codebooks)
        bound = 1.0 / self.codebook_size
        init = tf_keras.initializers.RandomUniform(-bound, bound)
        self.codebook = self.add_weight(name="codebook", shape=shape, initializer=init, trainable=False)
        self.ema_count = self.add_weight(name="ema_count", shape=shape[:2], initializer="zeros", trainable=False)
        self.ema_sum = self.add_weight(name="ema_sum", shape=shape, initializer="zeros", trainable=False)
        self.initialized = self.add_weight(name="initialized", shape=(), initializer="zeros", trainable=False)
        super().build(input_shape)

    @property
    def num_codes(self) -> int:
        return self.codebook_size**self.num_codebooks

    def encode(self, vectors: tf.Tensor) -> tf.Tensor:
        return nearest_codes(tf.convert_to_tensor(self.codebook), vectors)

    def decode(self, codes: tf.Tensor) -> tf.Tensor:
        return codewords(tf.convert_to_tensor(self.codebook), codes)

    def code_ids(self, codes: tf.Tensor) -> tf.Tensor:
        """Flat code ids ``sum_m c^m N^(M-1-m)`` in ``[0, N^M)``, int32 ``[...]``."""
        weights = tf.constant([self.codebook_size ** (self.num_codebooks - 1 - m) for m in range(self.num_codebooks)])
        return tf.reduce_sum(codes * weights, axis=-1)

    def all_codes(self) -> np.ndarray:
        """Every code, ``[N^M, M]`` int32, in flat-id order."""
        grids = np.meshgrid(*[np.arange(self.codebook_size)] * self.num_codebooks, indexing="ij")
        return np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.int32)

    def call(self, vectors: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        codes = self.encode(vectors)
        quantized = self.decode(codes)
        return vectors + tf.stop_gradient(quantized - vectors), codes

    def commitment_loss(self, vectors: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
        return tf.reduce_mean(tf.square(vectors - tf.stop_gradient(self.decode(codes))))

    def perplexity(self, codes: tf.Tensor) -> tf.Tensor:
        """``exp(H)`` of the batch's codeword usage, averaged over codebooks (``N`` = uniform use)."""
        counts = tf.reduce_sum(tf.one_hot(codes, self.codebook_size), axis=0)  # [M, N]
        p = counts / tf.reduce_sum(counts, axis=-1, keepdims=True)
        return tf.reduce_mean(tf.exp(-tf.reduce_sum(p * tf.math.log(p + 1e-10), axis=-1)))

    def _parts(self, vectors: tf.Tensor) -> tf.Tensor:
        m, _, s = self.codebook.shape
        return tf.transpose(tf.reshape(tf.stop_gradient(vectors), [-1, m, s]), [1, 0, 2])  # [M, n, s]

    def _sample(self, parts: tf.Tensor, count: int) -> tf.Tensor:
        """``count`` random rows of each codebook's sub-vectors, ``[M, count, s]``."""
        idx = tf.random.uniform([count], 0, tf.shape(parts)[1], dtype=tf.int32)
        return tf.gather(parts, idx, axis=1)

    def initialize(self, vectors: tf.Tensor) -> None:
        """k-means on the batch's sub-vectors; the EMA state starts at the result."""
        parts = self._parts(vectors)
        centers = self._sample(parts, self.codebook_size)
        for _ in range(self.kmeans_iterations):
            codes = nearest_codes(centers, tf.reshape(tf.transpose(parts, [1, 0, 2]), [tf.shape(parts)[1], -1]))
            onehot = tf.one_hot(tf.transpose(codes), self.codebook_size)  # [M, n, N]
            counts = tf.reduce_sum(onehot, axis=1)
            sums = tf.matmul(onehot, parts, transpose_a=True)  # [M, N, s]
            centers = tf.where(counts[..., None] > 0, sums / tf.maximum(counts, 1.0)[..., None], centers)
        self.codebook.assign(centers)
        self.ema_sum.assign(centers)
        self.ema_count.assign(tf.ones_like(self.ema_count))
        self.initialized.assign(1.0)

    def update(self, vectors: tf.Tensor, codes: tf.Tensor) -> tf.Tensor:
        """One EMA step from a batch and its codes (training only); returns how many codewords
        were restarted."""
        parts = self._parts(vectors)
        onehot = tf.one_hot(tf.transpose(codes), self.codebook_size)  # [M, n, N]
        g = self.decay
        count = self.ema_count * g + (1 - g) * tf.reduce_sum(onehot, axis=1)
        total = self.ema_sum * g + (1 - g) * tf.matmul(onehot, parts, transpose_a=True)
        n = tf.reduce_sum(count, axis=-1, keepdims=True)
        smoothed = (count + self.epsilon) / (n + self.codebook_size * self.epsilon) * n
        codebook = total / smoothed[..., None]
        restarted = tf.constant(0)
        if self.restart_threshold > 0:
            dead = count < self.restart_threshold  # [M, N]
            fresh = self._sample(parts, self.codebook_size)
            codebook = tf.where(dead[..., None], fresh, codebook)
            total = tf.where(dead[..., None], fresh, total)
            count = tf.where(dead, tf.ones_like(count), count)
            restarted = tf.reduce_sum(tf.cast(dead, tf.int32))
        self.ema_count.assign(count)
        self.ema_sum.assign(total)
        self.codebook.assign(codebook)
        return restarted

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_codebooks": self.num_codebooks,
            "codebook_size": self.codebook_size,
            "decay": self.decay,
            "epsilon": self.epsilon,
            "restart_threshold": self.restart_threshold,
            "kmeans_iterations": self.kmeans_iterations,
        }
