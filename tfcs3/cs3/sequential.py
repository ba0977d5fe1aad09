"""CS3 on a sequence backbone (SASRec): the memories read per supervised position."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.cs3.model import CS3Mixin
from tfcs3.data.dense import dense_split
from tfcs3.data.features import FeatureSpec
from tfcs3.data.prepared import PreparedData, Split
from tfcs3.models.sequential import SequentialModel


class CS3Sequential(CS3Mixin, SequentialModel):
    """CS3 on a sequence backbone (registered as ``cs3_sasrec``), trained with dense supervision.

    * CAS: both dense layers of every SASRec block's feed-forward network become Cycle-Adaptive
      blocks (the item side has no dense layer: ``cas="both"`` and ``"user"`` are the same here).
    * CTS / CMS: the user's memories join the query tower and the item's memories the candidate
      tower as :class:`~tfcs3.models.sequential.SideVectors` (the history keeps reading the item
      embeddings alone). The replay streams the training rows in time order as for any backbone
      (each row's query is the last position of its history); every supervised position of a
      training window then reads the memory inputs of the row whose target it predicts
      (:func:`~tfcs3.data.dense.dense_split` with ``per_position``): its user's memories from
      before that row, its next item's final memory without that row's write. So no position
      reads a memory that holds its own label or a later one of its window.
    * Known positives: with ``drop_known_positives`` every loss leaves all the user's training
      items out of each position's negatives (their item memories hold this user), and the full
      softmax takes the positive's logit from its own memory read, not from the final memory in
      the catalog table.

    Online learning (:mod:`tfcs3.online`) is not supported on this backbone yet. A repeated
    (user, item) pair keeps the user's other writes to that item in the positive's memory (only
    the row's own write is removed); the MovieLens and Amazon data have no repeats.

    Example:
        >>> model = tfcs3.models.build_model("cs3_sasrec", data, cms=False)
        >>> tfcs3.training.train(model, data, learning_rate=3e-3, batch_size=128)
    """

    def __init__(self, spec: FeatureSpec, **kwargs: Any):
        super().__init__(spec, **kwargs)
        self._user_items: tf.Tensor | None = None  # set by before_training

    @property
    def drops_known_items(self) -> bool:
        return self.has_memories and bool(self.hparams["drop_known_positives"])

    def before_training(self, data: PreparedData, seed: int = 0, verbose: int = 0, online: bool = False) -> None:
        """:meth:`CS3Mixin.before_training`, plus every user's training items as a ``[users, K]``
        table (0 pads) for :meth:`position_known_items`."""
        super().before_training(data, seed=seed, verbose=verbose, online=online)
        if not self.drops_known_items or self._known_pairs is None:
            return
        pairs = self._known_pairs.numpy()  # sorted user * V + item, from CS3Mixin.before_training
        owner, item = np.divmod(pairs, len(self.spec.item_vocabulary))
        user_vocabulary = self.spec.feature(self.spec.user_id).vocabulary
        assert user_vocabulary is not None
        counts = np.bincount(owner, minlength=len(user_vocabulary))
        table = np.zeros((len(counts), max(1, int(counts.max()))), np.int32)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        table[owner, np.arange(len(pairs)) - starts[owner]] = item
        self._user_items = tf.constant(table)

    def position_known_items(
        self, features: Mapping[str, tf.Tensor], rows: tf.Tensor | None, following: tf.Tensor | None
    ) -> tf.Tensor:
        """The window's items and every other training item of the position's user: each of them
        holds this user's writes in its final memory, so as a negative it would teach the towers
        to read the memories backwards (see :meth:`CS3Mixin.dropped_negatives`)."""
        window = super().position_known_items(features, rows, following)
        if self._user_items is None:
            return window
        users = tf.cast(features[self.spec.user_id], tf.int32)
        users = users if rows is None else tf.gather(users, rows)
        return tf.concat([window, tf.gather(self._user_items, users)], axis=1)

    def start_online(self) -> None:
        raise ValueError(
            f"{type(self).__name__} does not learn online yet (its memories would need per-position writes); "
            "use cs3_youtubednn for online learning"
        )

    def training_examples(self, split: Split) -> Split:
        """Dense windows as for the backbone; a replayed stream (time order, with memory inputs)
        is first grouped back by user (a stable sort keeps each user's rows in time order) and
        its memory inputs become per-position features."""
        towers = (self.query_model, self.candidate_model)
        keys = [
            t.memory_input_key(name)
            for t in towers
            for name in t.memories
            if t.memory_input_key(name) in split.features
        ]
        if not keys or not self.hparams["dense"]:
            return super().training_examples(split)
        grouped = split.subset(np.argsort(split.users, kind="stable"))
        return dense_split(grouped, self.spec.sequence_features[0].name, self.spec.item_id, per_position=keys)

    def replay_memories(self, stream: Split, batch_size: int = 512) -> dict[str, np.ndarray]:
        """:meth:`CS3Mixin.replay_memories`, with each row's query taken from the training windows:
        the row's query before its side vectors is the encoder output of the window position that
        predicts the row's item (the query that position trains), computed for every window at
        once instead of once per row; a user's first row (no window position predicts it) runs the
        encoder on its own (empty) history. Running SASRec on every row's own history made the
        replay 50 times a training epoch's forward pass (302 s an epoch on MovieLens-100K)."""
        stream = dataclasses.replace(
            stream, features={**stream.features, self.query_model.base_key: self._row_queries(stream, batch_size)}
        )
        return super().replay_memories(stream, batch_size)

    def _row_queries(self, stream: Split, batch_size: int) -> np.ndarray:
        """:meth:`SequenceQueryTower.base_outputs` for every row of ``stream``, ``[N, D]`` (see
        :meth:`replay_memories`)."""
        tower = self.query_model
        order = np.argsort(stream.users, kind="stable")
        grouped = stream.subset(order)
        grouped.features["row"] = order[:, None] + 1  # 0 marks a padding position
        windows = dense_split(grouped, self.spec.sequence_features[0].name, self.spec.item_id, ["row"])
        rows = windows.features.pop("row")[..., 0] - 1
        out = np.zeros((len(stream), self.hparams["embedding_dim"]), np.float32)
        done = np.zeros(len(stream), bool)
        features = {k: v for k, v in windows.features.items() if k in tower.feature_names}
        for start in range(0, len(windows), batch_size):
            batch = {k: tf.constant(v[start : start + batch_size]) for k, v in features.items()}
            h = tower.base_outputs(batch, training=False).numpy()
            real = rows[start : start + batch_size] >= 0
            out[rows[start : start + batch_size][real]] = h[real]
            done[rows[start : start + batch_size][real]] = True
        rest = np.flatnonzero(~done)
        for start in range(0, len(rest), batch_size):
            part = rest[start : start + batch_size]
            batch = {k: tf.constant(stream.features[k][part]) for k in tower.feature_names}
            out[part] = tower.base_outputs(batch, training=False).numpy()[:, -1]
        return out

    def train_step(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The backbone's dense step on the towers (the ranker stays frozen)."""
        with tf.GradientTape() as tape:
            losses = self.step_losses(features)
        self.apply_step(tape, losses, self._tower_variables())
        return self.step_logs(losses)
