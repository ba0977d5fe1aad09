"""The downstream ranking model whose penultimate layer CS3's Cascade-Model Sharing reads.

CS3's Cascade-Model Sharing keeps per-user and per-item EMA memories ``s_u``, ``s_v`` of
``h_uv``, the penultimate fully connected layer of the cascade's *ranking* model for the pair
``(u, v)``, and feeds them to the two towers as extra inputs. That only adds information if the
ranker sees what a two-tower cannot: features that mix the user and the item before any tower
has reduced them to a vector. This ranker therefore scores one (user, item) pair at a time from

* one embedding per feature (multi-valued features mean-pooled over non-padding ids);
* target attention over the user's history, with the candidate item as the query;
* hashed user x item cross features;

and passes them through a DNN or a DCN-v2 network. ``penultimate`` returns the activations CMS
stores; ``call`` returns the click logit.

Input vector (all embeddings have width ``d = embedding_dim``)::

    x0 = concat( e_f         for every non-sequence feature f except the item id (spec order),
                 t           the item-id embedding,
                 a_s         the target-attention pool of every sequence (history) feature s,
                 e_(p, q)    for every cross pair (p, q) )                    # [B, D]

* Categorical and multi-valued features: :class:`~tfcs3.layers.FeatureEmbedding`. The item id
  has its own table ``E_item``, shared with the history, because history entries are item ids.
* Target attention (DIN-style, Zhou et al., KDD 2018, here with scaled dot-product scores)::

      t = E_item[item_id]                                          # [B, d]
      h_l = E_item[history_l]                                      # [B, L, d]
      w_l = softmax_{l: history_l != 0}( <h_l, t> / sqrt(d) )      # padding positions get 0
      a = sum_l w_l h_l                                            # [B, d]; zeros if all padding

* Cross features: for every pair (``p`` = a categorical query feature other than the user id,
  ``q`` = a categorical or multi-valued candidate feature other than the item id)::

      bucket = (x_p * |V_q| + x_q) mod cross_buckets
      e_(p, q) = E_(p, q)[bucket]          (multi-valued q: mean over the non-padding x_q[t])

  The pair's table has ``min(cross_buckets, |V_p| * |V_q|)`` rows: when the full product fits,
  no two value pairs collide. Datasets with ids only have no pairs; the ranker still works.

Networks (``h_0`` is the input of the hidden stack)::

    dnn: h_0 = x0
    dcn: x_{l+1} = x0 * (W_l x_l + b_l) + x_l   for l < num_cross_layers   (DCN-v2, Wang et al.,
         WWW 2021, tfrs.layers.dcn.Cross, stacked);  h_0 = x_L
    h_{k+1} = dropout(relu(V_k h_k + c_k))     for each of hidden_units
    penultimate = h_K                          # [B, hidden_units[-1]]
    logit = w . h_K + b                        # [B]

Losses:

* ``preranking``: binary cross-entropy of ``sigmoid(logit)`` against ``features["label"]``.
* ``retrieval`` (rows are positive pairs, no labels): each row is a positive, and its user is
  also paired with the candidate features of the rows ``k = 1 .. num_negatives`` positions away
  (every candidate tensor rolled along the batch) as negatives; BCE with labels 1 / 0. A
  negative whose item id equals the row's own item (an accidental hit), or a shift ``k`` not
  below the batch size (the pair would repeat), gets weight 0. Validation uses the same
  deterministic construction, so the AUC it reports is "positive vs in-batch negatives".

Both modes track ``auc`` (so ``fit`` reports ``val_auc``). :func:`fit_ranker` trains on the
training split with early stopping on validation AUC.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from tfcs3.data.features import CATEGORICAL, MULTI, SEQUENCE, Feature, FeatureSpec
from tfcs3.data.pipeline import LABEL, make_dataset, split_arrays
from tfcs3.data.prepared import PreparedData, Split
from tfcs3.layers import FeatureEmbedding
from tfcs3.layers.hashed_cross import HashedCrossEmbedding
from tfcs3.layers.target_attention import TargetAttention
from tfcs3.models.tower import feature_configs

KINDS = ("dnn", "dcn")
#: Prefix of the candidate features of sampled negatives a retrieval batch may carry.
NEGATIVES = "_negative/"
MODES = ("retrieval", "preranking")


def cross_pairs(spec: FeatureSpec) -> list[tuple[Feature, Feature]]:
    """The (query, candidate) feature pairs the ranker crosses: categorical query features other
    than the user id, times categorical or multi-valued candidate features other than the item id."""
    query = [f for f in spec.query if f.kind == CATEGORICAL and f.name != spec.user_id]
    candidate = [f for f in spec.candidate if f.kind in (CATEGORICAL, MULTI) and f.name != spec.item_id]
    return [(p, q) for p in query for q in candidate]


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class Ranker(tfrs.Model):
    """A DNN or DCN-v2 ranking model over one (user, item) pair per row (see the module docstring).

    Args:
        spec: the dataset's features.
        kind: ``"dnn"`` (MLP on the input vector) or ``"dcn"`` (DCN-v2 cross layers, then the MLP).
        mode: ``"preranking"`` (BCE on labelled impressions) or ``"retrieval"`` (BCE with rolled
            in-batch negatives).
        embedding_dim: width ``d`` of every embedding.
        hidden_units: widths of the hidden ReLU layers; the last one is the penultimate layer that
            CMS reads (non-empty).
        num_cross_layers: cross layers of the ``dcn`` kind (>= 1; ignored by ``dnn``).
        num_negatives: rolled negatives per positive in ``retrieval`` mode (>= 1).
        cross_buckets: hash buckets per cross pair.
        dropout: dropout rate after each hidden layer (training only).

    Input: the feature dictionary of a prepared split: every query feature (categoricals
    ``[B]``, the history ``[B, L]`` of item-vocabulary ids, left-padded with 0) and every
    candidate feature (``[B]`` or ``[B, len]``), plus ``"label"`` ``[B]`` for pre-ranking losses.

    Example:
        >>> ranker = Ranker(data.spec, kind="dcn", mode="preranking")
        >>> fit_ranker(ranker, data)
        >>> h = ranker.penultimate(batch)  # [B, ranker.output_dim], what CMS stores
    """

    def __init__(
        self,
        spec: FeatureSpec,
        kind: str = "dcn",
        mode: str = "preranking",
        embedding_dim: int = 16,
        hidden_units: Sequence[int] = (128, 64),
        num_cross_layers: int = 2,
        num_negatives: int = 4,
        cross_buckets: int = 10007,
        dropout: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        hidden_units = [int(u) for u in hidden_units]
        if not hidden_units or min(hidden_units) < 1:
            raise ValueError(f"hidden_units must be a non-empty list of positive widths, got {hidden_units}")
        if kind == "dcn" and num_cross_layers < 1:
            raise ValueError(f"the dcn kind needs num_cross_layers >= 1, got {num_cross_layers}")
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        if cross_buckets < 1:
            raise ValueError(f"cross_buckets must be >= 1, got {cross_buckets}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.spec = spec
        self.kind = kind
        self.mode = mode
        self.hparams: dict[str, Any] = dict(
            kind=kind,
            mode=mode,
            embedding_dim=int(embedding_dim),
            hidden_units=hidden_units,
            num_cross_layers=int(num_cross_layers),
            num_negatives=int(num_negatives),
            cross_buckets=int(cross_buckets),
            dropout=float(dropout),
        )
        n_items = len(spec.item_vocabulary)
        self.query_names = [f.name for f in spec.query]
        self.candidate_names = [f.name for f in spec.candidate]
        self.sequence_names = [f.name for f in spec.sequence_features]

        # History entries and the target are item ids: one table for both.
        self.item_embedding = tf_keras.layers.Embedding(n_items, embedding_dim, name="item_id_embedding")
        plain = [f for f in spec.query if f.kind != SEQUENCE] + [f for f in spec.candidate if f.name != spec.item_id]
        self.feature_embedding = (
            FeatureEmbedding(feature_configs(plain, n_items), embedding_dim, name="feature_embedding")
            if plain
            else None
        )
        self.attention = TargetAttention(name="target_attention")
        self.crosses = [
            HashedCrossEmbedding(
                p.name,
                q.name,
                q.kind,
                len(p.vocabulary or ()),
                len(q.vocabulary or ()),
                cross_buckets,
                embedding_dim,
                name=f"cross_{p.name}_x_{q.name}",
            )
            for p, q in cross_pairs(spec)
        ]
        self.cross_layers = (
            [tfrs.layers.dcn.Cross(name=f"dcn_cross_{i}") for i in range(num_cross_layers)] if kind == "dcn" else []
        )
        self.hidden_layers = [
            tf_keras.layers.Dense(u, activation="relu", name=f"hidden_{i}") for i, u in enumerate(hidden_units)
        ]
        self.dropout_layer = tf_keras.layers.Dropout(dropout) if dropout else None
        self.logit_layer = tf_keras.layers.Dense(1, name="logit")
        self.task = tfrs.tasks.Ranking(
            loss=tf_keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[tf_keras.metrics.AUC(from_logits=True, name="auc")],
        )

    @property
    def output_dim(self) -> int:
        """Width of :meth:`penultimate`'s output (``hidden_units[-1]``)."""
        return self.hparams["hidden_units"][-1]

    @property
    def cross_feature_pairs(self) -> list[tuple[str, str]]:
        """The (query feature, candidate feature) names that are crossed."""
        return [(c.query_feature, c.candidate_feature) for c in self.crosses]

    def _check_inputs(self, features: Mapping[str, tf.Tensor]) -> None:
        missing = [n for n in self.query_names + self.candidate_names if n not in features]
        if missing:
            raise ValueError(
                f"{self.name}: missing input feature(s) {missing}; got {sorted(features)}, "
                f"expected {self.query_names + self.candidate_names}"
            )

    def input_vector(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """``x0``: feature embeddings, target-attention pools and cross embeddings, ``[B, D]``."""
        self._check_inputs(features)
        target = self.item_embedding(tf.cast(features[self.spec.item_id], tf.int32))
        parts = [] if self.feature_embedding is None else [self.feature_embedding(features)]
        parts.append(target)
        for name in self.sequence_names:
            ids = tf.cast(features[name], tf.int32)
            if ids.shape.rank is not None and ids.shape.rank != 2:
                raise ValueError(f"{self.name}: sequence feature {name!r} must have rank 2, got shape {ids.shape}")
            parts.append(self.attention((self.item_embedding(ids), ids, target)))
        parts.extend(cross(features) for cross in self.crosses)
        return tf.concat(parts, axis=-1)

    def penultimate(self, features: Mapping[str, tf.Tensor], training: bool | None = False) -> tf.Tensor:
        """The last hidden ReLU layer's output ``h_K``, ``[B, output_dim]``: what CMS stores."""
        x0 = self.input_vector(features)
        x = x0
        for layer in self.cross_layers:
            x = layer(x0, x)
        for layer in self.hidden_layers:
            x = layer(x)
            if self.dropout_layer is not None:
                x = self.dropout_layer(x, training=training)
        return x

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """Click logit of each row's (user, item) pair, ``[B]``."""
        return self.logit_layer(self.penultimate(features, training=training))[:, 0]

    def retrieval_pairs(self, features: Mapping[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], tf.Tensor, tf.Tensor]:
        """The retrieval-mode training pairs of a batch of positives.

        Returns:
            ``(pairs, labels, weights)``: ``pairs`` holds the query features repeated
            ``num_negatives + 1`` times and the candidate features rolled by ``0, 1, ...,
            num_negatives`` rows (``[(K + 1) B, ...]``); ``labels`` is 1 for the first ``B`` rows
            and 0 after; ``weights`` is 0 for accidental hits (same item id) and for shifts
            ``k >= B``, else 1.

        When the batch carries ``NEGATIVES + name`` entries (``[K B, ...]`` candidate features,
        block ``k`` paired with the batch's users), those are the negatives instead of rolled rows.
        """
        self._check_inputs(features)
        k_max = self.hparams["num_negatives"]
        pairs = {n: tf.concat([features[n]] * (k_max + 1), axis=0) for n in self.query_names}
        if NEGATIVES + self.spec.item_id in features:  # sampled negatives supplied with the batch
            for n in self.candidate_names:
                pairs[n] = tf.concat([features[n], features[NEGATIVES + n]], axis=0)
            item = features[self.spec.item_id]
            positive = tf.ones_like(item, dtype=tf.float32)
            sampled = features[NEGATIVES + self.spec.item_id]
            distinct = tf.cast(tf.not_equal(sampled, tf.tile(item, [k_max])), tf.float32)
            labels = tf.concat([positive, tf.zeros_like(distinct)], axis=0)
            return pairs, labels, tf.concat([positive, distinct], axis=0)
        shifts = range(1, k_max + 1)
        for n in self.candidate_names:
            pairs[n] = tf.concat([features[n]] + [tf.roll(features[n], k, axis=0) for k in shifts], axis=0)
        item = features[self.spec.item_id]
        batch = tf.shape(item)[0]
        positive = tf.ones_like(item, dtype=tf.float32)
        weights = [positive]
        for k in shifts:
            distinct = tf.cast(tf.not_equal(tf.roll(item, k, axis=0), item), tf.float32)
            weights.append(distinct * tf.cast(k < batch, tf.float32))
        labels = tf.concat([positive, tf.zeros([k_max * batch], tf.float32)], axis=0)
        return pairs, labels, tf.concat(weights, axis=0)

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Pre-ranking: BCE on ``features["label"]``. Retrieval: BCE of each row (label 1) and its
        rolled negatives (label 0; accidental hits weighted 0). Updates the ``auc`` metric."""
        if self.mode == "preranking":
            if LABEL not in features:
                raise ValueError(f"{self.name}: pre-ranking batches need a {LABEL!r} entry; got {sorted(features)}")
            logits = self(features, training=training)
            labels = tf.cast(features[LABEL], tf.float32)
            weights = None
        else:
            pairs, labels, weights = self.retrieval_pairs(features)
            logits = self(pairs, training=training)
            weights = weights[:, None]
        return self.task(labels=labels[:, None], predictions=logits[:, None], sample_weight=weights)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments: ``Ranker(spec, **{k: v for k, v in config.items() if k != "spec"})``
        (or :meth:`from_config`) rebuilds the same architecture."""
        return {"spec": self.spec.to_json(), **self.hparams}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Ranker:
        config = dict(config)
        spec = config.pop("spec")
        return cls(FeatureSpec.from_json(spec) if isinstance(spec, str) else spec, **config)


def fit_ranker(
    ranker: Ranker,
    data: PreparedData,
    epochs: int = 10,
    batch_size: int = 512,
    learning_rate: float = 1e-3,
    patience: int = 2,
    seed: int = 0,
    verbose: int = 0,
) -> dict[str, Any]:
    """Trains ``ranker`` on ``data.train`` with Adam, early stopping on validation AUC.

    The best epoch's weights are restored at the end. Seeds TensorFlow, NumPy and Python first,
    so a ranker that has not been called yet gets reproducible initial weights.

    Args:
        ranker: the model; its ``mode`` must equal ``data.protocol``.
        data: the prepared dataset.
        epochs: the most epochs to run.
        batch_size: examples per step (retrieval: also the pool of rolled negatives).
        learning_rate: Adam learning rate.
        patience: epochs without a validation AUC improvement before stopping.
        seed: random seed (initialisation, dropout, shuffle order).
        verbose: Keras verbosity.

    Returns:
        ``{"best_epoch"`` (1-based), ``"validation_auc"`` (at the best epoch), ``"epochs_run"``,
        ``"train_seconds"``, ``"history"`` (per-epoch logs)``}``.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if ranker.mode != data.protocol:
        raise ValueError(
            f"a {ranker.mode!r} ranker cannot be trained on {data.protocol!r} data; "
            f"build it with mode={data.protocol!r}"
        )
    tf_keras.utils.set_random_seed(seed)
    ranker.compile(optimizer=tf_keras.optimizers.Adam(learning_rate))
    train_ds = make_dataset(data.train, batch_size, shuffle=True, seed=seed)
    val_ds = make_dataset(data.validation, batch_size)
    stopper = tf_keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=patience, restore_best_weights=True
    )
    start = time.time()
    history = ranker.fit(train_ds, validation_data=val_ds, epochs=epochs, callbacks=[stopper], verbose=verbose)
    seconds = time.time() - start
    best = float(stopper.best)
    return {
        "best_epoch": int(stopper.best_epoch) + 1,
        "validation_auc": best if math.isfinite(best) else float("nan"),
        "epochs_run": len(history.history.get("loss", [])),
        "train_seconds": seconds,
        "history": {k: [float(x) for x in v] for k, v in history.history.items()},
    }


__all__ = ["KINDS", "MODES", "NEGATIVES", "Ranker", "cross_pairs", "fit_ranker", "learn_ranker_online"]


def learn_ranker_online(
    ranker: Ranker, stream: Split, batch_size: int = 512, learning_rate: float = 1e-3, seed: int = 0
) -> np.ndarray:
    """One time-ordered pass: each batch's penultimate activations are taken *before* the ranker
    learns from that batch (predict, then learn), as a ranker trained online would hand them over.

    In retrieval mode the negatives of each batch are sampled from all the stream's rows
    (popularity-distributed), not rolled within the time-ordered batch.

    This is what CMS stores offline: a ranker fitted on the whole training split would produce
    ``h_uv`` for training pairs from weights that had already learned those very labels (its user
    and item embeddings encode them), and the two-tower would learn to read the labels back from
    its memories, which evaluation pairs never allow.

    Args:
        ranker: the model (its ``mode`` must match the stream's rows: labels for pre-ranking).
        stream: the training split in time order.
        batch_size: rows per step.
        learning_rate: Adam learning rate.
        seed: random seed.

    Returns:
        ``[len(stream), ranker.output_dim]`` float32, in the stream's row order.
    """
    tf_keras.utils.set_random_seed(seed)
    ranker.compile(optimizer=tf_keras.optimizers.Adam(learning_rate))
    tensors = split_arrays(stream)
    penultimate = tf.function(lambda b: ranker.penultimate(b, training=False), reduce_retracing=True)
    learn = tf.function(ranker.train_step, reduce_retracing=True)
    rng = np.random.default_rng(seed)
    candidates = [f.name for f in ranker.spec.candidate]
    out = []
    for start in range(0, len(stream), batch_size):
        batch = {k: tf.constant(v[start : start + batch_size]) for k, v in tensors.items()}
        out.append(penultimate(batch).numpy())
        if ranker.mode == "retrieval":
            # A time-ordered batch is mostly one user's session, so rolled rows would be that
            # user's other positives: sample negatives from all training rows (by popularity).
            rows = rng.integers(len(stream), size=ranker.hparams["num_negatives"] * len(out[-1]))
            batch.update({NEGATIVES + n: tf.constant(stream.features[n][rows]) for n in candidates})
        learn(batch)
    return np.concatenate(out) if out else np.zeros((0, ranker.output_dim), np.float32)
