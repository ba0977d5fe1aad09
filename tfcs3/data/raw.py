"""The raw, dataset-independent form every loader returns, and file helpers shared by loaders."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: A checksum file beside the data (``sha256  name`` per line, digests of the uncompressed files).
CHECKSUMS = "SHA256SUMS"
#: An optional 0/1 column of ``RawDataset.interactions``: the pre-ranking label (else rating >= 4).
LABEL_COLUMN = "label"
#: Longest value quoted in an error message.
QUOTE_LIMIT = 60


class DataFormatError(ValueError):
    """A data file is missing or malformed; the message names the file (and line)."""


@dataclasses.dataclass
class RawDataset:
    """Interactions plus user and item side information, with ids spelled as in the files.

    Attributes:
        name: dataset name, e.g. ``"ml-100k"``; a subset says so (``"ml-1m[users1-2999]"``).
        interactions: columns ``user`` (str), ``item`` (str), ``rating`` (float, NaN when the
            dataset has none) and ``timestamp`` (int64; for order-only data, the position); an
            optional ``label`` (0/1) is the pre-ranking label, which is otherwise rating >= 4.
        users: indexed by user id (str); one string column per user feature.
        items: indexed by item id (str); a ``title`` column, string columns for categorical item
            features and list-of-string columns for multi-valued ones.
        user_features: names of the categorical columns of ``users``.
        item_features: names of the categorical columns of ``items``.
        item_multi_features: names of the list-valued columns of ``items``.
        description: one line saying what the data is (and which subset).
        timestamps_are_times: ``False`` when ``timestamp`` is only a position (order-only data),
            so time gaps mean nothing.
        extras: anything a generator wants to hand to tests (e.g. the synthetic ground truth).
        positive_rating: without a ``label`` column, pre-ranking's label is rating >= this.
    """

    name: str
    interactions: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    user_features: list[str]
    item_features: list[str]
    item_multi_features: list[str]
    description: str = ""
    timestamps_are_times: bool = True
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    positive_rating: float = 4.0

    @property
    def has_ratings(self) -> bool:
        return bool(self.interactions["rating"].notna().all())

    @property
    def has_labels(self) -> bool:
        """Whether pre-ranking has labels: a 0/1 ``label`` column, else ratings (label = rating >=
        :attr:`positive_rating`)."""
        return LABEL_COLUMN in self.interactions.columns or self.has_ratings

    def labels(self, interactions: pd.DataFrame) -> Any:
        """The 0/1 labels of ``interactions`` rows (a subset of :attr:`interactions`), float32: the
        ``label`` column, else rating >= :attr:`positive_rating`."""
        if LABEL_COLUMN in interactions.columns:
            return interactions[LABEL_COLUMN].to_numpy().astype("float32")
        return (interactions["rating"].to_numpy() >= self.positive_rating).astype("float32")


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)``, cut to about ``limit`` characters (an error message must stay readable)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def find_file(directory: str | Path, filename: str) -> Path:
    """Returns ``directory/filename`` or ``directory/filename.gz``, whichever exists, after checking
    that it reads whole (a gzip that is corrupt or cut short is reported as such) and, when the
    folder has a ``SHA256SUMS`` entry for ``filename``, that its content matches it.

    Raises:
        DataFormatError: neither exists, or both do (which one is meant is not ours to guess), the
            folder or file cannot be read, the file is corrupt or does not match its checksum.
    """
    directory = Path(directory)
    candidates = (directory / filename, directory / (filename + ".gz"))
    try:
        found = [c for c in candidates if c.is_file()]
    except PermissionError as err:
        raise DataFormatError(
            f"{directory}: permission denied, the data folder cannot be read ({err.strerror})"
        ) from None
    if len(found) == 2:
        raise DataFormatError(
            f"Two candidate files for {filename} in {directory}: {found[0].name} and {found[1].name}; keep one"
        )
    if not found:
        raise DataFormatError(f"Missing data file: neither {candidates[0]} nor {candidates[1]} exists")
    verify(found[0], filename)
    return found[0]


def _open(path: Path) -> Any:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def verify(path: Path, name: str) -> None:
    """Reads ``path`` through once: a corrupt or truncated gzip, an unreadable file, or content
    whose sha256 differs from the ``SHA256SUMS`` entry for ``name`` beside it is a
    :class:`DataFormatError`."""
    expected = _checksums(path.parent).get(name)
    digest = hashlib.sha256()
    try:
        with _open(path) as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except PermissionError as err:
        raise DataFormatError(f"{path}: permission denied ({err.strerror})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataFormatError(f"{path}: the gzip file is corrupt or truncated ({err})") from None
    except OSError as err:
        raise DataFormatError(f"{path}: cannot be read ({err})") from None
    if expected is not None and digest.hexdigest() != expected:
        raise DataFormatError(
            f"{path}: its content does not match {path.parent / CHECKSUMS} (sha256 {digest.hexdigest()[:16]}..., "
            f"expected {expected[:16]}...): the file is corrupt or not the release the checksums describe"
        )


def _checksums(directory: Path) -> dict[str, str]:
    """``{file name: sha256}`` from ``directory/SHA256SUMS`` (empty when there is none)."""
    path = directory / CHECKSUMS
    if not path.is_file():
        return {}
    sums = {}
    for number, line in read_lines(path):
        fields = line.split()
        if len(fields) != 2 or len(fields[0]) != 64:
            raise DataFormatError(f"{path}, line {number}: expected '<sha256>  <file name>', got {quote(line)}")
        sums[fields[1].lstrip("*")] = fields[0].lower()
    return sums


def read_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, line)`` (1-based, newline stripped) of a plain or gzip text file."""
    try:
        with _open(path) as raw:
            text = io.TextIOWrapper(raw, encoding=encoding, newline="")
            for number, line in enumerate(text, start=1):
                line = line.rstrip("\r\n")
                if line:
                    yield number, line
    except PermissionError as err:
        raise DataFormatError(f"{path}: permission denied ({err.strerror})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataFormatError(f"{path}: the gzip file is corrupt or truncated ({err})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path}: cannot be read as {encoding} text: {err}") from err


