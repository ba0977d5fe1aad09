"""The TFRS two-tower baseline with DSSM or YouTubeDNN towers.

Towers:
    * ``dssm`` (Huang et al., CIKM 2013, as used in recommendation): query tower over the user's
      categorical features, candidate tower over the item's features; each is embeddings -> MLP.
    * ``youtubednn`` (Covington et al., RecSys 2016): the query tower also mean-pools the
      embeddings of the user's earlier items (the history feature).

Objectives:
    * ``retrieval``, by ``loss`` (:mod:`tfcs3.models.retrieval_loss`): ``in_batch`` (default),
      the softmax over ``s(u, i) = q_u . c_i / T`` against the batch's other positives with the
      logQ correction ``s - log p(i)`` (``p`` = training frequency of the item) and accidental-hit
      removal, via ``tfrs.tasks.Retrieval`` (Yi et al., RecSys 2019 for the correction);
      ``full_softmax``, the exact softmax over every item; ``sampled_softmax``, ``N`` shared
      negatives drawn uniformly or by popularity, logQ-corrected, the query's known positives
      removed, optionally mixed with the in-batch ones.
    * ``preranking``: pointwise BCE on labelled impressions, ``P(click) = sigmoid(q . c / T + b)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from tfcs3 import distribute
from tfcs3.data.features import SEQUENCE, FeatureSpec
from tfcs3.data.pipeline import LABEL, make_dataset
from tfcs3.data.prepared import PreparedData, Split
from tfcs3.models import retrieval_loss
from tfcs3.models.retriever import Retriever
from tfcs3.models.tower import Tower, feature_configs

TOWERS = ("dssm", "youtubednn")
MODES = ("retrieval", "preranking")


class TwoTowerModel(tfrs.Model, Retriever):
    """A dot-product two-tower model built from a :class:`FeatureSpec`.

    Args:
        spec: the dataset's features.
        tower: ``"dssm"`` (no history) or ``"youtubednn"`` (adds the masked mean of the history).
        mode: ``"retrieval"`` (in-batch softmax) or ``"preranking"`` (pointwise BCE).
        embedding_dim: width of the query and candidate representations (and feature embeddings).
        hidden_units: hidden layer widths of both towers.
        item_probability: training frequency of each item-vocabulary index, for logQ; ``None``
            disables the correction.
        temperature: softmax temperature ``T``.
        remove_accidental_hits: mask in-batch negatives that are the positive item.
        l2_normalize: cosine towers (use with a temperature below 1).
        dropout: dropout after hidden layers.
        embeddings_regularizer: L2 strength on embedding tables.
        loss: ``"in_batch"``, ``"full_softmax"`` or ``"sampled_softmax"`` (retrieval; see
            :mod:`tfcs3.models.retrieval_loss`).
        num_negatives: ``N``, the shared negatives of ``sampled_softmax``.
        negative_sampler: ``"uniform"`` or ``"popularity"`` (``sampled_softmax``).
        mixed_negatives: ``sampled_softmax`` also uses the batch's other positives as negatives.
        max_full_softmax_items: the largest item vocabulary ``full_softmax`` accepts.
        item_attributes: :func:`~tfcs3.models.tower.item_attribute_table` of the data, needed by
            ``full_softmax`` and ``sampled_softmax`` to run the candidate tower on any item.

    ``query_model`` maps query features to ``[batch, embedding_dim]``; ``candidate_model`` maps
    candidate features to ``[batch, embedding_dim]`` and never sees a query input; ``score`` is
    the dot product.

    Extension points for the mechanisms built on it: ``build_towers`` (other towers),
    ``tower_options`` (extra tower arguments, e.g. CS3's memories),
    ``auxiliary_loss`` (extra losses, e.g. DAT's mimic losses) and, for a score that is not a dot
    product, ``score`` / ``score_candidates`` with ``is_dot = False`` (e.g. IntTower's sum-max);
    training, evaluation and export then work unchanged. What the machinery asks of a model is a
    hook with a no-op default (``before_training``, ``has_memories`` / ``replay_memories``,
    ``start_online``, ``build_extras``, ``scorer_variables``, ``serving_tables``,
    ``catalog_scorer``, ``training_examples`` / ``training_dataset``, ``unsynchronized_state``):
    override what you need.

    Hyperparameters are the constructor's keyword arguments (a subclass's own plus, through
    ``**kwargs``, its bases'): the registry reads them from there
    (:mod:`tfcs3.models.builder`), so a new one is declared once, in ``__init__``.

    Example:
        >>> data = tfcs3.data.load_prepared("ml-100k")
        >>> model = TwoTowerModel(data.spec, tower="youtubednn")  # no logQ: no item frequencies given
        >>> tfcs3.training.train(model, data)
        >>> model = tfcs3.models.build_model("youtubednn", data)  # the registry adds logQ's frequencies
    """

    #: Base-class constructor arguments that are not hyperparameters of this class (it sets them
    #: itself, or they have no effect on it); :mod:`tfcs3.models.builder` leaves them out.
    excluded_hparams: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        spec: FeatureSpec,
        tower: str = "youtubednn",
        mode: str = "retrieval",
        embedding_dim: int = 64,
        hidden_units: Sequence[int] = (128,),
        item_probability: np.ndarray | None = None,
        temperature: float = 1.0,
        remove_accidental_hits: bool = True,
        l2_normalize: bool = False,
        dropout: float = 0.0,
        embeddings_regularizer: float = 0.0,
        loss: str = "in_batch",
        num_negatives: int = 256,
        negative_sampler: str = "uniform",
        mixed_negatives: bool = False,
        max_full_softmax_items: int = retrieval_loss.MAX_FULL_SOFTMAX_ITEMS,
        item_attributes: Mapping[str, np.ndarray] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if tower not in TOWERS:
            raise ValueError(f"tower must be one of {TOWERS}, got {tower!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        n_items = len(spec.item_vocabulary)
        _check_loss(loss, mode, num_negatives, negative_sampler, n_items, max_full_softmax_items, item_attributes)
        if loss not in self.supported_losses:
            raise ValueError(
                f"{type(self).__name__} trains with loss in {self.supported_losses}, got {loss!r} (full and "
                "sampled softmax need a dot-product score)"
            )
        if negative_sampler == "popularity" and item_probability is None:
            raise ValueError("negative_sampler='popularity' needs the items' training frequencies (logq=True)")
        self.spec = spec
        self.tower = tower
        self.mode = mode
        self.hparams: dict[str, Any] = dict(
            tower=tower,
            mode=mode,
            embedding_dim=int(embedding_dim),
            hidden_units=[int(u) for u in hidden_units],
            temperature=float(temperature),
            remove_accidental_hits=bool(remove_accidental_hits),
            l2_normalize=bool(l2_normalize),
            dropout=float(dropout),
            embeddings_regularizer=float(embeddings_regularizer),
        )
        if loss != "in_batch":
            self.hparams.update(loss=loss, max_full_softmax_items=int(max_full_softmax_items))
        if loss == "sampled_softmax":
            self.hparams.update(
                num_negatives=int(num_negatives),
                negative_sampler=negative_sampler,
                mixed_negatives=bool(mixed_negatives),
            )
        # Item-vocabulary index -> candidate features, to run the candidate tower on any item.
        self.item_table = {
            name: tf.Variable(table, trainable=False, name=f"item_table_{name}")
            for name, table in (item_attributes or {}).items()
        }
        # DSSM reads no history, so neither the sequences nor the features aligned with them.
        query_features = [f for f in spec.query if tower == "youtubednn" or (f.kind != SEQUENCE and not f.aligned_with)]
        tower_args = dict(
            embedding_dim=embedding_dim,
            hidden_units=hidden_units,
            output_dim=embedding_dim,
            dropout=dropout,
            l2_normalize=l2_normalize,
            embeddings_regularizer=embeddings_regularizer,
        )
        self.query_model, self.candidate_model = self.build_towers(
            feature_configs(query_features, n_items),
            feature_configs(spec.candidate, n_items),
            {**tower_args, **self.tower_options("query")},
            {**tower_args, **self.tower_options("candidate")},
        )

        self.use_logq = item_probability is not None
        if item_probability is not None:
            item_probability = np.asarray(item_probability, dtype=np.float32)
            if item_probability.shape != (n_items,):
                raise ValueError(
                    f"item_probability must have one entry per item-vocabulary index ({n_items}), "
                    f"got shape {item_probability.shape}"
                )
        self.item_probability = tf.Variable(
            np.zeros(n_items, np.float32) if item_probability is None else item_probability,
            trainable=False,
            name="item_probability",
        )
        if mode == "retrieval":
            self.task = tfrs.tasks.Retrieval(temperature=temperature, remove_accidental_hits=remove_accidental_hits)
        else:
            self.bias = tf.Variable(0.0, name="click_bias")
            self.task = tfrs.tasks.Ranking(
                loss=tf_keras.losses.BinaryCrossentropy(from_logits=True),
                metrics=[tf_keras.metrics.AUC(from_logits=True, name="auc")],
            )

    def tower_options(self, side: str) -> dict[str, Any]:
        """Extra constructor arguments of the ``"query"`` or ``"candidate"`` tower (none here;
        CS3 adds Cycle-Adaptive layers and memories this way, on any backbone)."""
        return {}

    def build_towers(
        self,
        query_features: list[dict[str, Any]],
        candidate_features: list[dict[str, Any]],
        query_args: dict[str, Any],
        candidate_args: dict[str, Any],
    ) -> tuple[tf_keras.Model, tf_keras.Model]:
        """The query and candidate towers; subclasses override this to change the towers."""
        return (
            Tower(query_features, name="query_tower", **query_args),
            Tower(candidate_features, name="candidate_tower", **candidate_args),
        )

    def auxiliary_loss(
        self, features: Mapping[str, tf.Tensor], q: tf.Tensor, c: tf.Tensor, positive: tf.Tensor
    ) -> tf.Tensor:
        """Extra training loss (none here), as a per-example mean; ``compute_loss`` scales it to the
        task loss's reduction (sum over the batch for retrieval, mean for pre-ranking), so its
        weights are relative to the per-example task loss. ``positive`` is 1.0 on rows whose
        (query, candidate) pair is a positive (every row for retrieval, label = 1 otherwise)."""
        return tf.constant(0.0)

    # --- Hooks: what training and online learning ask of a model (evaluation and export ask
    # for :class:`Retriever`'s). The defaults do nothing; a mechanism overrides the ones it
    # needs (CS3, FIT, SparCode). ---

    #: Under a strategy with several replicas, the softmax negatives are every replica's
    #: (in-batch candidates, sampled negatives); ``False`` keeps each replica's own (TFRS's
    #: behaviour). No effect on one device. Set by :func:`tfcs3.training.train`.
    global_negatives = True

    def unsynchronized_state(self) -> list[str]:
        """What the model updates outside its gradients that is not yet kept equal across
        replicas (EMA codebooks, memories, schedules): training refuses such a model under a
        strategy with several replicas. None here."""
        return []

    def before_training(self, data: PreparedData, seed: int = 0, verbose: int = 0, online: bool = False) -> None:
        """Called once before training (or online learning, ``online=True``) starts; CS3 fits its
        downstream ranker here."""

    @property
    def has_memories(self) -> bool:
        """True when each epoch must start by replaying the training stream in time order
        (:meth:`replay_memories`; CS3's CTS / CMS memories)."""
        return False

    def replay_memories(self, stream: Split, batch_size: int = 512) -> dict[str, np.ndarray]:
        """The per-epoch inputs of a model with memories: extra feature arrays, row-aligned with
        ``stream`` (the training split in time order), that the epoch trains on."""
        return {}

    def start_online(self) -> None:
        """Called before online learning's first step (CS3 empties its memories and writes them in
        every step)."""

    def build_extras(self, features: Mapping[str, tf.Tensor]) -> None:
        """Creates the variables one call on ``features`` leaves unbuilt (a CS3 ranker), so that
        restoring saved weights is complete."""

    def training_report(self) -> dict[str, Any]:
        """What the model measured about its own training, beyond the loss and the metrics, to be
        stored with a benchmark run (CS3: its ranker's validation AUC and time); empty here."""
        return {}

    def serving_tables(self) -> dict[str, tuple[tf.Tensor, str]]:
        """Per-id query-tower inputs an export freezes: ``{input key: (table, id feature)}``
        (memories, history item embeddings); serving gathers ``table[ids]`` under the key."""
        tower: Any = self.query_model
        return dict(tower.serving_tables())

    @property
    def query_feature_names(self) -> list[str]:
        return self.query_model.feature_names

    @property
    def candidate_feature_names(self) -> list[str]:
        return self.candidate_model.feature_names

    def call(self, features: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        """Per-example score of each (query, candidate) pair in ``features`` (logit of a click)."""
        q = self.query_model(features, training=training)
        c = self.candidate_model(features, training=training)
        return self._pair_logits(q, c)

    def _pair_logits(self, q: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        logit = self.score_pairs(q, c)
        if self.mode == "preranking":
            return logit / self.hparams["temperature"] + self.bias
        return logit

    @property
    def supported_losses(self) -> tuple[str, ...]:
        """The retrieval losses this model trains with: all of them for a dot-product score, the
        in-batch softmax otherwise (subclasses with a scorer of their own may add to it)."""
        return retrieval_loss.LOSSES if self.is_dot else ("in_batch",)

    @property
    def loss_name(self) -> str:
        """The retrieval loss: ``"in_batch"``, ``"full_softmax"`` or ``"sampled_softmax"``."""
        return self.hparams.get("loss", "in_batch")

    def candidate_vectors(self, item_ids: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        """The candidate tower on items given by item-vocabulary index, ``[...] -> [..., D]``
        (their features looked up in ``item_attributes``)."""
        if not self.item_table:
            raise ValueError(
                f"{type(self).__name__} was built without item_attributes: it cannot embed arbitrary items"
            )
        ids = tf.cast(item_ids, tf.int32)
        flat = tf.reshape(ids, [-1])
        rows = {name: tf.gather(table, flat) for name, table in self.item_table.items()}
        vectors = self.candidate_model(rows, training=training)
        return tf.reshape(vectors, tf.concat([tf.shape(ids), tf.shape(vectors)[-1:]], axis=0))

    def known_items(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """``[B, K]`` items each query row knows as positives (its history and its target; 0 pads),
        left out of ``sampled_softmax``'s negatives."""
        parts = [tf.cast(features[self.spec.item_id], tf.int32)[:, None]]
        parts += [tf.cast(features[f.name], tf.int32) for f in self.spec.sequence_features if f.name in features]
        return tf.concat(parts, axis=1)

    def retrieval_loss(
        self,
        q: tf.Tensor,
        c: tf.Tensor,
        item_ids: tf.Tensor,
        known: tf.Tensor | None = None,
        dropped: tf.Tensor | None = None,
    ) -> tf.Tensor:
        """The retrieval loss (``loss``) of queries ``q`` ``[R, D]`` whose positives are the items
        ``item_ids`` ``[R]`` with candidate representations ``c`` ``[R, D]``, summed over rows.
        ``known`` ``[R, K]``: each row's known positives, left out of the negatives (by every
        loss; the sequence models pass them for ``sampled_softmax`` and under
        :attr:`drops_known_items`); ``dropped`` ``[R, R]``: in-batch pairs to leave out
        (``in_batch``, :meth:`dropped_negatives`)."""
        item_ids = tf.cast(item_ids, tf.int32)
        temperature = self.hparams["temperature"]
        if self.loss_name == "full_softmax":
            table = self.candidate_vectors(tf.range(len(self.spec.item_vocabulary)), training=True)
            # With memories the batch's positives read their memories without their own writes,
            # which the table (final memories) still holds: their logits come from ``c``.
            own = c if self.has_memories else None
            return retrieval_loss.full_softmax_loss(q, table, item_ids, temperature, own, known)
        if self.loss_name == "sampled_softmax":
            return self._shared_negatives_softmax(q, c, item_ids, known)
        if dropped is None and known is not None:
            dropped = retrieval_loss.contains(known, item_ids)
        return self._in_batch_softmax(q, c, item_ids, dropped)

    def _shared_negatives_softmax(
        self, q: tf.Tensor, c: tf.Tensor, item_ids: tf.Tensor, known: tf.Tensor | None
    ) -> tf.Tensor:
        h = self.hparams
        vocab = len(self.spec.item_vocabulary)
        negatives, probability = retrieval_loss.sample_negatives(
            h["num_negatives"], vocab, h["negative_sampler"], self.item_probability
        )
        vectors = self.candidate_vectors(negatives, training=True)
        positive_probability = self.sampling_probability(item_ids)
        if h["mixed_negatives"]:
            # The batch's positives as more negatives: they come in by training frequency, so
            # their logQ term is the training frequency (as for the in-batch softmax).
            negatives = tf.concat([negatives, item_ids], axis=0)
            vectors = tf.concat([vectors, c], axis=0)
            probability = tf.concat([probability, tf.gather(self.item_probability, item_ids)], axis=0)
        if self.global_negatives:  # every replica's negatives (and positives, when mixed) are shared
            (vectors, negatives, probability), _ = distribute.gather_from_replicas([vectors, negatives, probability])
        return retrieval_loss.sampled_softmax_loss(
            q, c, item_ids, vectors, negatives, h["temperature"], positive_probability, probability, known
        )

    def sampling_probability(self, item_ids: tf.Tensor) -> tf.Tensor:
        """The probability with which ``negative_sampler`` draws each of ``item_ids`` (logQ)."""
        h = self.hparams
        vocab = len(self.spec.item_vocabulary)
        return retrieval_loss.sampling_probability(item_ids, vocab, h["negative_sampler"], self.item_probability)

    def _in_batch_softmax(
        self, q: tf.Tensor, c: tf.Tensor, item_ids: tf.Tensor, dropped: tf.Tensor | None = None
    ) -> tf.Tensor:
        """In-batch softmax with logQ correction and accidental-hit removal (summed over the batch).

        Dot models use ``tfrs.tasks.Retrieval``; other scorers, and every model under a strategy
        with :attr:`global_negatives`, get the same steps applied to ``score(q, c)``: divide by T,
        subtract log p(item), mask same-item negatives, softmax cross-entropy. Under a strategy
        the candidates are every replica's (:func:`tfcs3.distribute.gather_from_replicas`), and
        row ``r``'s positive is the candidate at this replica's offset plus ``r``.
        """
        replicated = self.global_negatives and distribute.replicas_in_sync() > 1
        if replicated and dropped is not None:
            raise ValueError(
                f"{type(self).__name__} leaves known in-batch pairs out of its softmax, which global negatives "
                "do not support yet: train it with global_negatives=False or on one replica"
            )
        offset = tf.constant(0, tf.int32)
        candidate_ids = item_ids
        if replicated:
            (c, candidate_ids), offset = distribute.gather_from_replicas([c, item_ids])
        probability = tf.gather(self.item_probability, candidate_ids) if self.use_logq else None
        hits = candidate_ids if self.hparams["remove_accidental_hits"] else None
        if self.is_dot and dropped is None and not replicated:
            return self.task(
                q, c, candidate_sampling_probability=probability, candidate_ids=hits, compute_metrics=False
            )
        scores = self.score(q, c) / self.hparams["temperature"]
        labels = tf.one_hot(offset + tf.range(tf.shape(scores)[0]), tf.shape(scores)[1])
        if probability is not None:
            scores = tfrs.layers.loss.SamplingProbablityCorrection()(scores, probability)
        if hits is not None:
            scores = tfrs.layers.loss.RemoveAccidentalHits()(labels, scores, hits)
        if dropped is not None:
            drop = tf.logical_and(dropped, tf.equal(labels, 0.0))
            scores = tf.where(drop, tf.cast(scores.dtype.min, scores.dtype), scores)
        loss = tf_keras.losses.CategoricalCrossentropy(from_logits=True, reduction=tf_keras.losses.Reduction.SUM)
        return loss(labels, scores)

    def training_dataset(self, split: Split, batch_size: int, seed: int, drop_remainder: bool) -> tf.data.Dataset:
        """The shuffled batches of one training run over ``split`` (the training split): here
        :meth:`training_examples` in random order (reshuffled every epoch)."""
        return make_dataset(
            self.training_examples(split), batch_size, shuffle=True, seed=seed, drop_remainder=drop_remainder
        )

    def training_examples(self, split: Split) -> Split:
        """The rows training iterates over, made from the training split (the split itself here;
        the sequence models keep one row per window of each user's sequence, for dense
        supervision)."""
        return split

    @property
    def drops_known_items(self) -> bool:
        """Whether the sequence models leave each position's known positives (its window's items)
        out of the negatives of every loss, not only of ``sampled_softmax`` (CS3 with memories:
        see :meth:`dropped_negatives`). False here."""
        return False

    def dropped_negatives(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor | None:
        """``[B, B]`` bool: in-batch (query r, candidate j) pairs to leave out of the softmax as
        negatives (besides same-item accidental hits); ``None`` keeps them all (the default)."""
        return None

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        q = self.query_model(features, training=training)
        c = self.candidate_model(features, training=training)
        return self.loss_from_representations(features, q, c)

    def train_step(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """TFRS's step, correct under a strategy (see :meth:`step_losses`)."""
        with tf.GradientTape() as tape:
            losses = self.step_losses(features)
        self.apply_step(tape, losses, self.trainable_variables)
        return self.step_logs(losses)

    def step_losses(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """This replica's ``loss``, ``regularization_loss`` and ``total_loss`` on ``features``,
        to be recorded under a gradient tape.

        The replicas' gradients are summed, so each replica counts its part of the global batch's
        loss (:meth:`replica_loss`) and ``1 / R`` of the regularization penalty. On one device
        they are TFRS's losses.
        """
        return self.replica_losses(self.replica_loss(self.compute_loss(features, training=True)), self.losses)

    @staticmethod
    def replica_losses(loss: tf.Tensor, penalties: Sequence[tf.Tensor]) -> dict[str, tf.Tensor]:
        """The logged losses of a step given this replica's task loss and the penalty terms."""
        share = distribute.replica_share(tf.reduce_sum([tf.reduce_sum(x) for x in penalties]))
        return {"loss": loss, "regularization_loss": share, "total_loss": loss + share}

    def apply_step(
        self, tape: tf.GradientTape, losses: Mapping[str, tf.Tensor], variables: Sequence[tf.Variable]
    ) -> None:
        """One optimizer update of ``variables`` along the gradient of ``losses["total_loss"]``."""
        gradients = tape.gradient(losses["total_loss"], variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))

    def step_logs(self, losses: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """What a step returns to Keras: the metrics' results and the losses (Keras sums what the
        replicas log, and each logs its part of the global batch's losses)."""
        return {**{metric.name: metric.result() for metric in self.metrics}, **losses}

    def replica_loss(self, loss: tf.Tensor) -> tf.Tensor:
        """This replica's part of the global batch's loss, given the loss of its rows: the
        replicas' gradients are summed, so a sum over rows (retrieval) stays as it is and a mean
        (pre-ranking) counts ``1 / R``. The same on one device."""
        return loss if self.mode == "retrieval" else distribute.replica_share(loss)

    def positive_mask(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """1.0 on rows whose (query, candidate) pair is a positive: every row in retrieval, the
        label in pre-ranking."""
        if self.mode == "preranking":
            if LABEL not in features:
                raise ValueError(f"pre-ranking batches need a {LABEL!r} entry")
            return tf.cast(features[LABEL], tf.float32)
        return tf.ones_like(features[self.spec.item_id], dtype=tf.float32)

    def loss_from_representations(self, features: Mapping[str, tf.Tensor], q: tf.Tensor, c: tf.Tensor) -> tf.Tensor:
        """The training loss of a batch given its query and candidate representations."""
        positive = self.positive_mask(features)
        if self.mode == "preranking":
            task_loss = self.task(labels=features[LABEL], predictions=self._pair_logits(q, c))
        else:
            item_ids = features[self.spec.item_id]
            known = self.known_items(features) if self.loss_name == "sampled_softmax" else None
            task_loss = self.retrieval_loss(q, c, item_ids, known, self.dropped_negatives(features))
        # The retrieval task sums its loss over the batch (TFRS's default), the ranking task
        # averages it; auxiliary losses are per-example means, scaled to match.
        scale = tf.reduce_sum(positive) if self.mode == "retrieval" else 1.0
        return task_loss + scale * self.auxiliary_loss(features, q, c, positive)

    def get_config(self) -> dict[str, Any]:
        return {"spec": self.spec.to_json(), "use_logq": self.use_logq, **self.hparams}


def _check_loss(
    loss: str,
    mode: str,
    num_negatives: int,
    sampler: str,
    n_items: int,
    max_full_softmax_items: int,
    item_attributes: Mapping[str, np.ndarray] | None,
) -> None:
    if loss not in retrieval_loss.LOSSES:
        raise ValueError(f"loss must be one of {retrieval_loss.LOSSES}, got {loss!r}")
    if loss == "in_batch":
        return
    if mode != "retrieval":
        raise ValueError(f"loss={loss!r} is a retrieval loss; pre-ranking trains on labelled impressions (BCE)")
    if item_attributes is None:
        raise ValueError(f"loss={loss!r} needs item_attributes (tfcs3.models.item_attribute_table(data))")
    if loss == "full_softmax" and n_items > max_full_softmax_items:
        raise ValueError(
            f"loss='full_softmax' scores all {n_items:,} items at every step, more than max_full_softmax_items="
            f"{max_full_softmax_items:,}: use loss='sampled_softmax' (num_negatives=...), or raise the limit"
        )
    if loss == "sampled_softmax":
        if num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got {num_negatives}")
        if sampler not in retrieval_loss.SAMPLERS:
            raise ValueError(f"negative_sampler must be one of {retrieval_loss.SAMPLERS}, got {sampler!r}")
