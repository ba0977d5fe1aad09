"""CS3: Cycle-Adaptive Structure, Cross-Tower Synchronization and Cascade-Model Sharing on any
dot-product backbone.

Wang et al., "Efficient Online Capability Synergy for Two-Tower Recommendation", arXiv 2604.19269
(2026). The three mechanisms (see the layer modules for the equations):

* CAS (:mod:`tfcs3.cs3.cycle_adaptive`): every dense layer of a tower becomes a gated
  self-revising block, in both towers (``cas="both"``, the offline setting) or the user tower
  only (``cas="user"``, the paper's online setting).
* CTS (:mod:`tfcs3.cs3.cross_tower_sync`): per-user and per-item EMA memories (``alpha``) of
  the other tower's outputs on positives, joined to each tower's input.
* CMS (:mod:`tfcs3.cs3.cascade_sharing`): per-user and per-item EMA memories (``beta``) of a
  downstream ranker's penultimate activations on every logged sample, joined likewise. The
  ranker (:class:`~tfcs3.cs3.ranker.Ranker`, DCN-v2 by default) learns the training split in
  one time-ordered predict-then-learn pass before the two-tower model trains, and every row's
  activations are taken before the ranker learned that row (a ranker fitted on the whole split
  hands back the training labels through its embeddings: on MovieLens-100K that took NDCG@10 from
  0.066 to 0.036); it is frozen afterwards and its weights are saved with the model.

Forward pass (the backbone's loss and score are unchanged)::

    u = UserTower([user features; c_u; s_u])     v = ItemTower([item features; c_v; s_v])
    score = <u, v>,  loss = the backbone's loss (in-batch softmax with logQ, or BCE)
    after the optimizer step:  c_u, c_v <- EMA on positives;  s_u, s_v <- EMA of h_uv on every row

The item side reads only item-keyed inputs, so the catalog is still embedded once and indexed
(brute force or ScaNN); the memories are non-trainable weights of the towers, so they are saved,
restored and exported with the model.

INTERPRETATIONS where the paper leaves a choice open, recorded here:

* Read before write: a batch's forward pass and loss use the memories as they were before the
  batch, then the memories take the batch's updates (in batch order, duplicates applied one after
  another), so no label reaches its own prediction.
* Offline training replays the stream. At the start of every epoch the training split is streamed
  in global time order through the current towers (no gradients), from zeroed memories, batch by
  batch, read before write (:meth:`CS3Mixin.replay_memories`). Each row then gets, as inputs for
  this epoch, its user-side memories as they were before its batch (causal, like the history
  feature) and its item-side memories as they ended with the row's own write removed exactly
  (every candidate of a shuffled batch is thus read at the same time, as at evaluation; causal
  item reads would date each row and let the towers match the positive by date). The epoch trains
  on the shuffled rows with those inputs, so SGD keeps its shuffling and no label reaches its own
  input (a second pass over live memories would leak: they would already hold each row's own
  positive). Validation, test and export read the memories as that replay left them (built with
  the weights the epoch started from, the representation space the towers were trained to read),
  frozen; this mirrors production, where memories lag the model by one sync. :mod:`tfcs3.online`
  instead trains one pass in time order and keeps updating them prequentially.
* Each memory read passes through a LayerNormalization before it joins the tower input (the
  digest's own suggestion, section 2). Without it, CTS on the unnormalised retrieval towers is a
  feedback loop (larger outputs -> larger memories -> larger inputs) that diverged to NaN on
  MovieLens-100K.
* Retrieval (in-batch softmax): with ``drop_known_positives`` (default on; the benchmark chooses
  it on validation), in-batch negatives that the query's user interacted with in the training
  split are dropped from the softmax (:meth:`CS3Mixin.dropped_negatives`): their memories contain
  that user, which can teach the towers to read the collaborative signal of the memories
  backwards; dropping them also removes hard negatives, so it is a trade-off. Every logged row
  is a positive, so CTS and CMS update on every row; the in-batch negatives are never written to
  memory. Pre-ranking: CTS updates on label 1, CMS on every impression.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.cs3.cascade_sharing import CascadeMemory
from tfcs3.cs3.cross_tower_sync import CrossTowerMemory
from tfcs3.cs3.ranker import KINDS as RANKER_KINDS
from tfcs3.cs3.ranker import Ranker, learn_ranker_online
from tfcs3.cs3.replay import leave_own_write_out
from tfcs3.data.features import FeatureSpec
from tfcs3.data.pipeline import make_dataset, split_arrays
from tfcs3.data.prepared import PreparedData, Split
from tfcs3.models.dat import DATModel
from tfcs3.models.inttower import IntTowerModel
from tfcs3.models.tower import memory_config
from tfcs3.models.two_tower import TwoTowerModel

__all__ = ["CS3", "CS3DAT", "CS3IntTower", "CS3Mixin", "CS3TwoTower", "cs3_class"]

CAS_PLACEMENTS = ("both", "user", "none")
#: Input key of a row's ranker activations during the replay (set by ``before_training``).
RANKER_OUTPUT = "cs3_ranker_output"
CROSS_TOWER, CASCADE = "cross_tower", "cascade"


# For the type checker the mixin is a TwoTowerModel (it only ever runs as one); at run time it is
# a plain mixin placed before the backbone in the MRO.
if TYPE_CHECKING:
    _MixinBase = TwoTowerModel
else:
    _MixinBase = object


class CS3Mixin(_MixinBase):
    """Adds CS3 to a :class:`~tfcs3.models.two_tower.TwoTowerModel` subclass with a dot score.

    Use it through :func:`cs3_class` (``cs3_class(MyTwoTower)``) or the ready-made
    :class:`CS3TwoTower`, :class:`CS3DAT` and :class:`CS3IntTower`.

    Args:
        spec: the dataset's features.
        cas: ``"both"``, ``"user"`` or ``"none"``: where the Cycle-Adaptive blocks go.
        cts: Cross-Tower Synchronization on/off.
        cms: Cascade-Model Sharing on/off.
        alpha: CTS's EMA coefficient.
        beta: CMS's EMA coefficient.
        cycles: re-weighting cycles per CAS block.
        ranker: the downstream ranker CMS reads: ``"dcn"`` (DCN-v2) or ``"dnn"``.
        ranker_hidden_units: the ranker's hidden widths; the last is the memory width ``d_r``.
        drop_known_positives: retrieval with memories: leave in-batch negatives that the query's
            user interacted with out of the softmax (see :meth:`dropped_negatives`).
        **kwargs: the backbone's arguments (tower, mode, embedding_dim, ...).

    Example:
        >>> model = tfcs3.models.build_model("cs3_youtubednn", data, cts=True, cms=False)
        >>> MyCS3 = cs3_class(MyTwoTower)  # CS3 on your own TwoTowerModel subclass
    """

    def __init__(
        self,
        spec: FeatureSpec,
        *,
        cas: str = "both",
        cts: bool = True,
        cms: bool = True,
        alpha: float = 0.8,
        beta: float = 0.8,
        cycles: int = 1,
        ranker: str = "dcn",
        ranker_hidden_units: Sequence[int] = (128, 64),
        drop_known_positives: bool = True,
        **kwargs: Any,
    ):
        if cas not in CAS_PLACEMENTS:
            raise ValueError(f"cas must be one of {CAS_PLACEMENTS}, got {cas!r}")
        if ranker not in RANKER_KINDS:
            raise ValueError(f"ranker must be one of {RANKER_KINDS}, got {ranker!r}")
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not 0.0 <= float(value) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if int(cycles) < 1:
            raise ValueError(f"cycles must be >= 1, got {cycles}")
        if not ranker_hidden_units:
            raise ValueError("ranker_hidden_units must not be empty (its last width is the CMS memory width)")
        # Plain attributes read by tower_options() while the backbone builds its towers.
        self._cs3_options = (cas, bool(cts), bool(cms), float(alpha), float(beta), int(cycles))
        self._ranker_dim = int(ranker_hidden_units[-1])
        super().__init__(spec, **kwargs)
        if not self.is_dot:
            raise ValueError(f"CS3 needs a dot-product backbone; {type(self).__name__} does not score with a dot")
        self.hparams.update(
            cas=cas,
            cts=bool(cts),
            cms=bool(cms),
            alpha=float(alpha),
            beta=float(beta),
            cycles=int(cycles),
            ranker=ranker,
            ranker_hidden_units=[int(u) for u in ranker_hidden_units],
            drop_known_positives=bool(drop_known_positives),
        )
        self.cts, self.cms = bool(cts), bool(cms)
        #: Write every training batch into the memories after its step (online learning,
        #: :mod:`tfcs3.online`); offline training rebuilds them with :meth:`replay_memories`.
        self.update_in_step = False
        self._replay_fn: Callable[..., Any] | None = None
        self._known_pairs: tf.Tensor | None = None  # set by before_training (retrieval)
        self._ranker_stream: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # before_training
        self.ranker = (
            Ranker(spec, kind=ranker, mode=self.mode, hidden_units=ranker_hidden_units, name="ranker") if cms else None
        )
        self.ranker_fitted = tf.Variable(False, trainable=False, name="ranker_fitted")
        self.ranker_report: dict[str, Any] = {}

    # -- towers ---------------------------------------------------------------------------------

    def tower_options(self, side: str) -> dict[str, Any]:
        options = super().tower_options(side)
        cas, cts, cms, alpha, beta, cycles = self._cs3_options
        if cas == "both" or (cas == "user" and side == "query"):
            options["cycles"] = cycles
        spec = self.spec
        key = spec.user_id if side == "query" else spec.item_id
        vocabulary = spec.feature(key).vocabulary
        assert vocabulary is not None
        memories = []
        rows = len(vocabulary)
        if cts:  # holds the other tower's outputs
            width = self.hparams["embedding_dim"]
            memories.append(
                memory_config(CROSS_TOWER, CrossTowerMemory, num_rows=rows, dim=width, decay=alpha, key=key)
            )
        if cms:  # holds the ranker's penultimate activations
            dim = self._ranker_dim
            memories.append(memory_config(CASCADE, CascadeMemory, num_rows=rows, dim=dim, decay=beta, key=key))
        if memories:
            options["memories"] = memories
        return options

    # -- training -------------------------------------------------------------------------------

    def before_training(self, data: PreparedData, seed: int = 0, verbose: int = 0, online: bool = False) -> None:
        """Prepares training on ``data``.

        Offline (``online=False``), with CMS: one time-ordered, predict-then-learn pass of the
        ranker over the training split (:func:`~tfcs3.cs3.ranker.learn_ranker_online`), keeping
        each row's activations from before the ranker learned that row; the replay writes those
        into the CMS memories. Online (:mod:`tfcs3.online`): the ranker learns inside the training
        step instead, after the batch's memory writes. Retrieval with memories: records the
        training (user, item) pairs for :meth:`dropped_negatives`.
        """
        spec = self.spec
        if self.has_memories and self.mode == "retrieval" and self.hparams["drop_known_positives"]:
            features = data.train.features
            keys = features[spec.user_id].astype(np.int64) * len(spec.item_vocabulary) + features[spec.item_id]
            self._known_pairs = tf.constant(np.unique(keys))
        if self.ranker is None:
            return
        if online:
            self.ranker.compile(optimizer=tf_keras.optimizers.Adam(1e-3))
            return
        if bool(self.ranker_fitted.numpy()):
            return  # a restored model: the stream's activations were not saved; CMS writes use the ranker as is
        stream = data.train.subset(data.train.time_order())
        started = time.time()
        outputs = learn_ranker_online(self.ranker, stream, seed=seed)
        self._ranker_stream = (stream.features[spec.item_id].copy(), stream.users.copy(), outputs)
        self.ranker_fitted.assign(True)
        validation = self.ranker.evaluate(make_dataset(data.validation, 2048), verbose=0, return_dict=True)
        self.ranker_report = {"validation_auc": float(validation["auc"]), "train_seconds": time.time() - started}

    def training_report(self) -> dict[str, Any]:
        """``{"ranker": ...}``: the CMS ranker's validation AUC and training seconds (once it
        trained in :meth:`before_training`)."""
        return {"ranker": dict(self.ranker_report)} if self.ranker_report else {}

    def build_extras(self, features: Mapping[str, tf.Tensor]) -> None:
        """Creates the ranker's variables (before restoring weights)."""
        if self.ranker is not None:
            self.ranker(features, training=False)

    def memories(self) -> list[Any]:
        """Every memory layer of both towers."""
        towers = (self.query_model, self.candidate_model)
        return [m for tower in towers for m in tower.memories.values()]

    @property
    def has_memories(self) -> bool:
        """True with CTS or CMS: training then replays the stream (:meth:`replay_memories`)."""
        return self.cts or self.cms

    def unsynchronized_state(self) -> list[str]:
        """CTS / CMS memories are written outside the gradients, from each replica's own rows."""
        return ["the CTS / CMS memories"] if self.has_memories else []

    def start_online(self) -> None:
        """Online learning: memories start empty and every step writes the batch it learned."""
        self.reset_memories()
        self.update_in_step = True

    def reset_memories(self) -> None:
        """Zeroes every memory (the state before any data)."""
        for memory in self.memories():
            memory.reset()

    def memory_writes(
        self, features: Mapping[str, tf.Tensor], q: tf.Tensor, c: tf.Tensor
    ) -> list[tuple[Any, Any, tf.Tensor, tf.Tensor, tf.Tensor | None]]:
        """What a batch writes: ``(tower, memory name, ids, values, mask)`` per memory.

        CTS: the user memory takes the item-tower outputs ``c`` and the item memory the user-tower
        outputs ``q``, on positive rows only; CMS: both take the ranker's penultimate activations
        of every row.
        """
        spec = self.spec
        users, items = features[spec.user_id], features[spec.item_id]
        query, candidate = self.query_model, self.candidate_model
        writes = []
        if self.cts:
            positive = self.positive_mask(features)
            writes += [(query, CROSS_TOWER, users, c, positive), (candidate, CROSS_TOWER, items, q, positive)]
        if self.cms:
            assert self.ranker is not None
            h = (
                features[RANKER_OUTPUT]
                if RANKER_OUTPUT in features
                else self.ranker.penultimate(features, training=False)
            )
            writes += [(query, CASCADE, users, h, None), (candidate, CASCADE, items, h, None)]
        return writes

    def update_memories(self, features: Mapping[str, tf.Tensor], q: tf.Tensor, c: tf.Tensor) -> None:
        """Writes a batch into the memories, after its loss was computed with the old values.

        ``q`` and ``c`` are the batch's tower outputs (detached before they are stored).
        """
        for tower, name, ids, values, mask in self.memory_writes(features, q, c):
            tower.memories[name].update(ids, values, mask)

    def _replay_batch(self, features: Mapping[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
        reads = {}
        for name, memory in self.query_model.memories.items():
            reads[self.query_model.memory_input_key(name)] = memory(features[memory.key])
        q = self.query_model(features, training=False)
        c = self.candidate_model(features, training=False)
        written = {}
        for tower, name, ids, values, mask in self.memory_writes(features, q, c):
            tower.memories[name].update(ids, values, mask)
            if tower is self.candidate_model:
                written[name] = values
                written[f"{name}/mask"] = tf.ones_like(ids, tf.float32) if mask is None else tf.cast(mask, tf.float32)
        return reads, written

    def replay_memories(self, stream: Split, batch_size: int = 512) -> dict[str, np.ndarray]:
        """Rebuilds the memories from zero by streaming ``stream`` (in its row order, which must be
        time order) through the current towers and ranker, batch by batch, read before write, and
        returns every row's memory inputs for offline training (keyed by
        ``tower.memory_input_key``):

        * user side: the values the row read, built from strictly earlier batches (causal, like
          the history feature);
        * item side: the item's final memory as if this row had never written to it (see
          :func:`~tfcs3.cs3.replay.leave_own_write_out`).

        Why the item side is not causal too: in an in-batch softmax the negatives come from rows of
        other times, and a causal item memory dates its row (it holds the users active just
        before it), so the towers learn to find the positive by matching its date with the user's
        memory, a shortcut that is useless at evaluation, where every item reads the same final
        memory. With the final-minus-own read every candidate in a batch is read at the same time,
        as at evaluation, and no row's label enters its own input.
        """
        if self._replay_fn is None:
            self._replay_fn = tf.function(self._replay_batch, reduce_retracing=True)
        self.reset_memories()
        tensors = split_arrays(stream)
        if self._ranker_stream is not None:
            items, users, outputs = self._ranker_stream
            spec = self.spec
            if np.array_equal(items, stream.features[spec.item_id]) and np.array_equal(users, stream.users):
                tensors[RANKER_OUTPUT] = outputs
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(stream), batch_size):
            batch = {k: tf.constant(v[start : start + batch_size]) for k, v in tensors.items()}
            reads, written = self._replay_fn(batch)
            for key, value in [*reads.items(), *(("written:" + k, v) for k, v in written.items())]:
                parts.setdefault(key, []).append(value.numpy())
        out = {key: np.concatenate(values) for key, values in parts.items() if not key.startswith("written:")}
        candidate = self.candidate_model
        for name, memory in candidate.memories.items():
            ids = stream.features[memory.key].astype(np.int64)
            values = np.concatenate(parts[f"written:{name}"])
            wrote = np.concatenate(parts[f"written:{name}/mask"]) > 0
            out[candidate.memory_input_key(name)] = leave_own_write_out(
                memory.table.numpy(), ids, values, wrote, memory.decay
            )
        return out

    def dropped_negatives(self, features: Mapping[str, tf.Tensor]) -> tf.Tensor | None:
        """Retrieval with memories: in-batch negatives the query's user interacted with anywhere in
        the training split are left out of the softmax.

        An item memory summarises the users who interacted with the item, so an in-batch negative
        the query's user also interacted with (at another time: rows are shuffled) carries that
        user in its memory, and the softmax would teach the towers that "this item's memory
        contains me" means *negative*, the opposite of the collaborative signal CTS and CMS are for
        (on MovieLens-100K that drove NDCG@10 below popularity). Such pairs are known positives, so
        dropping them as negatives is the usual false-negative removal.
        """
        if self._known_pairs is None:
            return None
        spec = self.spec
        users = tf.cast(features[spec.user_id], tf.int64)
        items = tf.cast(features[spec.item_id], tf.int64)
        keys = users[:, None] * len(spec.item_vocabulary) + items[None, :]
        flat = tf.reshape(keys, [-1])
        position = tf.searchsorted(self._known_pairs, flat)
        found = tf.equal(tf.gather(self._known_pairs, tf.minimum(position, tf.size(self._known_pairs) - 1)), flat)
        return tf.reshape(found, tf.shape(keys))

    def _tower_variables(self) -> list[tf.Variable]:
        frozen = set() if self.ranker is None else {v.ref() for v in self.ranker.variables}
        return [v for v in self.trainable_variables if v.ref() not in frozen]

    def train_step(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """The backbone's step (the ranker stays frozen); with :attr:`update_in_step` (online
        learning), the batch is then written into the memories (read before write)."""
        with tf.GradientTape() as tape:
            q = self.query_model(features, training=True)
            c = self.candidate_model(features, training=True)
            loss = self.replica_loss(self.loss_from_representations(features, q, c))
            losses = self.replica_losses(loss, self.query_model.losses + self.candidate_model.losses)
        self.apply_step(tape, losses, self._tower_variables())
        if self.update_in_step:
            self.update_memories(features, q, c)
            if self.ranker is not None and self.ranker.optimizer is not None:
                # Online (before_training(online=True) compiled it): the ranker learns the batch
                # after the batch's writes.
                self.ranker.train_step(features)
        return self.step_logs(losses)


def cs3_class(backbone: type[TwoTowerModel]) -> type[TwoTowerModel]:
    """The CS3 version of a dot-product two-tower class (plug-and-play on a user's own model):
    ``class CS3<Backbone>(CS3Mixin, backbone)``.

    Example:
        >>> MyCS3 = cs3_class(MyTwoTower)
        >>> model = MyCS3(data.spec, cms=False)
    """

    class CS3Backbone(CS3Mixin, backbone):  # type: ignore[valid-type,misc]  # a class given at run time
        __doc__ = CS3Mixin.__doc__

    CS3Backbone.__name__ = CS3Backbone.__qualname__ = f"CS3{backbone.__name__}"
    return CS3Backbone


class CS3TwoTower(CS3Mixin, TwoTowerModel):
    """CS3 on the TFRS two-tower (DSSM or YouTubeDNN towers; registered as ``cs3_dssm`` and
    ``cs3_youtubednn``). See :class:`CS3Mixin` for the mechanisms and their switches.

    Example:
        >>> model = tfcs3.models.build_model("cs3_youtubednn", data, cts=True, cms=False)
    """


class CS3DAT(CS3Mixin, DATModel):
    """CS3 on DAT (registered as ``cs3_dat`` and ``cs3_dat_youtubednn``): the adaptive-mimic
    vectors and CS3's memories join the same towers.

    Example:
        >>> model = tfcs3.models.build_model("cs3_dat_youtubednn", data, amm_weight=0.5)
    """


class CS3IntTower(CS3Mixin, IntTowerModel):
    """CS3 on IntTower's dot-product variant (Light-SE towers and CIR; ``scorer="dot"``).

    Example:
        >>> model = tfcs3.models.build_model("cs3_inttower_dot", data, cir_weight=0.1)
    """

    excluded_hparams = frozenset({"scorer"})  # always the dot scorer

    def __init__(self, spec: FeatureSpec, **kwargs: Any):
        super().__init__(spec, scorer="dot", **kwargs)


#: Registered backbones CS3 plugs into: name -> (class, tower feature set).
BACKBONES: dict[str, tuple[type[TwoTowerModel], str]] = {
    "dssm": (CS3TwoTower, "dssm"),
    "youtubednn": (CS3TwoTower, "youtubednn"),
    "dat": (CS3DAT, "dssm"),
    "dat_youtubednn": (CS3DAT, "youtubednn"),
    "inttower_dot": (CS3IntTower, "youtubednn"),
}


def CS3(spec: FeatureSpec, backbone: str = "youtubednn", **kwargs: Any) -> TwoTowerModel:  # noqa: N802
    """CS3 on a registered dot-product backbone (see :data:`BACKBONES`); ``kwargs`` go to
    :class:`CS3Mixin` and the backbone."""
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {backbone!r}")
    cls, tower = BACKBONES[backbone]
    return cls(spec, tower=tower, **kwargs)
