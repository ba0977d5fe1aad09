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
