"""Prepared data as Parquet shards: the out-of-core form of a :class:`PreparedData`.

A shard store is a folder::

    meta.json               the key, name, protocol, feature spec, row counts and shard list
    catalog.parquet         catalog ids, titles, training probabilities, encoded item features
    train-00000.parquet     training rows, one file per preparation bucket (rows in random order)
    validation-00000.parquet, test-00000.parquet   the held-out rows (with exclusion lists)

Every Parquet file carries the store's key in its schema metadata, and :func:`read_shards` refuses
a store (or any file of it) whose key differs from the one asked for: :class:`CacheMiss`, like
the ``.npz`` cache. Parquet holds plain columns only, so nothing in a store runs code when read.
A store is written into a temporary folder and renamed into place once complete
(:class:`ShardWriter`), so a preparation that fails leaves any earlier store untouched.

Reading keeps the catalog and the held-out splits in memory and gives the training split as a
:class:`ShardedSplit`, which :func:`~tfcs3.data.pipeline.make_dataset` streams with ``tf.data``.
Under retrieval the held-out splits hold one row per user each, so memory grows with the numbers
of users and items, not with the log; under per-user pre-ranking they are a fifth of the log.

Example:
    >>> data = read_shards("~/.cache/tfcs3/prepared/shop-retrieval-h50-.../", key)
    >>> data.train                      # ShardedSplit: 12,345,678 rows in 25 shards
    >>> make_dataset(data.train, batch_size=1024, shuffle=True, seed=0)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from tfcs3.data.cache import SPLITS, CacheMiss
from tfcs3.data.features import FeatureSpec
from tfcs3.data.prepared import PreparedData, Split
from tfcs3.data.protocols import RETRIEVAL
from tfcs3.processes import alive

FORMAT = "tfcs3-shards-1"
META = "meta.json"
KEY = b"tfcs3_key"
#: Column that records a training row's place in the canonical (user, time) order.
ORDER = "order"
#: Rows a training stream shuffles over (besides the random order inside each shard).
SHUFFLE_BUFFER = 65_536
#: Rows per Parquet row group, the unit a training stream reads, and the groups read at a time.
ROW_GROUP, CYCLE = 65_536, 4


def _column_array(values: np.ndarray) -> pa.Array:
    """A numpy column as Arrow: a 2-D array becomes fixed-size lists of its row width."""
    if values.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])
    if values.dtype == object or values.dtype.kind == "U":
        return pa.array(values.astype(str), type=pa.string())
    return pa.array(values)


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """Arrow column back to numpy (fixed-size lists to a 2-D array, strings to objects)."""
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        return array.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return np.asarray(array.to_pylist(), dtype=object)
    return array.to_numpy(zero_copy_only=False)


def split_table(split: Split, order: np.ndarray | None = None) -> pa.Table:
    """``split`` as an Arrow table: ``features:<name>``, ``target``, ``users`` and the optional
    ``labels``, ``timestamps``, ``exclusions`` (lists) and :data:`ORDER` columns."""
    columns: dict[str, pa.Array] = {f"features:{k}": _column_array(v) for k, v in split.features.items()}
    columns["target"] = _column_array(split.target)
    columns["users"] = _column_array(split.users)
    if split.labels is not None:
        columns["labels"] = _column_array(split.labels)
    if split.timestamps is not None:
        columns["timestamps"] = _column_array(split.timestamps)
    if split.exclusion_indptr is not None and split.exclusion_rows is not None:
        columns["exclusions"] = pa.ListArray.from_arrays(
            pa.array(split.exclusion_indptr.astype(np.int32)), pa.array(split.exclusion_rows)
        )
    if order is not None:
        columns[ORDER] = _column_array(order)
    return pa.table(columns)


def table_split(table: pa.Table) -> Split:
    """The :class:`Split` an Arrow table of :func:`split_table` holds (rows in :data:`ORDER` when
    the table has that column)."""
    if ORDER in table.column_names:
        table = table.take(pa.array(np.argsort(_numpy(table.column(ORDER)), kind="stable")))
    names = table.column_names
    indptr = rows = None
    if "exclusions" in names:
        lists = table.column("exclusions").combine_chunks()
        indptr = lists.offsets.to_numpy().astype(np.int64)
        indptr -= indptr[0]  # a sliced list array starts at its own offset
        rows = lists.flatten().to_numpy(zero_copy_only=False).astype(np.int64)
    return Split(
        features={n.split(":", 1)[1]: _numpy(table.column(n)) for n in names if n.startswith("features:")},
        target=_numpy(table.column("target")),
        users=_numpy(table.column("users")),
        labels=_numpy(table.column("labels")) if "labels" in names else None,
        timestamps=_numpy(table.column("timestamps")) if "timestamps" in names else None,
        exclusion_indptr=indptr,
        exclusion_rows=rows,
    )


def _read(path: Path, key: str, columns: list[str] | None = None) -> pa.Table:
    try:
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as err:
        raise CacheMiss(f"{path} cannot be read ({type(err).__name__}: {err})") from err
    found = (table.schema.metadata or {}).get(KEY, b"").decode()
    if found != key:
        raise CacheMiss(f"{path} holds {found!r}, not {key!r}")
    return table


def _read_group(path: Path, key: str, group: int, columns: list[str]) -> pa.Table:
    """Row group ``group`` of a shard (the unit a training stream reads), key checked."""
    try:
        shard = pq.ParquetFile(path)
        found = (shard.schema_arrow.metadata or {}).get(KEY, b"").decode()
        table = shard.read_row_group(group, columns=columns)
    except (OSError, pa.ArrowException) as err:
        raise CacheMiss(f"{path} cannot be read ({type(err).__name__}: {err})") from err
    if found != key:
        raise CacheMiss(f"{path} holds {found!r}, not {key!r}")
    return table


class ShardedSplit(Split):
    """The training split of a shard store, read from its files when needed.

    ``len()``, :meth:`column`, :meth:`id_counts` and :meth:`head` read little; :meth:`dataset`
    streams the rows with ``tf.data`` (peak memory: a few row groups plus the shuffle buffer). The
    array attributes (``features``, ``target``, ``labels``, ...) load the whole split on first
    use, for the models that need it in memory (the sequence models' windows, CS3's replay): a
    documented fallback, sized like the in-memory path.
    """

    def __init__(self, files: list[Path], length: int, key: str):  # noqa: D107 (arrays are loaded lazily)
        self.files = list(files)
        self.length = int(length)
        self.key = key
        self._loaded: Split | None = None

    def _whole(self) -> Split:
        if self._loaded is None:
            self._loaded = table_split(pa.concat_tables([_read(f, self.key) for f in self.files]))
        return self._loaded

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return f"ShardedSplit({self.length:,} rows in {len(self.files)} shards)"

    @property
    def feature_names(self) -> list[str]:
        names = pq.read_schema(self.files[0]).names
        return [n.split(":", 1)[1] for n in names if n.startswith("features:")]

    @property
    def has_labels(self) -> bool:
        return "labels" in pq.read_schema(self.files[0]).names

    def id_counts(self, name: str, minlength: int) -> np.ndarray:
        """How many rows hold each index of feature ``name``, one row group at a time."""
        counts = np.zeros(minlength, dtype=np.int64)
        for f in self.files:
            for group in range(pq.ParquetFile(f).num_row_groups):
                ids = _numpy(_read_group(f, self.key, group, [f"features:{name}"]).column(0))
                counts += np.bincount(ids, minlength=minlength)[:minlength]
        return counts

    def head(self, n: int) -> Split:
        """Some ``n`` rows (of the first shards, in their stored order) as an in-memory split."""
        tables, rows = [], 0
        for f in self.files:
            if rows >= n:
                break
            table = _read(f, self.key).drop_columns([ORDER])
            tables.append(table.slice(0, n - rows))
            rows += min(len(table), n - rows)
        return table_split(pa.concat_tables(tables))

    def dataset(
        self, batch_size: int, shuffle: bool = False, seed: int | None = None, drop_remainder: bool = False
    ) -> tf.data.Dataset:
        """Batches of feature dictionaries (plus ``"label"``), streamed from the shards. The unit
        read is a row group of :data:`ROW_GROUP` rows: their order over all shards is reshuffled
        every epoch, :data:`CYCLE` groups are read at a time and interleaved row by row, and a
        buffer of :data:`SHUFFLE_BUFFER` rows shuffles them again (each shard's rows are already
        stored in random order). Memory in flight: about ``CYCLE`` groups plus the buffer."""
        from tfcs3.data.pipeline import LABEL

        names = self.feature_names
        schema = pq.read_schema(self.files[0])
        specs: dict[str, tf.TensorSpec] = {}
        for name in names:
            field = schema.field(f"features:{name}").type
            width = field.list_size if pa.types.is_fixed_size_list(field) else None
            specs[name] = tf.TensorSpec([None] if width is None else [None, width], tf.int32)
        if self.has_labels:
            specs[LABEL] = tf.TensorSpec([None], tf.float32)
        keys = list(specs)
        key = self.key
        columns = [f"features:{n}" for n in names] + (["labels"] if LABEL in specs else [])

        def load(path: tf.Tensor, group: tf.Tensor) -> list[np.ndarray]:
            table = _read_group(Path(path.numpy().decode()), key, int(group.numpy()), columns)
            arrays = {(LABEL if n == "labels" else n.split(":", 1)[1]): _numpy(table.column(n)) for n in columns}
            return [arrays[k].astype(specs[k].dtype.as_numpy_dtype) for k in keys]

        def rows(path: tf.Tensor, group: tf.Tensor) -> tf.data.Dataset:
            values = tf.py_function(load, [path, group], [specs[k].dtype for k in keys])
            for value, k in zip(values, keys, strict=True):
                value.set_shape(specs[k].shape)
            return tf.data.Dataset.from_tensor_slices(dict(zip(keys, values, strict=True)))

        groups = [(str(f), g) for f in self.files for g in range(pq.ParquetFile(f).num_row_groups)]
        units = tf.data.Dataset.from_tensor_slices(([p for p, _ in groups], [g for _, g in groups]))
        if shuffle:
            units = units.shuffle(len(groups), seed=seed, reshuffle_each_iteration=True)
        ds = units.interleave(rows, cycle_length=min(CYCLE, len(groups)), block_length=1)
        if shuffle:
            ds = ds.shuffle(min(SHUFFLE_BUFFER, max(self.length, 1)), seed=seed, reshuffle_each_iteration=True)
        return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _lazy(field: str) -> property:
    return property(lambda self: getattr(self._whole(), field), doc=f"The whole split's ``{field}`` (loaded once).")


for _field in ("features", "target", "users", "labels", "timestamps", "exclusion_indptr", "exclusion_rows"):
    setattr(ShardedSplit, _field, _lazy(_field))


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Removes what killed preparations of the store ``path`` left beside it (spill and
    temporary folders named ``.<store>.spill-<pid>-*`` / ``.<store>.tmp-<pid>-*`` whose process is
    gone); returns them."""
    removed = []
    for kind in ("spill", "tmp", "old"):
        for leftover in path.parent.glob(f".{path.name}.{kind}-*"):
            pid = leftover.name.split(f".{kind}-", 1)[1].split("-", 1)[0]
            if pid.isdigit() and not alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)
                removed.append(leftover)
    return removed


