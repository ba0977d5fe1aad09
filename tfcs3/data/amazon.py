"""Amazon review datasets in the S3-Rec preprocessing (Beauty, Sports_and_Outdoors).

Zhou et al., "S3-Rec: Self-Supervised Learning for Sequential Recommendation with Mutual
Information Maximization", CIKM 2020. Files: ``<Name>.txt`` has one user per line, ``user item
item ...`` in time order; ``<Name>_item2attributes.json`` maps item id -> attribute ids.

The files carry order but no timestamps, so the position in a user's line serves as the
timestamp and only the retrieval protocol applies (there are no ratings to label).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfcs3.data.raw import DataFormatError, RawDataset, find_file, parse_int, quote, read_lines

AMAZON_FILES = {"beauty": "Beauty", "sports": "Sports_and_Outdoors"}


def load_amazon(data_dir: str | Path, name: str = "beauty") -> RawDataset:
    """Reads the S3-Rec files of ``name`` (``"beauty"`` or ``"sports"``) from ``data_dir``."""
    if name not in AMAZON_FILES:
        raise ValueError(f"Unknown Amazon dataset {name!r}; choose from {sorted(AMAZON_FILES)}")
    stem = AMAZON_FILES[name]
    seq_path = find_file(data_dir, f"{stem}.txt")
    users, items, positions = [], [], []
    first_line: dict[str, int] = {}
    for no, line in read_lines(seq_path):
        fields = line.split()
        if len(fields) < 2:
            raise DataFormatError(f"{seq_path}, line {no}: expected 'user item [item ...]', got {quote(line)}")
        for value in fields:
            parse_int(value, seq_path, no, "id")
        user = fields[0]
        if user in first_line:  # one line per user: a second one is an error, not a silent merge
            raise DataFormatError(f"{seq_path}, line {no}: user {quote(user)} already has line {first_line[user]}")
        first_line[user] = no
        for pos, item in enumerate(fields[1:]):
            users.append(user)
            items.append(item)
            positions.append(pos)
    interactions = pd.DataFrame(
        {
            "user": users,
            "item": items,
            "rating": np.full(len(users), np.nan, dtype=np.float32),
            "timestamp": np.asarray(positions, dtype=np.int64),
        }
    )

    attr_path = find_file(data_dir, f"{stem}_item2attributes.json")
    text = "\n".join(line for _, line in read_lines(attr_path))
    try:
        attributes = json.loads(text, object_pairs_hook=lambda pairs: _unique_keys(pairs, attr_path))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{attr_path}, line {err.lineno}: invalid JSON: {err.msg}") from err
    if not isinstance(attributes, dict):
        raise DataFormatError(f"{attr_path}: expected a JSON object item id -> list of attribute ids")
    item_ids = sorted(set(items), key=int)
    rows = [(i, f"{stem} item {i}", [str(a) for a in attributes.get(i, [])]) for i in item_ids]
    item_frame = pd.DataFrame(rows, columns=["item", "title", "attributes"]).set_index("item")
    user_frame = pd.DataFrame(index=pd.Index(sorted(set(users), key=int), name="user"))
    return RawDataset(
        name=name,
        interactions=interactions,
        users=user_frame,
        items=item_frame,
        user_features=[],
        item_features=[],
        item_multi_features=["attributes"],
        description=f"Amazon {stem} (S3-Rec 5-core; order only, no timestamps or ratings)",
        timestamps_are_times=False,
    )


def _unique_keys(pairs: list[tuple[str, Any]], path: Path) -> dict[str, Any]:
    """A JSON object's pairs as a dict; a repeated key (an item listed twice) is an error."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DataFormatError(f"{path}: item {quote(key)} is listed more than once")
        out[key] = value
    return out
