"""A synthetic interaction generator whose ground truth is known.

Each user ``u`` has a segment ``s_u`` and a latent vector ``p_u``; each item ``i`` has a category
``c_i``, a latent vector ``q_i`` and a popularity ``b_i``. The true affinity is

    A[u, i] = p_u . q_i / sqrt(r)  +  beta * X[s_u, c_i]  +  b_i

where ``X`` is a random +-1 matrix over (segment, category) pairs: a cross-feature effect of full
rank ``num_groups``, which a dot product of dimension below ``num_groups`` cannot express exactly.
Users pick items one at a time without replacement from ``softmax(A[u] + gamma * [c_i == c_prev])``,
so the previous item's category carries signal (history features help). Ratings 1..5 are the
affinity quantiles of the chosen item within the user's choices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tfcs3.data.raw import RawDataset


def generate_synthetic(
    num_users: int = 600,
    num_items: int = 400,
    num_groups: int = 16,
    latent_dim: int = 4,
    interactions_per_user: tuple[int, int] = (8, 30),
    beta: float = 1.5,
    gamma: float = 1.5,
    seed: int = 0,
) -> RawDataset:
    """Draws a dataset; ``extras["affinity"]`` holds the true ``A`` (users x items, raw-id order)."""
    if num_users < 1 or num_items < interactions_per_user[1]:
        raise ValueError("need at least one user and more items than interactions per user")
    rng = np.random.default_rng(seed)
    segments = rng.integers(num_groups, size=num_users)
    categories = rng.integers(num_groups, size=num_items)
    p = rng.normal(size=(num_users, latent_dim))
    q = rng.normal(size=(num_items, latent_dim))
    cross = rng.choice([-1.0, 1.0], size=(num_groups, num_groups))
    popularity = rng.normal(scale=0.7, size=num_items)
    affinity = p @ q.T / np.sqrt(latent_dim) + beta * cross[segments][:, categories] + popularity

    rows = []
    for u in range(num_users):
        n = int(rng.integers(interactions_per_user[0], interactions_per_user[1] + 1))
        available = np.ones(num_items, dtype=bool)
        prev_cat = -1
        chosen = []
        t = int(rng.integers(1_000_000))
        for _ in range(n):
            logits = affinity[u] + gamma * (categories == prev_cat)
            logits = np.where(available, logits, -np.inf)
            probs = np.exp(logits - logits.max())
            item = int(rng.choice(num_items, p=probs / probs.sum()))
            available[item] = False
            prev_cat = categories[item]
            t += int(rng.integers(1, 3600))
            chosen.append((item, t))
        scores = np.array([affinity[u, i] for i, _ in chosen])
        ranks = scores.argsort().argsort() / max(len(scores) - 1, 1)
        for (item, ts), r in zip(chosen, ranks, strict=True):
            rows.append((str(u + 1), str(item + 1), float(1 + np.floor(r * 4.999)), ts))

    interactions = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    interactions["rating"] = interactions["rating"].astype(np.float32)
    interactions["timestamp"] = interactions["timestamp"].astype(np.int64)
    users = pd.DataFrame(
        {"user": [str(u + 1) for u in range(num_users)], "segment": [f"s{s}" for s in segments]}
    ).set_index("user")
    items = pd.DataFrame(
        {
            "item": [str(i + 1) for i in range(num_items)],
            "title": [f"Item {i + 1} (category {c})" for i, c in enumerate(categories)],
            "category": [f"c{c}" for c in categories],
            "tags": [[f"c{c}", f"pop{int(b > 0)}"] for c, b in zip(categories, popularity, strict=True)],
        }
    ).set_index("item")
    return RawDataset(
        name="synthetic",
        interactions=interactions,
        users=users,
        items=items,
        user_features=["segment"],
        item_features=["category"],
        item_multi_features=["tags"],
        description=f"synthetic ({num_users} users, {num_items} items, seed {seed})",
        extras={"affinity": affinity, "segments": segments, "categories": categories},
    )


def write_synthetic_log(
    folder: str | Path,
    interactions: int = 10_000_000,
    users: int = 1_000_000,
    items: int = 100_000,
    files: int = 10,
    groups: int = 50,
    seed: int = 0,
) -> Path:
    """Writes a large synthetic log as a user would bring it, and returns its description's path.

    ``files`` Parquet files of about ``interactions`` rows in all (``user``, ``item``, ``ts``,
    ``rating``), an item table (``category``) and a user table (``segment``), written a slice of
    users at a time, so memory stays small at any size. Each user (ids ``u1``...) has 3 plus a
    Poisson number of rows (mean ``interactions / users``); half of a user's items come from the
    category their segment prefers and half from the whole catalog, both drawn by a Zipf-like
    popularity (exponent 0.8); times advance by exponential gaps (mean one hour) from a random
    start. For scale tests of preparation and input, not for judging models.

    Example:
        >>> description = write_synthetic_log("/tmp/big", interactions=10**7, users=10**6, items=10**5)
        >>> data = load_prepared(str(description))
    """
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    popularity = rng.permutation((np.arange(items) + 1.0) ** -0.8)
    category = rng.integers(groups, size=items)
    segment = rng.integers(groups, size=users)
    by_category = [np.flatnonzero(category == g) for g in range(groups)]
    global_cdf = np.cumsum(popularity) / popularity.sum()
    category_cdf = [np.cumsum(popularity[ids]) / popularity[ids].sum() for ids in by_category]
    mean_extra = max(interactions / users - 3.0, 0.0)
    bounds = np.linspace(0, users, files + 1).astype(np.int64)
    for f in range(files):
        who = np.arange(bounds[f], bounds[f + 1])
        counts = 3 + rng.poisson(mean_extra, size=len(who))
        row_user = np.repeat(who, counts)
        item = np.searchsorted(global_cdf, rng.random(len(row_user)), side="right").clip(0, items - 1)
        preferred = rng.random(len(row_user)) < 0.5
        groups_of_rows = segment[row_user]
        for g in np.unique(groups_of_rows[preferred]):
            rows = np.flatnonzero(preferred & (groups_of_rows == g))
            draws = np.searchsorted(category_cdf[g], rng.random(len(rows)), side="right")
            item[rows] = by_category[g][draws.clip(0, len(by_category[g]) - 1)]
        gaps = rng.exponential(3600.0, size=len(row_user)).astype(np.int64) + 1
        starts = np.repeat(rng.integers(0, 10**8, size=len(who)), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        clock = np.cumsum(gaps)
        ts = starts + clock - clock[first]
        order = rng.permutation(len(row_user))  # a log is not grouped by user
        table = pa.table(
            {
                "user": pa.array(np.char.add("u", (row_user[order] + 1).astype(str))),
                "item": pa.array(np.char.add("i", (item[order] + 1).astype(str))),
                "ts": pa.array(ts[order]),
                "rating": pa.array(rng.integers(1, 6, size=len(row_user)).astype(np.float32)),
            }
        )
        pq.write_table(table, folder / f"log-{f:03d}.parquet")
    pq.write_table(
        pa.table({"item": np.char.add("i", (np.arange(items) + 1).astype(str)), "category": category.astype(str)}),
        folder / "items.parquet",
    )
    pq.write_table(
        pa.table({"user": np.char.add("u", (np.arange(users) + 1).astype(str)), "segment": segment.astype(str)}),
        folder / "users.parquet",
    )
    description = {
        "name": f"synthetic-{interactions:.0e}".replace("+", ""),
        "interactions": ["log-*.parquet"],
        "user": "user",
        "item": "item",
        "timestamp": "ts",
        "rating": "rating",
        "items": "items.parquet",
        "item_features": ["category"],
        "users": "users.parquet",
        "user_features": ["segment"],
        "unknown_items": "oov",
        "description": f"synthetic log ({interactions:,} interactions, {users:,} users, {items:,} items, seed {seed})",
    }
    path = folder / "log.json"
    path.write_text(json.dumps(description, indent=1))
    return path
