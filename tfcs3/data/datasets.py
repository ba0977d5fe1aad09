"""Dataset registry: find a dataset's files, load it, prepare it under a protocol, cache the result.

Where data is looked for:

* with ``data_dir``: that folder itself, or its ``movielens-100k/``-style subfolder, and nowhere
  else (a folder named explicitly that does not hold the dataset is an error, never a silent
  fallback); ``download=True`` fetches MovieLens into its subfolder;
* without: ``$TFCS3_DATA_DIR/<folder>``, then ``$TFCS3_CACHE_DIR/<folder>`` (default
  ``~/.cache/tfcs3/<folder>``), where ``download=True`` puts MovieLens fetched from GroupLens.

A download folder that lacks some of the release's files (a download cut short) is fetched again
with ``download=True`` and is an error naming the missing files without it.

Your own logs (dataset descriptions) are prepared out of core into Parquet shards under the same
folder (:mod:`tfcs3.data.shards`), one folder per key, under the retrieval and per-user
pre-ranking protocols.

Prepared datasets (splits, vocabularies, histories) are cached under ``$TFCS3_CACHE_DIR/prepared/``
as ``.npz`` files that cannot run code when read (:mod:`tfcs3.data.cache`), keyed by the source
files' sizes and modification times, the protocol, the history length (and time gaps) and the
preparation code's version, with the key written inside and checked on load, so repeated runs skip
parsing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tfcs3.data.amazon import load_amazon
from tfcs3.data.cache import CacheMiss, read_prepared, write_prepared
from tfcs3.data.described import DatasetDescription, is_description, load_described
from tfcs3.data.download import RELEASES, download_movielens
from tfcs3.data.movielens import PARTIAL_ML1M_RATINGS, load_movielens_1m, load_movielens_100k
from tfcs3.data.prepared import PreparedData
from tfcs3.data.protocols import DATA_PROTOCOLS, RETRIEVAL, USER_SPLIT, prepare, prepare_user_split
from tfcs3.data.raw import DataFormatError, RawDataset
from tfcs3.data.shards import read_shards
from tfcs3.data.streaming import STREAMING_PROTOCOLS, described_source, prepare_streaming
from tfcs3.data.synthetic import generate_synthetic
from tfcs3.progress import status

PREPARE_VERSION = 4  # bump when PreparedData changes (3: Feature.aligned_with; 4: npz cache)

# name -> (folder, files that identify it (any one suffices), loader)
_REGISTRY: dict[str, tuple[str, tuple[str, ...], Callable[[Path], RawDataset]]] = {
    "ml-100k": ("movielens-100k", ("u.data",), load_movielens_100k),
    "ml-1m": ("movielens-1m", ("ratings.dat", PARTIAL_ML1M_RATINGS), load_movielens_1m),
    "beauty": ("amazon-beauty", ("Beauty.txt",), lambda d: load_amazon(d, "beauty")),
    "sports": ("amazon-sports", ("Sports_and_Outdoors.txt",), lambda d: load_amazon(d, "sports")),
}
DATASETS = (*_REGISTRY, "synthetic")


def cache_dir() -> Path:
    return Path(os.environ.get("TFCS3_CACHE_DIR", Path.home() / ".cache" / "tfcs3"))


def _has_files(directory: Path, names: tuple[str, ...]) -> bool:
    return any((directory / n).is_file() or (directory / (n + ".gz")).is_file() for n in names)


def _missing_release_files(name: str, directory: Path) -> list[str]:
    """The files of MovieLens release ``name`` that ``directory`` lacks (plain or .gz)."""
    files = RELEASES[name][2]
    return [f for f in files if not ((directory / f).is_file() or (directory / (f + ".gz")).is_file())]


def find_data_dir(name: str, data_dir: str | Path | None = None, download: bool = False) -> Path:
    """Returns the folder holding dataset ``name``'s files (see the module docstring)."""
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown dataset {name!r}; choose from {list(DATASETS)}, or give the path of a dataset description "
            "(.toml / .json: your own log, see tfcs3.data.described)"
        )
    folder, markers, _ = _REGISTRY[name]
    if data_dir:
        candidates = [Path(data_dir), Path(data_dir) / folder]
        target = Path(data_dir) / folder
    else:
        candidates = [Path(os.environ["TFCS3_DATA_DIR"]) / folder] if os.environ.get("TFCS3_DATA_DIR") else []
        target = cache_dir() / folder
        candidates.append(target)
    for candidate in candidates:
        try:
            found = _has_files(candidate, markers)
        except PermissionError as err:
            raise DataFormatError(
                f"{candidate}: permission denied, the data folder cannot be read ({err.strerror})"
            ) from None
        if not found:
            continue
        missing = _missing_release_files(name, candidate) if candidate == target and name in RELEASES else []
        if missing:
            if download:  # a download cut short: fetch the whole release again
                return download_movielens(name, target)
            raise DataFormatError(
                f"{candidate} holds an incomplete {name} download (missing {missing}); "
                "pass download=True (CLI: --download) to fetch it again"
            )
        return candidate
    if download and name in RELEASES:
        return download_movielens(name, target)
    raise DataFormatError(
        f"Dataset {name!r} not found: looked for {' or '.join(markers)} (plain or .gz) in "
        + ", ".join(str(c) for c in candidates)
        + (" only (a data folder given explicitly is not replaced by another)" if data_dir else "")
        + (". Pass download=True (CLI: --download) to fetch it from GroupLens." if name in RELEASES else ".")
    )


