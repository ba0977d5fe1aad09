"""SparCode: all-to-all query-item interaction over learned discrete query codes, retrievable
through a sparse code -> item inverted index.

Su et al., "Beyond Two-Tower Matching: Learning Sparse Retrievable Cross-Interactions for
Recommendation", SIGIR 2023. See :mod:`tfcs3.layers.all_to_all` and
:mod:`tfcs3.layers.discrete_codes` for the pieces.

    z_1..z_Ku = QueryTower(query features)            (a DSSM or YouTubeDNN tower, K_u * d wide)
    v_1..v_Ki = ItemTower(item features)              (K_i * d wide)
    z^_k      = PQ(z_k)   (straight-through in training; codes shared by all tokens)
    y(q, v)   = sum_k ReLU(f([z^_k ; v_1..v_Ki]) + b)     b <= 0: the sparsity bias
    L         = sampled softmax(y / T - log p(item)) + beta * ||z - sg(z^)||^2

The bias in use is the variable ``bias`` (annealed from 0 to ``sparsity_bias`` when asked).

Since ``z^_k`` takes one of ``N^M`` values, ``ReLU(f(code, item) + b)`` can be computed for every
(code, item) pair offline and only the positive entries kept
(:class:`tfcs3.retrieval.SparseCodeIndex`); retrieval then adds ``K_u`` posting lists.

The representations of the tfcs3 contract: ``query_model`` returns the quantized tokens
``[B, K_u * d]`` (the codes are their nearest codewords, exactly), ``candidate_model`` the item
tokens ``[C, K_i * d]``; ``score`` is ``y``. With ``quantize=False`` the same network scores the
continuous tokens: the unrestricted all-to-all scorer (accurate, not indexable).

INTERPRETATIONS (choices the SparCode paper leaves open):

* the towers end in one linear layer of width ``K_u * d`` (equal to the official code's ``D``-wide
  output followed by ``K_u`` linear heads, two linear maps in a row);
* negatives: the first ``num_negatives`` candidates of the batch, shared by all rows (a sampled
  softmax over in-batch negatives), with the logQ correction and same-item negatives masked;
* sizes for a 2-core CPU: ``f`` has two hidden layers of 64 (the official code: three of 256) and
  64 shared negatives (training cost grows with batch x K_u x negatives x width^2);
* ``b`` is applied in training as well as in the index, so offline scores equal online ones;
* the ReLU passes a small gradient (``relu_leak``) where it is closed, in training only: with the
  plain ReLU some seeds end with every score below ``-b`` and nothing left to learn from;
* ``warmup_epochs`` of training on the continuous tokens before quantization starts; the codebooks
  are initialised by k-means on the first quantized batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.data.features import FeatureSpec
from tfcs3.layers.all_to_all import SCORERS, AllToAllInteraction, sparse_sum
from tfcs3.layers.discrete_codes import ProductQuantizer
from tfcs3.models import retrieval_loss
from tfcs3.models.tower import Tower
from tfcs3.models.two_tower import TwoTowerModel


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class CodeTower(Tower):
    """A :class:`Tower` whose output is ``K`` tokens of width ``d``, product-quantized unless
    ``continuous=True`` (or no quantizer is given).

    Args:
        features, embedding_dim, hidden_units, dropout, l2_normalize, embeddings_regularizer:
            as for :class:`Tower`; the output width is ``num_tokens * token_dim``.
        num_tokens: ``K``.
        token_dim: ``d``.
        quantizer: the model's :class:`ProductQuantizer` (``None``: continuous tokens).
    """

    def __init__(
        self,
        features: list[dict[str, Any]],
        embedding_dim: int,
        hidden_units: list[int],
        num_tokens: int,
        token_dim: int,
        quantizer: ProductQuantizer | None = None,
        **kwargs: Any,
    ):
        kwargs.pop("output_dim", None)
        super().__init__(features, embedding_dim, hidden_units, num_tokens * token_dim, **kwargs)
        self._config.update(num_tokens=num_tokens, token_dim=token_dim)
        self.token_dim = int(token_dim)
        self.quantizer = quantizer

    def call(
        self, inputs: Mapping[str, tf.Tensor], training: bool | None = None, continuous: bool = False
    ) -> tf.Tensor:
        z = super().call(inputs, training=training)
        if self.quantizer is None or continuous:
            return z
        flat = tf.reshape(z, [-1, self.token_dim])
        return tf.reshape(self.quantizer.decode(self.quantizer.encode(flat)), tf.shape(z))


class SparCodeModel(TwoTowerModel):
    """SparCode on the tfcs3 two-tower contract (see the module docstring). Retrieval only.

    Args:
        spec: the dataset's features.
        num_query_tokens: ``K_u``.
        num_item_tokens: ``K_i``.
        token_dim: ``d`` (divisible by ``num_codebooks``).
        num_codebooks: ``M``.
        codebook_size: ``N``; the index enumerates all ``N^M`` codes.
        interaction_units: hidden widths of the interaction ``f``.
        scorer: ``"mlp"`` or ``"attention"`` (see :class:`AllToAllInteraction`).
        sparsity_bias: ``b`` (<= 0).
        commitment_weight: ``beta``.
        num_negatives: shared in-batch negatives per row.
        warmup_examples: training examples on continuous tokens before quantization (the registry
            sets ``warmup_epochs`` x the training-split size).
        bias_anneal_examples: training examples over which the bias in use moves linearly from 0
            to ``sparsity_bias`` (the registry sets ``bias_anneal_epochs`` x the split size):
            starting at ``b < 0`` leaves ``ReLU(f + b)`` with no gradient and the model at zero.
        relu_leak: gradient let through the ReLU where ``f + b <= 0`` in training (values are
            unchanged, see :func:`~tfcs3.layers.all_to_all.sparse_sum`).
        quantize: ``False`` gives the unrestricted all-to-all scorer.
        codebook_decay, restart_threshold: :class:`ProductQuantizer` settings.
        **kwargs: :class:`TwoTowerModel` arguments (``tower``, ``embedding_dim``, ``hidden_units``,
            ``item_probability``, ``temperature``, ...).

    Example:
        >>> model = tfcs3.models.build_model("sparcode", data, sparsity_bias=-1.0)
        >>> tfcs3.training.train(model, data)
        >>> tfcs3.export.export_model(model, data, "exports", index="sparse_code")
    """

    is_dot = False

    def __init__(
        self,
        spec: FeatureSpec,
        num_query_tokens: int = 4,
        num_item_tokens: int = 2,
        token_dim: int = 32,
        num_codebooks: int = 2,
        codebook_size: int = 64,
        interaction_units: tuple[int, ...] | list[int] = (64, 64),
        scorer: str = "mlp",
        sparsity_bias: float = 0.0,
        commitment_weight: float = 0.25,
        num_negatives: int = 64,
        warmup_examples: int = 0,
        bias_anneal_examples: int = 0,
        relu_leak: float = 0.01,
        quantize: bool = True,
        codebook_decay: float = 0.99,
        restart_threshold: float = 1.0,
        **kwargs: Any,
    ):
        if kwargs.setdefault("mode", "retrieval") != "retrieval":
            raise ValueError(f"SparCode is a retrieval model; got mode={kwargs['mode']!r}")
        if scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {SCORERS}, got {scorer!r}")
        if sparsity_bias > 0:
            raise ValueError(f"sparsity_bias must be <= 0, got {sparsity_bias}")
        if token_dim % num_codebooks:
            raise ValueError(f"token_dim={token_dim} must be divisible by num_codebooks={num_codebooks}")
        self._tokens_args: dict[str, Any] = dict(
            num_query_tokens=int(num_query_tokens), num_item_tokens=int(num_item_tokens), token_dim=int(token_dim)
        )
        self._quantizer_args: dict[str, Any] | None = None
        if quantize:
            self._quantizer_args = dict(
                num_codebooks=num_codebooks,
                codebook_size=codebook_size,
                decay=codebook_decay,
                restart_threshold=restart_threshold,
            )
        if kwargs.get("mixed_negatives"):
            raise ValueError("SparCode's sampled softmax draws its negatives from the catalog only (mixed_negatives)")
        super().__init__(spec, **kwargs)
        self.hparams.update(
            num_query_tokens=int(num_query_tokens),
            num_item_tokens=int(num_item_tokens),
            token_dim=int(token_dim),
            num_codebooks=int(num_codebooks),
            codebook_size=int(codebook_size),
            interaction_units=[int(u) for u in interaction_units],
            scorer=scorer,
            sparsity_bias=float(sparsity_bias),
            commitment_weight=float(commitment_weight),
            num_negatives=int(num_negatives),
            warmup_examples=int(warmup_examples),
            bias_anneal_examples=int(bias_anneal_examples),
            relu_leak=float(relu_leak),
            quantize=bool(quantize),
        )
        self.interaction = AllToAllInteraction(interaction_units, scorer=scorer, name="all_to_all")
        self.interaction.build(
            (tf.TensorShape([None, num_query_tokens, token_dim]), tf.TensorShape([None, num_item_tokens, token_dim]))
        )
        self.examples_seen = tf.Variable(0.0, trainable=False, name="examples_seen")
        # The bias in use (0 -> sparsity_bias while annealing); scores, training and the index all
        # read it, so the index always equals the model.
        self.bias = tf.Variable(
            0.0 if bias_anneal_examples > 0 else float(sparsity_bias), trainable=False, name="sparsity_bias"
        )
        self.restarts = tf.Variable(0, trainable=False, name="codeword_restarts")
        if quantize:
            self.perplexity = tf_keras.metrics.Mean(name="code_perplexity")
        self.score_width = int(num_query_tokens) * max(int(u) for u in interaction_units)

    def build_towers(
        self,
        query_features: list[dict[str, Any]],
        candidate_features: list[dict[str, Any]],
        query_args: dict[str, Any],
        candidate_args: dict[str, Any],
    ) -> tuple[tf_keras.Model, tf_keras.Model]:
        t = self._tokens_args
        self.quantizer = None
        if self._quantizer_args is not None:
            self.quantizer = ProductQuantizer(**self._quantizer_args, name="codes")
            self.quantizer.build(tf.TensorShape([None, t["token_dim"]]))
        return (
            CodeTower(
                query_features,
                num_tokens=t["num_query_tokens"],
                token_dim=t["token_dim"],
                quantizer=self.quantizer,
                name="query_tower",
                **query_args,
            ),
            CodeTower(
                candidate_features,
                num_tokens=t["num_item_tokens"],
                token_dim=t["token_dim"],
                name="candidate_tower",
                **candidate_args,
            ),
        )

    # --- tokens, codes and scores --------------------------------------------------------------

    def _tokens(self, flat: tf.Tensor, count: str) -> tf.Tensor:
        return tf.reshape(flat, [-1, self.hparams[count], self.hparams["token_dim"]])

    def quantize_tokens(self, query_tokens: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(z_st [B, K_u, d], codes [B, K_u, M])`` of continuous tokens ``[B, K_u, d]``."""
        d = self.hparams["token_dim"]
        z_st, codes = self.quantizer(tf.reshape(query_tokens, [-1, d]))
        k = self.hparams["num_query_tokens"]
        return tf.reshape(z_st, [-1, k, d]), tf.reshape(codes, [-1, k, self.hparams["num_codebooks"]])

    def query_codes(self, query_repr: tf.Tensor) -> tf.Tensor:
        """Flat code ids ``[B, K_u]`` of query representations (quantized tokens: each sub-vector
        is a codeword, so its nearest codeword is itself)."""
        if self.quantizer is None:
            raise ValueError("an unquantized all-to-all model has no codes (quantize=False)")
        _, codes = self.quantize_tokens(self._tokens(query_repr, "num_query_tokens"))
        return self.quantizer.code_ids(codes)

    def _sum(self, token_scores: tf.Tensor, training: bool = False) -> tf.Tensor:
        return sparse_sum(token_scores, self.bias, axis=1, leak=self.hparams["relu_leak"] if training else 0.0)

    def score(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """All pairs ``[Q, C]``: ``sum_k ReLU(f(z_k, v) + b)``."""
        q = self._tokens(query_repr, "num_query_tokens")
        return self._sum(self.interaction.all_pairs(q, self._tokens(candidate_repr, "num_item_tokens")))

    def code_item_scores(self, candidate_repr: tf.Tensor, budget: int = 1 << 23) -> Iterator[np.ndarray]:
        """``ReLU(f(code, v) + b)`` of every code (in :meth:`~ProductQuantizer.all_codes` order)
        against every item of ``candidate_repr`` ``[C, K_i * d]``, as consecutive ``[block, C]``
        arrays, each block's ``[block, C, hidden]`` activations within ``budget`` floats."""
        if self.quantizer is None:
            raise ValueError("an unquantized all-to-all model has no codes (quantize=False)")
        items = self._tokens(tf.convert_to_tensor(candidate_repr), "num_item_tokens")
        tokens = self.quantizer.decode(tf.constant(self.quantizer.all_codes()))  # [N^M, d]
        step = max(1, budget // (int(items.shape[0]) * max(self.hparams["interaction_units"])))
        for lo in range(0, int(tokens.shape[0]), step):
            pairs = self.interaction.all_pairs(tokens[lo : lo + step, None, :], items)[:, 0]  # [block, C]
            yield tf.nn.relu(pairs + self.bias).numpy()

    def catalog_scorer(
        self, candidate_repr: tf.Tensor, num_queries: int | None = None, max_table_bytes: int = 1 << 30
    ) -> tuple[Callable[[tf.Tensor], tf.Tensor], int]:
        """``(queries -> score(queries, candidate_repr), floats per (query, item) pair)`` for one
        fixed catalog (evaluation sizes its blocks from the second).

        With codes, when ``num_queries`` (if given) query tokens outnumber the ``N^M`` codes and
        the table fits ``max_table_bytes``, every code's scores are computed once into a dense
        ``[N^M, C]`` table (the untruncated index, densely) and a query costs ``K_u`` row gathers
        instead of ``K_u x C`` network calls; exact, since quantized query tokens are codewords.
        Evaluation ranks large user sets this way. Otherwise it scores through the network.
        """
        k, n_items = self.hparams["num_query_tokens"], int(candidate_repr.shape[0])
        n_codes = self.quantizer.num_codes if self.quantizer is not None else 0
        fits = 0 < 4 * n_codes * n_items <= max_table_bytes
        if not fits or (num_queries is not None and num_queries * k <= n_codes):
            return (lambda queries: self.score(queries, candidate_repr)), self.score_width
        table = np.empty((n_codes, n_items), np.float32)
        row = 0
        for block in self.code_item_scores(candidate_repr):
            table[row : row + len(block)] = block
            row += len(block)
        table = tf.constant(table)
        return (lambda queries: tf.reduce_sum(tf.gather(table, self.query_codes(queries)), axis=1)), k

    def score_candidates(self, query_repr: tf.Tensor, candidate_repr: tf.Tensor) -> tf.Tensor:
        """Per-query lists: ``[B, K_u * d]`` x ``[B, C, K_i * d]`` -> ``[B, C]``."""
        q = self._tokens(query_repr, "num_query_tokens")
        shape = tf.concat([tf.shape(candidate_repr)[:2], [self.hparams["num_item_tokens"], -1]], axis=0)
        return self._sum(self.interaction.candidates(q, tf.reshape(candidate_repr, shape)))

    # --- training ------------------------------------------------------------------------------

    @property
    def scorer_variables(self) -> list[tf.Variable]:
        """Variables of the score outside the towers (the export tracks them)."""
        return [*self.interaction.variables, self.bias]

    def unsynchronized_state(self) -> list[str]:
        """The EMA codebooks, their restarts and the sparsity schedule's example counter are
        updated outside the gradients, from each replica's own rows."""
        return ["the EMA codebooks and the example counter"]

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        h = self.hparams
        z = self._tokens(self.query_model(features, training=training, continuous=True), "num_query_tokens")
        items = self._tokens(self.candidate_model(features, training=training), "num_item_tokens")
        batch = tf.cast(tf.shape(z)[0], tf.float32)
        tokens, commitment = z, tf.constant(0.0)
        if h["quantize"]:
            # Quantize after the warm-up; k-means initialisation on the first quantized batch.
            active = self.examples_seen >= float(h["warmup_examples"])
            flat_z = tf.reshape(z, [-1, h["token_dim"]])
            if training:
                tf.cond(
                    tf.logical_and(active, self.quantizer.initialized < 0.5),
                    lambda: self.quantizer.initialize(flat_z) or tf.constant(True),
                    lambda: tf.constant(False),
                )
            z_st, codes = self.quantize_tokens(z)
            flat_codes = tf.reshape(codes, [-1, h["num_codebooks"]])
            tokens = tf.where(active, z_st, z)
            commitment = tf.where(active, self.quantizer.commitment_loss(flat_z, flat_codes), 0.0)
        # The softmax loss is summed over the batch (TFRS's convention); the commitment is a mean.
        loss = self._sampled_softmax(tokens, items, features) + h["commitment_weight"] * commitment * batch
        if training:
            # State updates after the loss: the schedule, then the codebooks (EMA, restarts).
            self.examples_seen.assign_add(batch)
            anneal = float(max(h["bias_anneal_examples"], 1))
            self.bias.assign(h["sparsity_bias"] * tf.minimum(1.0, self.examples_seen / anneal))
            if h["quantize"]:
                restarted = tf.cond(active, lambda: self.quantizer.update(flat_z, flat_codes), lambda: tf.constant(0))
                self.restarts.assign_add(restarted)
                self.perplexity.update_state(self.quantizer.perplexity(flat_codes))
        return loss

    @property
    def supported_losses(self) -> tuple[str, ...]:
        return ("in_batch", "sampled_softmax")

    def _sampled_softmax(self, tokens: tf.Tensor, items: tf.Tensor, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """``in_batch``: the softmax over [own positive ; the batch's first ``num_negatives``
        candidates]; ``sampled_softmax``: over [own positive ; ``num_negatives`` items drawn from
        the catalog] (:mod:`~tfcs3.models.retrieval_loss`). Summed over the batch."""
        positive = self._sum(self.interaction((tokens, items), training=True), training=True)  # [B]
        if self.loss_name == "sampled_softmax":
            return self._catalog_negatives(tokens, positive, features)
        n = tf.minimum(tf.shape(items)[0], self.hparams["num_negatives"])
        negatives = self._sum(self.interaction.all_pairs(tokens, items[:n]), training=True)  # [B, n]
        logits = tf.concat([positive[:, None], negatives], axis=1) / self.hparams["temperature"]
        item_ids = tf.cast(features[self.spec.item_id], tf.int32)
        if self.use_logq:
            log_p = tf.math.log(tf.gather(self.item_probability, item_ids) + 1e-12)
            logits -= tf.concat([log_p[:, None], tf.broadcast_to(log_p[None, :n], tf.shape(negatives))], axis=1)
        if self.hparams["remove_accidental_hits"]:
            hit = tf.equal(item_ids[:, None], item_ids[None, :n])
            logits = tf.concat([logits[:, :1], tf.where(hit, logits.dtype.min, logits[:, 1:])], axis=1)
        return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.zeros_like(item_ids), logits))

    def _catalog_negatives(
        self, tokens: tf.Tensor, positive: tf.Tensor, features: Mapping[str, tf.Tensor]
    ) -> tf.Tensor:
        h = self.hparams
        vocab = len(self.spec.item_vocabulary)
        negatives, probability = retrieval_loss.sample_negatives(
            h["num_negatives"], vocab, h["negative_sampler"], self.item_probability
        )
        items = self._tokens(self.candidate_vectors(negatives, training=True), "num_item_tokens")
        negative_logits = self._sum(self.interaction.all_pairs(tokens, items), training=True)
        item_ids = tf.cast(features[self.spec.item_id], tf.int32)
        return retrieval_loss.sampled_softmax_from_logits(
            positive / h["temperature"],
            negative_logits / h["temperature"],
            item_ids,
            negatives,
            self.sampling_probability(item_ids),
            probability,
            self.known_items(features),
        )
