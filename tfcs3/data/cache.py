"""The prepared-data cache: one ``.npz`` file per prepared dataset, in a format that cannot run code.

A :class:`PreparedData` is stored as plain arrays (numbers and fixed-width strings) plus one JSON
document (name, protocol, description, the feature spec and the cache key). It is read back with
``numpy.load(allow_pickle=False)``, so a file planted at the cache path can at worst be refused,
never executed; a file whose key differs from the one asked for (another dataset, protocol or
preparation version) is refused too. :func:`read_prepared` raises :class:`CacheMiss` for both,
and the caller prepares the data again.

Example:
    >>> write_prepared(data, path, key="ml-100k-retrieval-h50-...")
    >>> read_prepared(path, key="ml-100k-retrieval-h50-...")
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tfcs3.data.features import FeatureSpec
from tfcs3.data.prepared import PreparedData, Split

SPLITS = ("train", "validation", "test")
_OPTIONAL = ("labels", "timestamps", "exclusion_indptr", "exclusion_rows")
_META = "meta"


class CacheMiss(Exception):
    """The cache file is absent, unreadable, of another key, or not in the expected format."""


def _plain(values: np.ndarray) -> np.ndarray:
    """Object arrays (raw ids as Python strings) as fixed-width unicode; the rest unchanged."""
    return values.astype(str) if values.dtype == object else values


def write_prepared(data: PreparedData, path: str | Path, key: str) -> None:
    """Writes ``data`` to ``path`` atomically (a temporary file renamed into place)."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {
        "catalog_ids": _plain(data.catalog_ids),
        "catalog_titles": _plain(data.catalog_titles),
        "item_probability": data.item_probability,
    }
    arrays.update({f"catalog:{name}": values for name, values in data.catalog.items()})
    for split_name in SPLITS:
        split = data.split(split_name)
        arrays[f"{split_name}:target"] = split.target
        arrays[f"{split_name}:users"] = _plain(split.users)
        for field in _OPTIONAL:
            value = getattr(split, field)
            if value is not None:
                arrays[f"{split_name}:{field}"] = value
        arrays.update({f"{split_name}:features:{name}": values for name, values in split.features.items()})
    meta = {
        "key": key,
        "name": data.name,
        "protocol": data.protocol,
        "description": data.description,
        "spec": data.spec.to_json(),
        "features": {s: list(data.split(s).features) for s in SPLITS},
        "catalog": list(data.catalog),
    }
    arrays[_META] = np.array(json.dumps(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".prepared.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)  # refuse to write object arrays, too
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_prepared(path: str | Path, key: str) -> PreparedData:
    """Reads what :func:`write_prepared` wrote under ``key``; :class:`CacheMiss` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CacheMiss(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz[_META]))
            if meta.get("key") != key:
                raise CacheMiss(f"{path} holds {meta.get('key')!r}, not {key!r}")
            arrays = {name: npz[name] for name in npz.files if name != _META}
    except CacheMiss:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        # ValueError includes numpy's refusal of pickled (object) arrays: such a file is not ours.
        raise CacheMiss(f"{path} is not a tfcs3 prepared-data cache ({type(err).__name__}: {err})") from err
    return _assemble(meta, arrays)


def _assemble(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> PreparedData:
    def split(name: str) -> Split:
        optional = {field: arrays.get(f"{name}:{field}") for field in _OPTIONAL}
        return Split(
            features={f: arrays[f"{name}:features:{f}"] for f in meta["features"][name]},
            target=arrays[f"{name}:target"],
            users=arrays[f"{name}:users"].astype(object),
            **optional,
        )

    return PreparedData(
        name=meta["name"],
        protocol=meta["protocol"],
        spec=FeatureSpec.from_json(meta["spec"]),
        catalog_ids=arrays["catalog_ids"],
        catalog_titles=arrays["catalog_titles"],
        catalog={name: arrays[f"catalog:{name}"] for name in meta["catalog"]},
        item_probability=arrays["item_probability"],
        train=split("train"),
        validation=split("validation"),
        test=split("test"),
        description=meta["description"],
    )
