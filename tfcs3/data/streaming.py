"""Preparation that streams past memory: a log of any length into a shard store.

:func:`prepare_streaming` gives exactly what :func:`~tfcs3.data.protocols.prepare` gives for the
protocols that split each user's rows on their own (``"retrieval"`` and
``"preranking_per_user"``), without ever holding the log, or every row's history, at once:

1. **Read** the log chunk by chunk (:class:`LogSource`). Users and items get integer codes, and the
   coded rows (16 to 24 bytes each) are appended to a spill file on disk.
2. **Order.** The users are sorted by id (and the items, which gives the catalog). Whole users are
   then assigned to buckets of about ``shard_rows`` rows in that order, and the spill is
   redistributed into one file per bucket.
3. **Vocabularies.** Each bucket is sorted (user, time, item) and split. Its training rows add to
   the training counts of users and items, in order of first appearance.
4. **Encode.** Each bucket's histories, features and exclusion lists are built, and its train,
   validation and test rows are written as shards (:mod:`tfcs3.data.shards`).

Peak memory is one bucket (set by ``shard_rows``) plus the tables that grow with the numbers of
users and items: id codes, side tables, vocabularies, and the held-out rows (one or two per
user). It never grows with the length of the log. The buckets are whole users in sorted order,
so concatenating them gives the in-memory order: the splits, histories and vocabularies are
identical (tested on MovieLens-100K).

Exact repeated rows are dropped with a warning and a count, as in memory. ``min_count`` keeps only
users and items with at least that many training rows in the id vocabularies. Rarer ids map to
the OOV bucket (index 1), in training and at serving time alike: their rows still train, through
the shared OOV embedding and their other features. ``user_id_buckets`` > 0 hashes user ids into
that many indices instead of listing them
(:class:`~tfcs3.data.features.HashedVocabulary`).

Example:
    >>> source = described_source(DatasetDescription.from_file("shop.toml"))
    >>> prepare_streaming(source, "prepared/shop", key="shop-v1", shard_rows=1_000_000)
    >>> data = read_shards("prepared/shop", key="shop-v1")
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from tfcs3.data.described import DatasetDescription, interaction_chunks, side_table
from tfcs3.data.protocols import (
    PRERANKING_PER_USER,
    RETRIEVAL,
    build_spec,
    check_protocol,
    encode_catalog,
    encode_splits,
    id_sort_key,
    id_vocabulary,
    per_user_roles,
    protocol_label,
)
from tfcs3.data.raw import LABEL_COLUMN, RawDataset, warn_repeated_rows
from tfcs3.data.shards import ShardWriter, remove_stale_temporaries
from tfcs3.progress import progress

#: The protocols whose splits are per user, so that buckets of whole users can be prepared apart.
STREAMING_PROTOCOLS = (RETRIEVAL, PRERANKING_PER_USER)
_COLUMNS = {"user": np.int32, "item": np.int32, "timestamp": np.int64, "rating": np.float32, "label": np.float32}


@dataclasses.dataclass
class LogSource:
    """A log read in chunks, and its side tables.

    Attributes:
        name, description: as in :class:`~tfcs3.data.raw.RawDataset` (an empty description
            becomes one that counts the log's rows).
        chunks: a function returning the log's checked rows as frames of ``user``, ``item``,
            ``rating``, ``timestamp`` and (``has_label``) ``label`` columns.
        side: ``side("users" | "items", ids)``: the side table of those ids, as
            :class:`~tfcs3.data.raw.RawDataset` holds it.
        user_features, item_features, item_multi_features: the side tables' feature columns.
        has_label: whether rows have a 0/1 ``label`` column.
        has_rating: whether every row has a rating (pre-ranking's label otherwise).
        positive_rating: without a label column, pre-ranking's label is rating >= this.
        location: the file (or folder) warnings name.
        timestamps_are_times: ``False`` for order-only data.
    """

    name: str
    description: str
    chunks: Callable[[], Iterator[pd.DataFrame]]
    side: Callable[[str, pd.Index], pd.DataFrame]
    user_features: list[str]
    item_features: list[str]
    item_multi_features: list[str]
    has_label: bool
    has_rating: bool
    location: str
    timestamps_are_times: bool = True
    positive_rating: float = 4.0


def described_source(desc: DatasetDescription, chunk_rows: int = 500_000) -> LogSource:
    """The log a :class:`~tfcs3.data.described.DatasetDescription` names, read ``chunk_rows`` at a
    time with every check of :func:`~tfcs3.data.described.load_described`."""
    files = desc.files()
    return LogSource(
        name=desc.name,
        description=desc.description,
        chunks=lambda: interaction_chunks(desc, chunk_rows),
        side=lambda which, ids: side_table(desc, which, ids),
        user_features=list(desc.user_features),
        item_features=list(desc.item_features),
        item_multi_features=list(desc.item_multi_features),
        has_label=desc.label is not None,
        has_rating=desc.rating is not None,
        positive_rating=float(desc.positive_rating),
        location=str(files[0] if len(files) == 1 else Path(desc.base_dir)),
    )


def raw_source(raw: RawDataset, chunk_rows: int = 500_000) -> LogSource:
    """An in-memory :class:`RawDataset` as a source (for tests and for registered datasets)."""

    def chunks() -> Iterator[pd.DataFrame]:
        for start in range(0, len(raw.interactions), chunk_rows):
            yield raw.interactions.iloc[start : start + chunk_rows]

    return LogSource(
        name=raw.name,
        description=raw.description,
        chunks=chunks,
        side=lambda which, ids: (raw.users if which == "users" else raw.items).loc[ids],
        user_features=list(raw.user_features),
        item_features=list(raw.item_features),
        item_multi_features=list(raw.item_multi_features),
        has_label=LABEL_COLUMN in raw.interactions.columns,
        has_rating=raw.has_ratings,
        location=raw.name,
        timestamps_are_times=raw.timestamps_are_times,
        positive_rating=raw.positive_rating,
    )


class _Spill:
    """Coded rows appended column by column to binary files in ``folder``."""

    def __init__(self, folder: Path, name: str, columns: list[str]):
        self.paths = {c: folder / f"{name}.{c}" for c in columns}
        self.rows = 0

    def append(self, arrays: dict[str, np.ndarray]) -> None:
        for column, path in self.paths.items():
            with open(path, "ab") as fh:
                np.ascontiguousarray(arrays[column], dtype=_COLUMNS[column]).tofile(fh)
        self.rows += len(arrays["user"])

    def read(self, start: int = 0, count: int = -1) -> dict[str, np.ndarray]:
        out = {}
        for column, path in self.paths.items():
            dtype = np.dtype(_COLUMNS[column])
            if not path.exists():
                out[column] = np.zeros(0, dtype=dtype)
                continue
            out[column] = np.fromfile(path, dtype=dtype, count=count, offset=start * dtype.itemsize)
        return out


def _code(values: pd.Series, table: dict[str, int]) -> np.ndarray:
    """Integer codes of ``values``, extending ``table`` (id -> code) with ids seen first here."""
    codes, uniques = pd.factorize(values, sort=False)
    mapping = np.fromiter((table.setdefault(str(u), len(table)) for u in uniques), dtype=np.int32, count=len(uniques))
    return mapping[codes]


def _ranks(ids: np.ndarray) -> np.ndarray:
    """Each id's place in id order (numeric ids numerically), ties in first-seen order."""
    order = np.argsort(id_sort_key(pd.Series(ids)).to_numpy(), kind="stable")
    rank = np.empty(len(ids), dtype=np.int64)
    rank[order] = np.arange(len(ids))
    return rank


@dataclasses.dataclass
class _Log:
    """The coded log: ids by code, each code's rank, and the buckets of whole users."""

    users: np.ndarray
    items: np.ndarray
    user_rank: np.ndarray
    item_row: np.ndarray
    buckets: list[_Spill]


def _read_log(source: LogSource, work: Path, shard_rows: int) -> _Log:
    """Steps 1 and 2 of the module docstring."""
    columns = ["user", "item", "timestamp", "rating"] + (["label"] if source.has_label else [])
    spill = _Spill(work, "log", columns)
    user_code: dict[str, int] = {}
    item_code: dict[str, int] = {}
    rows_per_user = np.zeros(0, dtype=np.int64)  # counted while reading, for the buckets
    for chunk in progress(source.chunks(), desc="reading the log", unit="chunk"):
        arrays = {
            "user": _code(chunk["user"], user_code),
            "item": _code(chunk["item"], item_code),
            "timestamp": chunk["timestamp"].to_numpy(),
            "rating": chunk["rating"].to_numpy(),
        }
        if source.has_label:
            arrays["label"] = chunk[LABEL_COLUMN].to_numpy()
        spill.append(arrays)
        counts = np.bincount(arrays["user"], minlength=len(user_code))
        rows_per_user = np.concatenate([rows_per_user, np.zeros(len(counts) - len(rows_per_user), np.int64)]) + counts
    users = np.array(list(user_code), dtype=object)
    items = np.array(list(item_code), dtype=object)
    user_rank, item_row = _ranks(users), _ranks(items)

    # Buckets of whole users, in user order, of about shard_rows rows each.
    step = 1 << 22
    by_rank = np.empty_like(rows_per_user)
    by_rank[user_rank] = rows_per_user
    bucket_of_rank = (np.cumsum(by_rank) - by_rank) // max(1, shard_rows)
    bucket_of_user = bucket_of_rank[user_rank]
    buckets = [_Spill(work, f"bucket{b}", columns) for b in range(int(bucket_of_rank.max()) + 1)]
    for start in range(0, spill.rows, step):
        part = spill.read(start, step)
        owner = bucket_of_user[part["user"]]
        order = np.argsort(owner, kind="stable")  # each bucket's rows together, in log order
        bounds = np.searchsorted(owner[order], np.arange(len(buckets) + 1))
        for b in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[b] : bounds[b + 1]]
            buckets[b].append({c: v[rows] for c, v in part.items()})
    for path in spill.paths.values():
        path.unlink(missing_ok=True)
    return _Log(users, items, user_rank, item_row, buckets)


def _bucket_frame(log: _Log, bucket: _Spill, has_label: bool) -> tuple[pd.DataFrame, int]:
    """A bucket's rows without exact repeats, sorted by (user, time, item) as in memory, and the
    number of repeats dropped."""
    arrays = bucket.read()
    coded = pd.DataFrame(arrays)
    repeated = coded.duplicated()
    coded = coded[~repeated.to_numpy()]
    frame = pd.DataFrame(
        {
            "user": log.users[coded["user"].to_numpy()],
            "item": coded["item"].to_numpy(),
            "rating": coded["rating"].to_numpy(),
            "timestamp": coded["timestamp"].to_numpy(),
            "row": log.item_row[coded["item"].to_numpy()],
            "_rank": log.user_rank[coded["user"].to_numpy()],
        }
    )
    if has_label:
        frame[LABEL_COLUMN] = coded["label"].to_numpy()
    frame = frame.sort_values(["_rank", "timestamp", "row"], kind="stable").reset_index(drop=True)
    return frame, int(repeated.sum())


def prepare_streaming(
    source: LogSource,
    path: str | Path,
    key: str,
    protocol: str = RETRIEVAL,
    max_history: int = 50,
    history_gaps: bool = False,
    min_count: int = 1,
    shard_rows: int = 1_000_000,
    user_id_buckets: int = 0,
) -> Path:
    """Prepares ``source`` under ``protocol`` into the shard store ``path`` (keyed ``key``): the
    result :func:`~tfcs3.data.shards.read_shards` reads equals ``prepare`` of the whole log (see
    the module docstring). A failure leaves whatever ``path`` held before untouched."""
    if protocol not in STREAMING_PROTOCOLS:
        raise ValueError(
            f"streaming preparation splits each user's rows on their own: protocol must be one of "
            f"{STREAMING_PROTOCOLS}, got {protocol!r} (prepare it in memory: tfcs3.data.protocols.prepare)"
        )
    if min_count < 1 or shard_rows < 1:
        raise ValueError(f"min_count and shard_rows must be >= 1, got {min_count} and {shard_rows}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    empty = pd.DataFrame()
    raw = RawDataset(  # the side tables join once the log's ids are known
        name=source.name,
        interactions=pd.DataFrame({"user": [], "item": [], "rating": [], "timestamp": []}),
        users=empty,
        items=empty,
        user_features=source.user_features,
        item_features=source.item_features,
        item_multi_features=source.item_multi_features,
        description=source.description,
        timestamps_are_times=source.timestamps_are_times,
        positive_rating=source.positive_rating,
    )
    check_protocol(raw, protocol, max_history, history_gaps, source.has_label or source.has_rating)  # before any work
    remove_stale_temporaries(path)
    work = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.spill-{os.getpid()}-"))
    writer = None
    try:
        log = _read_log(source, work, shard_rows)
        users, items = source.side("users", pd.Index(log.users)), source.side("items", pd.Index(log.items))
        raw = dataclasses.replace(raw, users=users, items=items)

        # Step 3: the training ids in order of first appearance, with their counts.
        user_parts: list[np.ndarray] = []
        user_counts: list[np.ndarray] = []
        item_order: list[np.ndarray] = []
        item_counts = np.zeros(len(log.items), dtype=np.int64)
        seen = np.zeros(len(log.items), dtype=bool)
        repeats = 0
        for bucket in progress(log.buckets, desc="vocabularies", unit="bucket"):
            frame, dropped = _bucket_frame(log, bucket, source.has_label)
            repeats += dropped
            train = frame.iloc[per_user_roles(protocol, frame)[0]]
            codes, uniques = pd.factorize(train["user"], sort=False)
            user_parts.append(np.asarray(uniques, dtype=object))
            user_counts.append(np.bincount(codes, minlength=len(uniques)))
            items = train["item"].to_numpy()
            first = pd.unique(items)
            item_order.append(first[~seen[first]])
            seen[first] = True
            item_counts += np.bincount(items, minlength=len(log.items))
        if repeats:
            warn_repeated_rows(repeats, source.location)
        rows = sum(bucket.rows for bucket in log.buckets) - repeats
        raw.description = raw.description or f"{source.name} (own log: {rows:,} interactions)"
        train_users, train_user_counts = np.concatenate(user_parts), np.concatenate(user_counts)
        order = np.concatenate(item_order).astype(np.int64)
        known = (
            id_vocabulary(train_users, train_user_counts, min_count, user_id_buckets),
            id_vocabulary(log.items[order], item_counts[order], min_count),
        )
        spec = build_spec(raw, train_users, log.items[order], max_history, history_gaps, known)
        catalog_ids = np.empty(len(log.items), dtype=object)
        catalog_ids[log.item_row] = log.items
        catalog_ids = catalog_ids.astype(str)
        catalog = encode_catalog(raw, spec, catalog_ids)

        # Step 4: the shards.
        writer = ShardWriter(path, key)
        offset = 0
        for bucket in progress(log.buckets, desc="writing shards", unit="bucket"):
            frame, _ = _bucket_frame(log, bucket, source.has_label)
            roles = per_user_roles(protocol, frame)
            train_split, validation, test = encode_splits(
                raw, frame, roles, protocol, spec, catalog, max_history, history_gaps
            )
            writer.add("train", train_split, order=offset + np.arange(len(train_split)))
            writer.add("validation", validation)
            writer.add("test", test)
            offset += len(train_split)
        counts = np.zeros(len(log.items), dtype=np.float64)
        counts[log.item_row] = item_counts
        stored, name, description = protocol_label(raw, protocol)
        titles = raw.items.loc[catalog_ids, "title"].to_numpy().astype(str)
        return writer.finish(catalog_ids, titles, catalog, counts / counts.sum(), spec, name, stored, description)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
