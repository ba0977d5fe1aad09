"""Your own interaction logs: a dataset description (TOML or JSON) and a loader that checks it.

A description names the files and the columns; everything else (splitting, vocabularies,
histories, caching) is what the registered datasets get. Example ``mylog.toml``::

    name = "shop"
    interactions = ["logs/2026-*.csv.gz"]     # globs, relative to this file; CSV, Parquet or JSON lines
    user = "user_id"
    item = "sku"
    timestamp = "ts"                          # integers (any unit) or dates/times pandas can parse
    rating = "stars"                          # optional
    label = "clicked"                         # optional 0/1 column (pre-ranking); else rating >= positive_rating
    positive_rating = 4                       # without a label column, pre-ranking's positives
    items = "catalog.parquet"                 # optional side tables, keyed by the same id columns
    item_features = ["brand"]                 # categorical columns of the item table
    item_multi_features = ["tags"]            # lists: a JSON/Parquet list or a "|"-separated string
    users = "users.csv"
    user_features = ["country"]
    unknown_items = "error"                   # log items missing from the item table: "error" or "oov"
    min_count = 1                             # users / items with fewer training rows share the OOV id
    user_id_buckets = 0                       # > 0: hash user ids into this many embedding rows
    shard_rows = 1000000                      # log rows per preparation bucket and training shard

The same fields are the arguments of :class:`DatasetDescription`. Pass the file's path wherever a
dataset name goes (``load_prepared("mylog.toml")``, ``--dataset=mylog.toml``), or the object
itself to :func:`~tfcs3.data.datasets.load_prepared`.

Under the retrieval and per-user pre-ranking protocols a description is prepared out of core
(:mod:`tfcs3.data.streaming`) into Parquet shards that serve as its prepared-data cache, and
training streams them (:mod:`tfcs3.data.shards`); the other protocols prepare it in memory.
``min_count`` leaves users and items with fewer training rows out of the id vocabularies: they
share the OOV index (1), in training and at serving time. ``user_id_buckets`` > 0 hashes user ids
into that many indices instead of listing them (for very many users; colliding users share a row,
and a user new at serving time gets its bucket's row rather than the OOV one).

Checks (each a :class:`~tfcs3.data.raw.DataFormatError` naming the file, the row and the column):
a file that is missing, empty or unreadable, a missing column, a null or empty id, a timestamp
that does not parse, a non-0/1 label, a repeated id in a side table, and, with
``unknown_items="error"`` (the default), a log item missing from the item table; with ``"oov"``
such items are kept with unknown features and counted in a warning. Exact repeated log rows are
dropped with a warning (:func:`~tfcs3.data.raw.drop_repeated_rows`). Users missing from the user
table get the value ``"unknown"`` for every user feature.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfcs3.data.raw import DataFormatError, RawDataset, drop_repeated_rows, quote, unique_ids

SUFFIXES = (".toml", ".json")
UNKNOWN_ITEMS = ("error", "oov")
UNKNOWN = "unknown"


@dataclasses.dataclass(frozen=True)
class DatasetDescription:
    """Where a log is and what its columns mean (see the module docstring for each field).

    Example:
        >>> desc = DatasetDescription(name="shop", interactions=["log.csv"], user="u", item="i", timestamp="t")
        >>> raw = load_described(desc)
    """

    name: str
    interactions: list[str]
    user: str
    item: str
    timestamp: str
    rating: str | None = None
    label: str | None = None
    users: str | None = None
    items: str | None = None
    user_features: list[str] = dataclasses.field(default_factory=list)
    item_features: list[str] = dataclasses.field(default_factory=list)
    item_multi_features: list[str] = dataclasses.field(default_factory=list)
    multi_separator: str = "|"
    title: str | None = None
    unknown_items: str = "error"
    description: str = ""
    positive_rating: float = 4.0
    min_count: int = 1
    user_id_buckets: int = 0
    shard_rows: int = 1_000_000
    base_dir: str = "."

    def __post_init__(self) -> None:
        if not self.interactions:
            raise DataFormatError(f"dataset {self.name!r}: 'interactions' names no file")
        for field in ("min_count", "user_id_buckets", "shard_rows"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
                raise DataFormatError(f"dataset {self.name!r}: {field} must be a whole number, got {value!r}")
            object.__setattr__(self, field, int(value))  # JSON's 1e6 is a float
        if int(self.user_id_buckets) < 0:
            raise DataFormatError(f"dataset {self.name!r}: user_id_buckets must be >= 0, got {self.user_id_buckets}")
        if int(self.min_count) < 1 or int(self.shard_rows) < 1:
            raise DataFormatError(
                f"dataset {self.name!r}: min_count and shard_rows must be >= 1, got {self.min_count}, {self.shard_rows}"
            )
        if self.unknown_items not in UNKNOWN_ITEMS:
            raise DataFormatError(f"unknown_items must be one of {UNKNOWN_ITEMS}, got {self.unknown_items!r}")
        if (self.user_features and not self.users) or (
            (self.item_features or self.item_multi_features) and not self.items
        ):
            raise DataFormatError(
                f"dataset {self.name!r}: user/item features need the users/items table they come from"
            )

    @classmethod
    def from_file(cls, path: str | Path) -> DatasetDescription:
        """Reads a ``.toml`` or ``.json`` description; relative paths in it are read from its folder."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as err:
            raise DataFormatError(f"{path}: cannot read the dataset description ({err})") from None
        try:
            fields = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
            raise DataFormatError(f"{path}: not a valid {path.suffix[1:].upper()} dataset description: {err}") from None
        if not isinstance(fields, dict):
            raise DataFormatError(f"{path}: a dataset description is a table of fields")
        known = {f.name for f in dataclasses.fields(cls)} - {"base_dir"}
        unknown = sorted(set(fields) - known)
        missing = sorted({"name", "interactions", "user", "item", "timestamp"} - set(fields))
        if unknown or missing:
            raise DataFormatError(
                f"{path}: unknown fields {unknown}, missing fields {missing} (fields: {sorted(known)})"
            )
        if isinstance(fields["interactions"], str):
            fields["interactions"] = [fields["interactions"]]
        return cls(**fields, base_dir=str(path.resolve().parent))

    def files(self) -> list[Path]:
        """The interaction files the globs match, sorted; an error when a pattern matches none."""
        out: list[Path] = []
        for pattern in self.interactions:
            full = str(Path(self.base_dir) / pattern)
            matched = sorted(Path(p) for p in glob.glob(full))
            if not matched:
                raise DataFormatError(f"dataset {self.name!r}: no file matches {full}")
            out += matched
        return out

    def side_table(self, which: str) -> Path | None:
        name = self.users if which == "users" else self.items
        return None if name is None else Path(self.base_dir) / name


