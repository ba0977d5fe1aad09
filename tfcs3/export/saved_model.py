"""Export a trained dot-product model as a SavedModel that takes raw feature values.

The exported module needs neither tfcs3 nor (for the brute-force index) ScaNN: vocabularies are
stock TF hash tables, the query tower is traced into the graph, and the catalog's embeddings are
computed once and stored as a variable. Signatures (all inputs are strings spelled as in the
dataset; ``[None]`` for a categorical feature, ``[None, None]`` for a list):

* ``serving_default(<query features>, exclude) -> {item_ids [B, k], scores [B, k]}``:
  the top-k catalog items. ``exclude`` lists item ids to leave out per query (pad with ``""``;
  one row per query). When fewer than ``k`` items remain after the exclusions, the rest of the
  row is padding: id ``""`` with score ``-inf`` (never an excluded item).
* ``top_k(<query features>) -> {item_ids [B, k], scores [B, k]}``: ``serving_default`` for
  requests that exclude nothing (no ``exclude`` input to send).
* ``query_embedding(<query features>) -> {embedding [B, d]}``.
* ``score_candidates(<query features>, candidate_ids [B, C]) -> {scores [B, C], known [B, C]}``:
  an id that is not in the catalog (``""`` padding included) is never scored as an item: its score
  is ``-inf`` and ``known`` is false.

Every signature checks its request before computing (:class:`ServingLimits`): every input has
one row per query (the same batch size, ``exclude`` and ``candidate_ids`` included), and the batch
size, list widths and string lengths are within the limits set at export. A request that breaks
one is refused with ``INVALID_ARGUMENT`` and a message that names the input. Dtypes and ranks are
checked by TensorFlow's signature binding before the graph runs.

Fallbacks, never errors: an unknown categorical value uses the OOV bucket; an empty history
(all ``""``) pools to zero; an unknown ``exclude`` id is ignored. The history feature
is read in time order, most recent last, with ``""`` padding anywhere; only its last ``max_len``
real entries are used (as in training). A feature aligned with the history (the time-gap feature
``history_gap``, when the data has it) lists one value per history entry (same width, ``""`` where
the history has ``""``) and is reordered and cropped with it; an unknown value uses the OOV row.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.data.features import CATEGORICAL, NUM_RESERVED, OOV, PAD, SEQUENCE, Feature, HashedVocabulary
from tfcs3.data.prepared import PreparedData
from tfcs3.export.warmup import write_warmup_requests
from tfcs3.models.retriever import Retriever
from tfcs3.processes import alive
from tfcs3.retrieval import INDEXES, ScannOptions

EXTRAS = "assets.extra"
METADATA = "tfcs3_export.json"


def _table(
    keys: list[str], values: np.ndarray, default: int, extra: dict[str, int] | None = None
) -> tf.lookup.StaticHashTable:
    keys = list(keys) + list((extra or {}).keys())
    values = np.concatenate([np.asarray(values, np.int64), np.asarray(list((extra or {}).values()), np.int64)])
    init = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(values, tf.int64))
    return tf.lookup.StaticHashTable(init, default_value=default)


class HashedLookup(tf.Module):
    """The export's side of :class:`~tfcs3.data.features.HashedVocabulary`: raw strings to
    ``2 + FarmHash64 mod buckets``, the same op preparation used."""

    def __init__(self, buckets: int):
        super().__init__()
        self.buckets = buckets

    def lookup(self, values: tf.Tensor) -> tf.Tensor:
        return tf.strings.to_hash_bucket_fast(values, self.buckets) + NUM_RESERVED


def _vocab_table(feature: Feature, empty_is_padding: bool) -> tf.lookup.StaticHashTable | HashedLookup:
    assert feature.vocabulary is not None
    if isinstance(feature.vocabulary, HashedVocabulary):
        return HashedLookup(feature.vocabulary.buckets)
    values = np.arange(len(feature.vocabulary.values)) + 2
    return _table(feature.vocabulary.values, values, OOV, {"": PAD} if empty_is_padding else None)


@dataclasses.dataclass(frozen=True)
class ServingLimits:
    """Request limits written into an export; a request over one is refused with an error that
    names the input (the defaults are generous for online serving).

    Args:
        max_batch: queries per request.
        max_list: entries per row of a list input (the history, its aligned feature, ``exclude``).
        max_candidates: ``candidate_ids`` per row of ``score_candidates``.
        max_string_bytes: bytes in any one string.

    Example:
        >>> export_model(model, data, "exports", "m", limits=ServingLimits(max_batch=256))
    """

    max_batch: int = 1024
    max_list: int = 2048
    max_candidates: int = 10_000
    max_string_bytes: int = 512

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ServingLimits.{field.name} must be a positive integer, got {value!r}")


class ServingModule(tf.Module):
    """The exported object: raw-feature lookups, the query tower, the catalog and a top-k index.

    Args:
        model: a trained :class:`~tfcs3.models.Retriever` (every tfcs3 model, or any two Keras
            towers in a :class:`~tfcs3.models.TowerRetriever`); models whose score is not a dot
            product (IntTower's sum-max) export with brute force only.
        data: the prepared data the model was trained on (vocabularies and catalog).
        index: ``"brute_force"`` (stock ops; exact model scoring for any scorer), ``"scann"`` (needs
            the ScaNN ops; dot models) or ``"sparse_code"`` (SparCode's inverted index, stock ops).
        k: results returned by ``serving_default``.
        scann_options: ScaNN settings (default by catalog size).
        sparse_top_t: per-code posting-list cap of the ``sparse_code`` index (``None``: exact).
        limits: the request limits (:class:`ServingLimits`; default: its defaults).
    """

    def __init__(
        self,
        model: Retriever,
        data: PreparedData,
        index: str = "brute_force",
        k: int = 100,
        scann_options: ScannOptions | None = None,
        sparse_top_t: int | None = None,
        limits: ServingLimits | None = None,
    ):
        super().__init__(name="tfcs3_serving")
        self.limits = limits or ServingLimits()
        if index not in INDEXES:
            raise ValueError(f"index must be one of {sorted(INDEXES)}, got {index!r}")
        if not isinstance(model, Retriever):
            raise TypeError(
                f"{type(model).__name__} has no query/candidate towers to export "
                "(wrap a model's towers in tfcs3.models.TowerRetriever)"
            )
        spec = data.spec
        self.k = int(min(k, data.num_items))
        self.index_kind = index
        self.query_model = model.query_model
        self.query_features = [spec.feature(n) for n in model.query_feature_names]
        self.max_len = {f.name: f.max_len for f in self.query_features if f.kind == SEQUENCE}
        self.aligned = [f for f in self.query_features if f.aligned_with]
        for f in self.query_features:
            if f.kind not in (CATEGORICAL, SEQUENCE) and not f.aligned_with:
                raise ValueError(f"query feature {f.name!r} of kind {f.kind!r} cannot be exported")
            if f.aligned_with and f.aligned_with not in self.max_len:
                raise ValueError(f"query feature {f.name!r} is aligned with {f.aligned_with!r}, which the model lacks")
        self.tables = {
            f.name: _vocab_table(f, empty_is_padding=bool(f.aligned_with))
            for f in self.query_features
            if f.kind == CATEGORICAL or f.aligned_with
        }
        if self.max_len:
            self.history_table = _vocab_table(spec.feature(spec.item_id), empty_is_padding=True)
        self.row_table = _table(list(data.catalog_ids), np.arange(data.num_items), -1)
        # Per-id query-tower inputs are frozen at export (CS3's normalised memories, FIT's history
        # item embeddings): a request gathers rows of a precomputed table instead of computing them.
        tables = model.serving_tables()
        self.table_keys = {key: feature for key, (_, feature) in tables.items()}
        self.serving_tables = [
            tf.Variable(table, trainable=False, name=key.replace("/", "_")) for key, (table, _) in tables.items()
        ]
        embeddings = model.represent_candidates(data.catalog).numpy()
        self.embedding_values = embeddings
        self.item_embeddings = tf.Variable(embeddings, trainable=False, name="item_embeddings")
        self.item_ids = tf.Variable(data.catalog_ids.astype(str), trainable=False, name="item_ids")
        self.score_candidate_lists = model.score_candidates
        # A learned scorer (FIT's LSS) has variables of its own outside the towers; one call builds
        # them in a model that has never run (an untrained export), so that they can be tracked.
        if model.scorer_variables:
            one = data.train.head(1).features
            model.score(model.represent_queries(one), tf.constant(embeddings[:1]))
        self.scorer_variables = list(model.scorer_variables)
        options = {"scann_options": scann_options, "sparse_top_t": sparse_top_t}
        self.index = INDEXES[index].for_model(model, self.item_embeddings, self.k, **options)

        query_specs = {
            f.name: tf.TensorSpec([None] if f.kind == CATEGORICAL else [None, None], tf.string, name=f.name)
            for f in self.query_features
        }
        self.input_names = list(query_specs)
        top_spec = {**query_specs, "exclude": tf.TensorSpec([None, None], tf.string, name="exclude")}
        score_spec = {**query_specs, "candidate_ids": tf.TensorSpec([None, None], tf.string, name="candidate_ids")}
        self.serving_default = tf.function(self._top_k, input_signature=[top_spec])
        self.top_k = tf.function(self._top_k_all, input_signature=[query_specs])
        self.query_embedding = tf.function(self._query_embedding, input_signature=[query_specs])
        self.score_candidates = tf.function(self._score_candidates, input_signature=[score_spec])

    def _checked(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """``features`` after the request checks (one row per query in every input; the limits)."""
        limits = self.limits
        first = self.input_names[0]
        batch = tf.shape(features[first])[0]
        checks = [
            tf.debugging.assert_less_equal(
                batch, limits.max_batch, message=f"input `{first}`: more queries than this export's max_batch"
            )
        ]
        for name, value in features.items():
            if name != first:
                checks.append(
                    tf.debugging.assert_equal(
                        tf.shape(value)[0],
                        batch,
                        message=f"input `{name}` must have one row per query, as many rows as `{first}`",
                    )
                )
            if value.shape.rank == 2:
                limit, what = (
                    (limits.max_candidates, "max_candidates")
                    if name == "candidate_ids"
                    else (limits.max_list, "max_list")
                )
                checks.append(
                    tf.debugging.assert_less_equal(
                        tf.shape(value)[1],
                        limit,
                        message=f"input `{name}`: more entries per row than this export's {what}",
                    )
                )
            longest = tf.reduce_max(tf.concat([tf.reshape(tf.strings.length(value), [-1]), [0]], axis=0))
            checks.append(
                tf.debugging.assert_less_equal(
                    longest,
                    limits.max_string_bytes,
                    message=f"input `{name}`: a string longer than this export's max_string_bytes",
                )
            )
        with tf.control_dependencies(checks):
            return {name: tf.identity(value) for name, value in features.items()}

    def _encode(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        encoded = {}
        orders, padding = {}, {}
        for f in self.query_features:
            raw = features[f.name]
            if f.kind == CATEGORICAL:
                encoded[f.name] = tf.cast(self.tables[f.name].lookup(raw), tf.int32)
            elif f.kind == SEQUENCE:
                ids = tf.cast(self.history_table.lookup(raw), tf.int32)
                # Move padding to the front (stably), so the last columns are the most recent items.
                padding[f.name] = tf.equal(ids, PAD)
                orders[f.name] = tf.argsort(tf.cast(~padding[f.name], tf.int32), axis=1, stable=True)
                encoded[f.name] = self._last(ids, orders[f.name], self.max_len[f.name])
        for f in self.aligned:  # one value per sequence entry: reordered and cropped as the sequence
            seq = str(f.aligned_with)
            check = tf.debugging.assert_equal(
                tf.shape(features[f.name]),
                tf.shape(features[seq]),
                message=f"input `{f.name}` must give one value per `{seq}` entry (the same shape)",
            )
            with tf.control_dependencies([check]):
                values = tf.cast(self.tables[f.name].lookup(features[f.name]), tf.int32)
            values = tf.where(padding[seq], tf.zeros_like(values), values)
            encoded[f.name] = self._last(values, orders[seq], self.max_len[seq])
        for (key, feature), table in zip(self.table_keys.items(), self.serving_tables, strict=True):
            encoded[key] = tf.gather(table, encoded[feature])
        # The tower runs on at least one row: an empty request gets one padding row, cut off again
        # (T2Diff's convolutions fail on an empty batch on some CPUs; the answer is empty either way).
        batch = tf.shape(next(iter(encoded.values())))[0]
        extra = tf.maximum(1 - batch, 0)
        encoded = {k: tf.pad(v, [[0, extra]] + [[0, 0]] * (v.shape.rank - 1)) for k, v in encoded.items()}
        return self.query_model(encoded, training=False)[:batch]

    @staticmethod
    def _last(ids: tf.Tensor, order: tf.Tensor, width: int) -> tf.Tensor:
        """``ids`` reordered by ``order`` (padding first), left-padded or cut to ``width``."""
        ids = tf.gather(ids, order, batch_dims=1)
        padded = tf.concat([tf.zeros([tf.shape(ids)[0], width], tf.int32), ids], axis=1)
        return padded[:, -width:]

    def _query_embedding(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return {"embedding": self._encode(self._checked(features))}

    def _top_k(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        features = self._checked(features)
        queries = self._encode(features)
        exclude_rows = self.row_table.lookup(features["exclude"])
        scores, rows = self.index.search(queries, self.k, exclude_rows)
        # Excluded items (and nothing else) score -inf in every index: past the last real item a
        # row is padding, an empty id with score -inf.
        padding = tf.logical_or(tf.equal(scores, -np.inf), rows < 0)
        ids = tf.where(padding, tf.constant("", tf.string), tf.gather(self.item_ids, tf.maximum(rows, 0)))
        return {"item_ids": ids, "scores": tf.where(padding, tf.constant(-np.inf, scores.dtype), scores)}

    def _top_k_all(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        batch = tf.shape(features[self.input_names[0]])[0]
        return self._top_k({**features, "exclude": tf.fill(tf.stack([batch, 1]), "")})

    def _score_candidates(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        features = self._checked(features)
        queries = self._encode(features)
        rows = self.row_table.lookup(features["candidate_ids"])
        known = rows >= 0
        scores = self.score_candidate_lists(queries, tf.gather(self.item_embeddings, tf.maximum(rows, 0)))
        return {"scores": tf.where(known, scores, tf.constant(-np.inf, scores.dtype)), "known": known}

    def signatures(self) -> dict[str, Any]:
        return {
            "serving_default": self.serving_default,
            "top_k": self.top_k,
            "query_embedding": self.query_embedding,
            "score_candidates": self.score_candidates,
        }


TMP_PREFIX = ".tmp-export-"
_TMP_OWNER = re.compile(re.escape(TMP_PREFIX) + r"(\d+)-")
#: A temporary export folder without a live owner, or of an older naming, is stale after this long.
STALE_SECONDS = 3600.0


def remove_stale_exports(base: str | Path) -> list[Path]:
    """Deletes the temporary folders that killed exports left under ``base`` (a model's export
    folder) and returns them: a folder whose writing process (its name carries the pid) is no
    longer alive, or, for a name without a pid, one untouched for :data:`STALE_SECONDS`. A
    folder of a live export is left alone."""
    removed = []
    for path in Path(base).glob(f"{TMP_PREFIX}*"):
        owner = _TMP_OWNER.match(path.name)
        if owner is not None:
            stale = not alive(int(owner.group(1)))
        else:
            stale = time.time() - path.stat().st_mtime > STALE_SECONDS
        if stale and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsyncs every file and folder below ``root``, and ``root`` itself."""
    for folder, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), "rb") as fh:
                os.fsync(fh.fileno())
        _fsync_dir(Path(folder))