def load_raw(name: str, data_dir: str | Path | None = None, download: bool = False, seed: int = 0) -> RawDataset:
    """Loads dataset ``name`` (one of :data:`DATASETS`, or the path of a dataset description:
    :mod:`tfcs3.data.described`) as a :class:`RawDataset`."""
    if name == "synthetic":
        return generate_synthetic(seed=seed)
    if is_description(name):
        return load_described(name)
    directory = find_data_dir(name, data_dir, download)
    return _REGISTRY[name][2](directory)


def _fingerprint_files(paths: list[Path], extra: str = "") -> str:
    """A key of ``paths``' names, sizes and modification times, ``extra`` and the preparation
    version."""
    h = hashlib.sha256(f"{PREPARE_VERSION}:{extra}".encode())
    for path in paths:
        try:
            stat = path.stat()
        except OSError as err:
            raise DataFormatError(f"{path}: cannot be read ({err.strerror})") from None
        h.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _fingerprint(directory: Path) -> str:
    h = hashlib.sha256(str(PREPARE_VERSION).encode())
    try:
        paths = sorted(directory.iterdir())
    except PermissionError as err:
        raise DataFormatError(
            f"{directory}: permission denied, the data folder cannot be read ({err.strerror})"
        ) from None
    for path in paths:
        if path.is_file():
            stat = path.stat()
            h.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _prepare(
    raw: RawDataset,
    protocol: str,
    max_history: int,
    seed: int,
    history_gaps: bool,
    min_count: int = 1,
    user_id_buckets: int = 0,
) -> PreparedData:
    if protocol == USER_SPLIT:
        if min_count > 1 or user_id_buckets:
            raise ValueError(
                "min_count and user_id_buckets are not supported by the user_split protocol (it has no user ids)"
            )
        return prepare_user_split(raw, max_history, seed=seed, history_gaps=history_gaps)
    return prepare(raw, protocol, max_history, history_gaps, min_count, user_id_buckets)