def is_description(name: str | Path) -> bool:
    """Whether ``name`` is the path of a dataset description (rather than a registered name)."""
    return Path(name).suffix in SUFFIXES and Path(name).is_file()


def _kind(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind not in (".csv", ".tsv", ".txt", ".parquet", ".jsonl", ".json", ".ndjson"):
        raise DataFormatError(f"{path}: unknown file type {kind!r} (CSV, TSV, Parquet or JSON lines)")
    return kind


def _frames(path: Path, kind: str, chunk_rows: int | None) -> Iterator[pd.DataFrame]:
    if kind == ".parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        if chunk_rows is None:
            yield table.read().to_pandas()
        else:
            for batch in table.iter_batches(batch_size=chunk_rows):
                yield batch.to_pandas()
    elif kind in (".jsonl", ".json", ".ndjson"):
        if chunk_rows is None:
            yield pd.read_json(path, lines=True, dtype=False)
        else:
            with pd.read_json(path, lines=True, dtype=False, chunksize=chunk_rows) as reader:
                yield from reader
    else:
        sep = "\t" if kind == ".tsv" else ","
        if chunk_rows is None:
            yield pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
        else:
            with pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, chunksize=chunk_rows) as reader:
                yield from reader


def read_chunks(path: Path, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """A CSV / TSV (optionally gzipped), Parquet or JSON-lines file, by its extension, as frames of
    at most ``chunk_rows`` rows (``None``: one frame); ids and categories stay strings. Errors name
    the file, and a file without rows is one."""
    kind = _kind(path)
    if not path.is_file():
        raise DataFormatError(f"Missing data file: {path}")
    rows = 0
    try:
        for frame in _frames(path, kind, chunk_rows):
            rows += len(frame)
            if len(frame):
                yield frame
    except ImportError as err:
        raise DataFormatError(f"{path}: reading it needs an optional library ({err})") from None
    except (pd.errors.EmptyDataError, ValueError, OSError, UnicodeDecodeError, EOFError) as err:
        raise DataFormatError(f"{path}: cannot be read as {kind[1:]} ({str(err)[:200]})") from None
    except Exception as err:  # pyarrow's own errors (a corrupt Parquet file)
        raise DataFormatError(
            f"{path}: cannot be read as {kind[1:]} ({type(err).__name__}: {str(err)[:200]})"
        ) from None
    if rows == 0:
        raise DataFormatError(f"{path}: the file holds no rows")


def read_table(path: Path) -> pd.DataFrame:
    """A whole file as one frame (:func:`read_chunks`)."""
    return pd.concat(list(read_chunks(path)), ignore_index=True)


def _column(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    if column not in frame.columns:
        raise DataFormatError(f"{path}: no column {column!r} (columns: {quote(list(frame.columns), 200)})")
    return frame[column]


def _first_bad(mask: pd.Series | np.ndarray, first_row: int) -> int:
    """The file row (1-based, ``first_row`` being the frame's first) of the first true entry."""
    return int(np.flatnonzero(np.asarray(mask))[0]) + first_row


def _ids(frame: pd.DataFrame, column: str, path: Path, first_row: int = 1) -> pd.Series:
    """Column ``column`` as non-empty strings; a null or empty id is an error naming its row."""
    values = _column(frame, column, path)
    empty = values.isna() | (values.astype(str).str.strip() == "")
    if empty.any():
        row = _first_bad(empty, first_row)
        raise DataFormatError(f"{path}, row {row}: column {column!r} holds a null or empty id")
    return values.astype(str)


INTEGER_TIMES, DATE_TIMES = "integers", "date/times"


def _timestamps(
    frame: pd.DataFrame, column: str, path: Path, first_row: int = 1, kind: str | None = None
) -> tuple[np.ndarray, str]:
    """Integers as they are (any unit), otherwise date/times parsed to seconds since the epoch;
    and which of the two the column holds. ``kind`` (that of the file's earlier chunks) must
    then hold for this chunk too: a file does not mix the two."""
    values = _column(frame, column, path)
    numbers = pd.to_numeric(values, errors="coerce")
    found = INTEGER_TIMES if numbers.notna().any() else DATE_TIMES
    if kind is not None and found != kind:
        bad = numbers.notna() if kind == DATE_TIMES else numbers.isna()
        row = _first_bad(bad, 0)
        raise DataFormatError(
            f"{path}, row {row + first_row}: column {column!r}: {quote(values.iloc[row])} is not one of the "
            f"{kind} the earlier rows hold (a column of times is either integers or date/times)"
        )
    if found == INTEGER_TIMES:  # a column of integers: every value must be one
        bad = numbers.isna() | (numbers != np.floor(numbers))
        if not bad.any():
            return numbers.to_numpy().astype(np.int64), found
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
        bad = parsed.isna()
    if bad.any():
        row = _first_bad(bad, 0)
        raise DataFormatError(
            f"{path}, row {row + first_row}: column {column!r}: cannot parse {quote(values.iloc[row])} as a time"
        )
    seconds = (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.to_numpy().astype(np.int64), found


def _interaction_part(
    desc: DatasetDescription, frame: pd.DataFrame, path: Path, first_row: int, kind: str | None
) -> tuple[pd.DataFrame, str]:
    """``frame`` (rows ``first_row``... of ``path``) checked, in the columns of
    :attr:`RawDataset.interactions`, and the kind of its times (``kind``: the earlier chunks')."""
    times, kind = _timestamps(frame, desc.timestamp, path, first_row, kind)
    part = pd.DataFrame(
        {
            "user": _ids(frame, desc.user, path, first_row).to_numpy(),
            "item": _ids(frame, desc.item, path, first_row).to_numpy(),
            "rating": np.full(len(frame), np.nan, dtype=np.float32),
            "timestamp": times,
        }
    )
    if desc.rating:
        ratings = pd.to_numeric(_column(frame, desc.rating, path), errors="coerce")
        if ratings.isna().any():
            row = _first_bad(ratings.isna(), first_row)
            raise DataFormatError(f"{path}, row {row}: column {desc.rating!r} is not a number")
        part["rating"] = ratings.to_numpy().astype(np.float32)
    if desc.label:
        labels = pd.to_numeric(_column(frame, desc.label, path), errors="coerce")
        if not labels.isin([0, 1]).all():
            row = _first_bad(~labels.isin([0, 1]), first_row)
            raise DataFormatError(f"{path}, row {row}: column {desc.label!r} must be 0 or 1")
        part["label"] = labels.to_numpy().astype(np.float32)
    return part, kind


def interaction_chunks(desc: DatasetDescription, chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The log's rows, file after file, in checked frames of at most ``chunk_rows`` rows (columns
    ``user``, ``item``, ``rating``, ``timestamp`` and, with a label column, ``label``)."""
    for path in desc.files():
        first_row, kind = 1, None
        for frame in read_chunks(path, chunk_rows):
            part, kind = _interaction_part(desc, frame, path, first_row, kind)
            yield part
            first_row += len(frame)


def _interactions(desc: DatasetDescription) -> pd.DataFrame:
    files = desc.files()
    interactions = pd.concat(list(interaction_chunks(desc)), ignore_index=True)
    return drop_repeated_rows(interactions, files[0] if len(files) == 1 else Path(desc.base_dir))


def _multi(value: Any, separator: str) -> list[str]:
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value if str(v) != ""]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [v for v in str(value).split(separator) if v != ""]


def _first_row_with(desc: DatasetDescription, column: str, values: set[str]) -> tuple[Path, int, str]:
    """The first log file, row and value of ``column`` that is one of ``values`` (for an error
    message: the log is read again, a chunk at a time)."""
    for path in desc.files():
        first_row = 1
        for frame in read_chunks(path, 500_000):
            hits = np.flatnonzero(frame[column].astype(str).isin(values).to_numpy())
            if len(hits):
                return path, first_row + int(hits[0]), str(frame[column].iloc[hits[0]])
            first_row += len(frame)
    raise AssertionError(f"no value of {column!r} in the log is one of the {len(values)} given")


def side_table(desc: DatasetDescription, which: str, ids: pd.Index) -> pd.DataFrame:
    """The user or item table for ``ids`` (every id of the log), features as strings."""
    path = desc.side_table(which)
    key = desc.user if which == "users" else desc.item
    categorical = desc.user_features if which == "users" else desc.item_features
    multi = [] if which == "users" else desc.item_multi_features
    title = desc.title if which == "items" else None
    if path is None:
        frame = pd.DataFrame(index=ids)
    else:
        table = read_table(path)
        table.index = pd.Index(_ids(table, key, path).to_numpy(), name=which[:-1])
        table = unique_ids(table, path, which[:-1], key)
        columns = [*categorical, *multi, *([title] if title else [])]
        for column in columns:
            _column(table, column, path)
        missing = ids.difference(table.index)
        if len(missing) and which == "items" and desc.unknown_items == "error":
            log, row, item = _first_row_with(desc, desc.item, set(missing))
            raise DataFormatError(
                f"{log}, row {row}, column {desc.item!r}: item {quote(item)} is not in the item table {path} "
                f'({len(missing):,} item(s) of the log are missing; set unknown_items = "oov" to keep them '
                "with unknown features)"
            )
        if len(missing):
            warnings.warn(
                f"{path}: {len(missing):,} {which} of the log have no row here; their features are {UNKNOWN!r}",
                stacklevel=3,
            )
        frame = table.reindex(ids)
    out = pd.DataFrame(index=pd.Index(ids, name=which[:-1]))
    for column in categorical:
        out[column] = frame[column].astype(object).where(frame[column].notna(), UNKNOWN).astype(str).to_numpy()
    for column in multi:
        out[column] = [_multi(v, desc.multi_separator) for v in frame[column].to_numpy()]
    if which == "items":
        titles = frame[title].astype(str).to_numpy() if title else ids.to_numpy()
        out.insert(0, "title", titles)
    return out


def load_described(description: DatasetDescription | str | Path) -> RawDataset:
    """Reads the log a description names, checks it, and returns the :class:`RawDataset` every
    protocol prepares (see the module docstring)."""
    desc = description if isinstance(description, DatasetDescription) else DatasetDescription.from_file(description)
    interactions = _interactions(desc)
    users = pd.Index(pd.unique(interactions["user"]))
    items = pd.Index(pd.unique(interactions["item"]))
    return RawDataset(
        name=desc.name,
        interactions=interactions,
        users=side_table(desc, "users", users),
        items=side_table(desc, "items", items),
        user_features=list(desc.user_features),
        item_features=list(desc.item_features),
        item_multi_features=list(desc.item_multi_features),
        description=desc.description or f"{desc.name} (own log: {len(interactions):,} interactions)",
        timestamps_are_times=True,
        positive_rating=float(desc.positive_rating),
    )