def parse_int(value: str, path: Path, line_no: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataFormatError(f"{path}, line {line_no}: {what} must be an integer, got {quote(value)}") from None


def unique_ids(frame: pd.DataFrame, path: Path, what: str, column: str | None = None) -> pd.DataFrame:
    """``frame`` (indexed by id, rows in file order) if no id repeats; a repeated id in a side
    table is an error (which row is right cannot be told), naming the file, the row (1-based,
    the header not counted), the ``column`` when given and the id."""
    duplicated = frame.index.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated)[0])
        first = int(np.flatnonzero(frame.index == frame.index[row])[0])
        where = f", column {column!r}" if column else ""
        raise DataFormatError(
            f"{path}, row {row + 1}{where}: {what} id {quote(frame.index[row])} repeats row {first + 1} "
            f"({int(duplicated.sum())} repeated id(s)); each {what} must have one row"
        )
    return frame


def drop_repeated_rows(interactions: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``interactions`` without rows that repeat an earlier row exactly (same user, item, rating
    and timestamp: an export that wrote a row twice). The count dropped is reported as a
    warning, never silently; rows that differ in any field are all kept."""
    repeated = interactions.duplicated()
    if repeated.any():
        warn_repeated_rows(int(repeated.sum()), path)
        interactions = interactions[~repeated].reset_index(drop=True)
    return interactions


def warn_repeated_rows(count: int, where: object) -> None:
    """The warning for ``count`` dropped exact repeats of log rows in ``where``."""
    warnings.warn(f"{where}: dropped {count:,} interaction rows that repeat an earlier row exactly", stacklevel=3)


def split_fields(line: str, sep: str, count: int, path: Path, line_no: int, layout: str) -> list[str]:
    fields = line.split(sep)
    if len(fields) != count:
        raise DataFormatError(
            f"{path}, line {line_no}: expected {count} fields separated by {sep!r} ({layout}), "
            f"got {len(fields)}: {quote(line)}"
        )
    return fields