def load_prepared(
    name: str | Path | DatasetDescription,
    protocol: str = RETRIEVAL,
    data_dir: str | Path | None = None,
    max_history: int = 50,
    download: bool = False,
    use_cache: bool = True,
    seed: int = 0,
    history_gaps: bool = False,
) -> PreparedData:
    """Loads ``name`` and prepares it under ``protocol``, reusing the on-disk cache when valid.

    ``protocol`` is ``"retrieval"``, ``"preranking"`` or ``"user_split"`` (T2Diff's held-out
    users, :func:`~tfcs3.data.protocols.prepare_user_split`, whose split and target positions
    ``seed`` draws; the result is retrieval data). ``seed`` also seeds the synthetic dataset.
    ``history_gaps`` adds the history's time-gap buckets (``history_gap``; needs real timestamps).

    ``name`` may also be your own log: the path of a dataset description, or a
    :class:`~tfcs3.data.described.DatasetDescription`; its files' sizes and times key the cache.
    Under ``"retrieval"`` and ``"preranking_per_user"`` it is prepared out of core into a store
    of Parquet shards (:func:`~tfcs3.data.streaming.prepare_streaming`) and its training split
    is streamed from them (:class:`~tfcs3.data.shards.ShardedSplit`); ``use_cache=False`` then
    prepares the store again.
    """
    if protocol not in DATA_PROTOCOLS:
        raise ValueError(f"protocol must be one of {DATA_PROTOCOLS}, got {protocol!r}")
    if isinstance(name, str) and name == "synthetic":
        return _prepare(generate_synthetic(seed=seed), protocol, max_history, seed, history_gaps)
    seeded = f"-s{seed}" if protocol == USER_SPLIT else ""
    gaps = "-gaps" if history_gaps else ""
    loader: Callable[[], RawDataset]
    description: DatasetDescription | None = None
    if isinstance(name, DatasetDescription) or is_description(name):
        description = name if isinstance(name, DatasetDescription) else DatasetDescription.from_file(name)
        files = [*description.files()]
        files += [p for p in (description.side_table("users"), description.side_table("items")) if p is not None]
        fields = json.dumps(dataclasses.asdict(description), sort_keys=True, default=str)
        fingerprint = _fingerprint_files(files, extra=fields)
        label = re.sub(r"[^\w.-]", "_", description.name)
        loader = partial(load_described, description)
    else:
        directory = find_data_dir(str(name), data_dir, download)
        fingerprint = _fingerprint(directory)
        label, loader = str(name), partial(_REGISTRY[str(name)][2], directory)
    key = f"{label}-{protocol}{seeded}-h{max_history}{gaps}-{fingerprint}"
    if description is not None and protocol in STREAMING_PROTOCOLS:
        return _load_streamed(description, protocol, max_history, history_gaps, key, use_cache)
    path = cache_dir() / "prepared" / f"{key}.npz"
    if use_cache:
        try:
            return read_prepared(path, key)
        except CacheMiss:
            pass  # absent, stale, or not ours (never executed): prepared again below
    with status(f"Preparing {label} for the {protocol} protocol (cached for the next run)"):
        vocabularies = (description.min_count, description.user_id_buckets) if description is not None else (1, 0)
        data = _prepare(loader(), protocol, max_history, seed, history_gaps, *vocabularies)
    if use_cache:
        try:
            write_prepared(data, path, key)
        except OSError:
            pass  # a read-only cache only costs speed
    return data


def _load_streamed(
    description: DatasetDescription, protocol: str, max_history: int, history_gaps: bool, key: str, use_cache: bool
) -> PreparedData:
    """Your own log under a per-user protocol: its shard store, prepared out of core when absent."""
    store = cache_dir() / "prepared" / key
    if use_cache:
        try:
            return read_shards(store, key)
        except CacheMiss:
            pass
    with status(f"Preparing {description.name} for the {protocol} protocol into shards (cached for the next run)"):
        source = described_source(description)
        prepare_streaming(
            source,
            store,
            key,
            protocol,
            max_history,
            history_gaps,
            description.min_count,
            description.shard_rows,
            description.user_id_buckets,
        )
    return read_shards(store, key)