def next_version(base: str | Path) -> int:
    """1 + the largest integer version directory under ``base`` (1 when there is none)."""
    base = Path(base)
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()] if base.is_dir() else []
    return max(versions, default=0) + 1


@contextlib.contextmanager
def _quiet_tf_logger() -> Iterator[None]:
    """TensorFlow's Python logger at WARNING or above for the duration."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def export_model(
    model: Retriever,
    data: PreparedData,
    export_dir: str | Path,
    model_name: str = "tfcs3",
    version: int | None = None,
    index: str = "brute_force",
    k: int = 100,
    scann_options: ScannOptions | None = None,
    sparse_top_t: int | None = None,
    warmup: bool = True,
    limits: ServingLimits | None = None,
) -> Path:
    """Writes ``export_dir/model_name/version/`` (TF Serving's layout) atomically.

    The SavedModel is written to a temporary directory beside the target, fsynced, and renamed
    into place, so a watching TF Serving never sees a half-written version; temporary folders
    that killed exports left behind are removed first (:func:`remove_stale_exports`). An existing
    version is never
    overwritten; with ``version=None`` the next free number is used. Plain copies of the item
    embeddings (``item_embeddings.npy``), ids (``item_ids.txt``) and a description of the export
    (``tfcs3_export.json``) go to ``assets.extra/`` for external ANN systems, and, unless
    ``warmup=False``, TF Serving's warm-up requests (:mod:`tfcs3.export.warmup`). ``limits``: the
    request limits the signatures enforce (:class:`ServingLimits`).

    Returns:
        The version directory.
    """
    if not model_name or any(c in model_name for c in "/\\ ") or model_name.startswith("."):
        raise ValueError(f"model_name must be a plain directory name, got {model_name!r}")
    if version is not None and version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    module = ServingModule(model, data, index, k, scann_options, sparse_top_t, limits)
    base = Path(export_dir) / model_name
    base.mkdir(parents=True, exist_ok=True)
    remove_stale_exports(base)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-", dir=base))
    try:
        options = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"] if index == "scann" else None)
        with _quiet_tf_logger():  # its "Assets written to" names the temporary folder, not the export
            tf.saved_model.save(module, str(tmp), signatures=module.signatures(), options=options)
        extras = tmp / EXTRAS
        extras.mkdir(exist_ok=True)
        np.save(extras / "item_embeddings.npy", module.embedding_values)
        (extras / "item_ids.txt").write_text("\n".join(data.catalog_ids.astype(str)) + "\n")
        if warmup:
            write_warmup_requests(extras, data, [f.name for f in module.query_features], model_name)
        metadata = {
            "dataset": data.name,
            "protocol": data.protocol,
            "model": type(model).__name__,
            "hparams": dict(model.hparams),
            "index": index,
            **module.index.metadata(),  # index_options (ScaNN), sparse_index (SparCode)
            "k": module.k,
            "num_items": data.num_items,
            "embedding_dim": int(module.embedding_values.shape[1]),
            "inputs": {f.name: f.kind for f in module.query_features},
            "history_max_len": module.max_len,
            "needs_scann_ops": index == "scann",
            "limits": dataclasses.asdict(module.limits),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (extras / METADATA).write_text(json.dumps(metadata, indent=2))
        _fsync_tree(tmp)  # every file on disk before the version appears under its final name
        for _ in range(100):
            target = base / str(version if version is not None else next_version(base))
            if target.exists():
                if version is not None:
                    raise FileExistsError(f"{target} already exists; exports never overwrite a version")
                continue
            try:
                os.rename(tmp, target)
                _fsync_dir(base)
                return target
            except OSError:
                if version is not None or not target.exists():
                    raise
        raise RuntimeError(f"could not claim a version directory under {base}")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
