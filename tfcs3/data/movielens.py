"""MovieLens-100K and MovieLens-1M loaders (GroupLens files, plain or gzip-compressed).

Harper & Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 5(4), 2015.
The data may not be redistributed: tfcs3 reads it from a directory you give it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tfcs3.data.raw import (
    DataFormatError,
    RawDataset,
    drop_repeated_rows,
    find_file,
    parse_int,
    read_lines,
    split_fields,
    unique_ids,
)

ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip

PARTIAL_ML1M_RATINGS = "ratings_PARTIAL_users1-2999.dat"


def age_bucket(age: int) -> str:
    """MovieLens-1M age groups (1: <18, 18: 18-24, 25, 35, 45, 50, 56: 56+), used for both sets."""
    for bound, label in ((18, "1"), (25, "18"), (35, "25"), (45, "35"), (50, "45"), (56, "50")):
        if age < bound:
            return label
    return "56"


def _ratings_frame(rows: list[tuple[str, str, float, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    frame["rating"] = frame["rating"].astype(np.float32)
    frame["timestamp"] = frame["timestamp"].astype(np.int64)
    return frame


def _parse_ratings(path: Path, sep: str, encoding: str = "latin-1") -> pd.DataFrame:
    rows = []
    for no, line in read_lines(path, encoding):
        user, item, rating, ts = split_fields(line, sep, 4, path, no, "user id, item id, rating, timestamp")
        r = parse_int(rating, path, no, "rating")
        if not 1 <= r <= 5:
            raise DataFormatError(f"{path}, line {no}: rating must be 1..5, got {r}")
        parse_int(user, path, no, "user id")
        parse_int(item, path, no, "item id")
        rows.append((user, item, float(r), parse_int(ts, path, no, "timestamp")))
    if not rows:
        raise DataFormatError(f"{path}: no ratings found (empty file)")
    return drop_repeated_rows(_ratings_frame(rows), path)


def _parse_users(path: Path, sep: str, order: tuple[str, ...]) -> pd.DataFrame:
    """Users with gender, age group (ML-1M buckets), occupation and zip prefix (2 characters).

    ``order`` names the file's five fields: ML-100K has ``user|age|gender|...`` with exact ages,
    ML-1M has ``user::gender::age::...`` with age groups already.
    """
    rows = []
    for no, line in read_lines(path, "latin-1"):
        fields = dict(zip(order, split_fields(line, sep, 5, path, no, sep.join(order)), strict=True))
        age = parse_int(fields["age"], path, no, "age")
        group = fields["age"] if sep == "::" else age_bucket(age)
        rows.append((fields["user"], fields["gender"], group, fields["occupation"], fields["zip"][:2]))
    users = pd.DataFrame(rows, columns=["user", "gender", "age", "occupation", "zip_prefix"]).set_index("user")
    return unique_ids(users, path, "user")


def _assemble(
    name: str,
    description: str,
    interactions: pd.DataFrame,
    users: pd.DataFrame,
    item_rows: list[Any],
    path: Path,
    item_path: Path,
) -> RawDataset:
    """Checks that movie ids are unique and that ratings only name known users and movies, and
    builds the RawDataset."""
    items = pd.DataFrame(item_rows, columns=["item", "title", "year", "genres"]).set_index("item")
    unique_ids(items, item_path, "movie")
    _check_known(interactions, users, items, path)
    return RawDataset(
        name=name,
        interactions=interactions,
        users=users,
        items=items,
        user_features=["gender", "age", "occupation", "zip_prefix"],
        item_features=["year"],
        item_multi_features=["genres"],
        description=description,
    )


def _check_known(interactions: pd.DataFrame, users: pd.DataFrame, items: pd.DataFrame, path: Path) -> None:
    unknown_users = set(interactions["user"]) - set(users.index)
    unknown_items = set(interactions["item"]) - set(items.index)
    if unknown_users or unknown_items:
        raise DataFormatError(
            f"{path}: ratings refer to users {sorted(unknown_users)[:5]} / items "
            f"{sorted(unknown_items)[:5]} that are missing from the user/item files"
        )


def load_movielens_100k(data_dir: str | Path) -> RawDataset:
    """Reads ``u.data``, ``u.user`` and ``u.item`` (each optionally ``.gz``) from ``data_dir``.

    User features: gender, age group, occupation, zip prefix (first two characters).
    Item features: release year, genres (multi-valued).
    """
    ratings_path = find_file(data_dir, "u.data")
    interactions = _parse_ratings(ratings_path, "\t")

    users = _parse_users(find_file(data_dir, "u.user"), "|", ("user", "age", "gender", "occupation", "zip"))

    item_path = find_file(data_dir, "u.item")
    item_rows = []
    for no, line in read_lines(item_path, "latin-1"):
        fields = split_fields(line, "|", 24, item_path, no, "movie id|title|release date|video date|url|19 genre flags")
        flags = fields[5:]
        if any(f not in ("0", "1") for f in flags):
            raise DataFormatError(f"{item_path}, line {no}: genre flags must be 0 or 1")
        genres = [g for g, f in zip(ML100K_GENRES, flags, strict=True) if f == "1"]
        date = fields[2]
        year = date[-4:] if len(date) >= 4 and date[-4:].isdigit() else "unknown"
        item_rows.append((fields[0], fields[1], year, genres))
    description = "MovieLens-100K (943 users, 1,682 movies, 100,000 ratings)"
    return _assemble("ml-100k", description, interactions, users, item_rows, ratings_path, item_path)


_YEAR = re.compile(r"\((\d{4})\)\s*$")


def load_movielens_1m(data_dir: str | Path) -> RawDataset:
    """Reads ``ratings.dat``, ``users.dat`` and ``movies.dat`` (latin-1, ``::``-separated).

    When ``ratings.dat`` is absent but ``ratings_PARTIAL_users1-2999.dat`` is present, that real
    subset (users 1-2999) is read and the dataset is named ``ml-1m[users1-2999]`` so that every
    result computed from it is labelled as the subset.
    """
    try:
        ratings_path = find_file(data_dir, "ratings.dat")
        name, description = "ml-1m", "MovieLens-1M (6,040 users, 3,706 movies, 1,000,209 ratings)"
    except DataFormatError:
        try:
            ratings_path = find_file(data_dir, PARTIAL_ML1M_RATINGS)
        except DataFormatError:
            raise DataFormatError(
                f"Missing data file: {Path(data_dir) / 'ratings.dat'} (or {PARTIAL_ML1M_RATINGS})"
            ) from None
        name = "ml-1m[users1-2999]"
        description = "MovieLens-1M SUBSET: users 1-2999 only (487,650 of 1,000,209 ratings)"
    interactions = _parse_ratings(ratings_path, "::")

    users = _parse_users(find_file(data_dir, "users.dat"), "::", ("user", "gender", "age", "occupation", "zip"))

    movie_path = find_file(data_dir, "movies.dat")
    item_rows = []
    for no, line in read_lines(movie_path, "latin-1"):
        mid, title, genres = split_fields(line, "::", 3, movie_path, no, "MovieID::Title::Genres")
        match = _YEAR.search(title)
        year = match.group(1) if match else "unknown"
        item_rows.append((mid, title, year, [g for g in genres.split("|") if g]))
    return _assemble(name, description, interactions, users, item_rows, ratings_path, movie_path)