class ShardWriter:
    """Writes a shard store into a temporary folder beside ``path``; :meth:`finish` renames it into
    place (replacing an older store only then), :meth:`abort` removes it.

    Example:
        >>> writer = ShardWriter(path, key)
        >>> writer.add("train", split, order=np.arange(len(split)))
        >>> writer.finish(catalog_ids, titles, catalog, probability, spec, name, protocol, description)
    """

    def __init__(self, path: str | Path, key: str):
        self.path = Path(path)
        self.key = key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.tmp-{os.getpid()}-"))
        self.files: dict[str, list[str]] = {s: [] for s in SPLITS}
        self.counts = dict.fromkeys(SPLITS, 0)
        self.features: dict[str, list[str]] = {}

    def _write(self, table: pa.Table, name: str) -> None:
        table = table.replace_schema_metadata({KEY: self.key.encode()})
        pq.write_table(table, self.tmp / name, row_group_size=ROW_GROUP)

    def add(self, split_name: str, split: Split, order: np.ndarray | None = None) -> None:
        """Appends ``split`` as one more shard of ``split_name``; training rows are stored in a
        random order with their canonical positions ``order``."""
        if len(split) == 0:
            return
        name = f"{split_name}-{len(self.files[split_name]):05d}.parquet"
        table = split_table(split, order)
        if order is not None:  # mixed inside the shard, so a stream needs no huge shuffle buffer
            table = table.take(pa.array(np.random.default_rng(int(order[0])).permutation(len(table))))
        self._write(table, name)
        self.files[split_name].append(name)
        self.counts[split_name] += len(split)
        self.features[split_name] = list(split.features)

    def finish(
        self,
        catalog_ids: np.ndarray,
        catalog_titles: np.ndarray,
        catalog: dict[str, np.ndarray],
        item_probability: np.ndarray,
        spec: FeatureSpec,
        name: str,
        protocol: str,
        description: str,
    ) -> Path:
        columns = {
            "catalog_ids": _column_array(catalog_ids),
            "catalog_titles": _column_array(catalog_titles),
            "item_probability": _column_array(item_probability),
        }
        columns.update({f"catalog:{k}": _column_array(v) for k, v in catalog.items()})
        self._write(pa.table(columns), "catalog.parquet")
        meta = {
            "format": FORMAT,
            "key": self.key,
            "name": name,
            "protocol": protocol,
            "description": description,
            "spec": spec.to_json(),
            "counts": self.counts,
            "files": self.files,
            "features": self.features,
            "catalog": list(catalog),
        }
        (self.tmp / META).write_text(json.dumps(meta, indent=1))
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}-{id(self)}")
            os.replace(self.path, old)
        try:
            os.replace(self.tmp, self.path)
        except OSError:
            if old is not None:  # put the previous store back
                os.replace(old, self.path)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def read_shards(path: str | Path, key: str) -> PreparedData:
    """The :class:`PreparedData` of the store at ``path`` (training split streamed); raises
    :class:`CacheMiss` when it is absent, incomplete or of another key."""
    path = Path(path)
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError) as err:
        raise CacheMiss(f"{path} is not a shard store ({type(err).__name__})") from err
    if meta.get("format") != FORMAT or meta.get("key") != key:
        raise CacheMiss(f"{path} holds {meta.get('key')!r} ({meta.get('format')}), not {key!r}")
    catalog = _read(path / "catalog.parquet", key)

    train_files = [path / f for f in meta["files"]["train"]]
    for shard in train_files:  # streamed later: a missing or foreign shard is refused now
        try:
            found = (pq.read_schema(shard).metadata or {}).get(KEY, b"").decode()
        except (OSError, pa.ArrowException) as err:
            raise CacheMiss(f"{shard} cannot be read ({type(err).__name__})") from err
        if found != key:
            raise CacheMiss(f"{shard} holds {found!r}, not {key!r}")

    def held_out(split_name: str) -> Split:
        tables = [_read(path / f, key) for f in meta["files"][split_name]]
        if tables:
            return table_split(pa.concat_tables(tables))
        if not train_files:
            return Split(features={}, target=np.zeros(0, dtype=np.int64), users=np.zeros(0, dtype=object))
        # no held-out rows (every user too short): empty columns shaped like the training rows'
        empty = table_split(pq.read_schema(train_files[0]).empty_table().drop_columns([ORDER]))
        if meta["protocol"] == RETRIEVAL:
            empty.exclusion_indptr, empty.exclusion_rows = np.zeros(1, np.int64), np.zeros(0, np.int64)
        return empty

    return PreparedData(
        name=meta["name"],
        protocol=meta["protocol"],
        spec=FeatureSpec.from_json(meta["spec"]),
        catalog_ids=_numpy(catalog.column("catalog_ids")).astype(str),
        catalog_titles=_numpy(catalog.column("catalog_titles")).astype(str),
        catalog={k: _numpy(catalog.column(f"catalog:{k}")) for k in meta["catalog"]},
        item_probability=_numpy(catalog.column("item_probability")),
        train=ShardedSplit(train_files, meta["counts"]["train"], key),
        validation=held_out("validation"),
        test=held_out("test"),
        description=meta["description"],
    )
