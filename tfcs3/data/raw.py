"""The raw, dataset-independent form every loader returns, and file helpers shared by loaders."""

from __future__ import annotations

import dataclasses
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


class DataFormatError(ValueError):
    """A data file is missing or malformed; the message names the file (and line)."""


@dataclasses.dataclass
class RawDataset:
    """Interactions plus user and item side information, with ids spelled as in the files.

    Attributes:
        name: dataset name, e.g. ``"ml-100k"``; a subset says so (``"ml-1m[users1-2999]"``).
        interactions: columns ``user`` (str), ``item`` (str), ``rating`` (float, NaN when the
            dataset has none) and ``timestamp`` (int64; for order-only data, the position).
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

    @property
    def has_ratings(self) -> bool:
        return bool(self.interactions["rating"].notna().all())


def find_file(directory: str | Path, filename: str) -> Path:
    """Returns ``directory/filename`` or ``directory/filename.gz``, whichever exists."""
    directory = Path(directory)
    for candidate in (directory / filename, directory / (filename + ".gz")):
        if candidate.is_file():
            return candidate
    raise DataFormatError(
        f"Missing data file: neither {directory / filename} nor {directory / (filename + '.gz')} exists"
    )


def read_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, line)`` (1-based, newline stripped) of a plain or gzip text file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as raw:
            text = io.TextIOWrapper(raw, encoding=encoding, newline="")
            for number, line in enumerate(text, start=1):
                line = line.rstrip("\r\n")
                if line:
                    yield number, line
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DataFormatError(f"{path}: cannot be read as {encoding} text: {err}") from err


def parse_int(value: str, path: Path, line_no: int, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataFormatError(f"{path}, line {line_no}: {what} must be an integer, got {value!r}") from None


def split_fields(line: str, sep: str, count: int, path: Path, line_no: int, layout: str) -> list[str]:
    fields = line.split(sep)
    if len(fields) != count:
        raise DataFormatError(
            f"{path}, line {line_no}: expected {count} fields separated by {sep!r} ({layout}), "
            f"got {len(fields)}: {line[:80]!r}"
        )
    return fields
