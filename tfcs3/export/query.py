"""Query an exported SavedModel for one user, as a client would, and explain the answer (the
``demo`` command's last step)."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from tfcs3.data.prepared import PreparedData
from tfcs3.evaluation.retrieval import top_k_with_exclusions
from tfcs3.export.requests import raw_requests
from tfcs3.models.retriever import Retriever


def recommend_for_user(saved_model_dir: Path, model: Retriever, data: PreparedData, user: str | None, k: int) -> str:
    """Text: a test user's recent history and the top-k unseen items from the exported SavedModel.

    The request is made of raw feature values, as a serving client would send it; the answer is
    checked against the in-process model's own ranking. ``user`` is a raw user id with a test
    example (default: the first test user).

    Example:
        >>> path = export_model(model, data, "exports", "youtubednn")
        >>> print(recommend_for_user(path, model, data, None, k=10))
    """
    users = list(data.test.users)
    user = users[0] if user is None else user
    if user not in users:
        raise ValueError(f"user {user!r} has no test example in {data.name}")
    row = users.index(user)
    request = raw_requests(data, model.query_feature_names, "test", rows=[row])
    serving = tf.saved_model.load(str(saved_model_dir)).signatures["serving_default"]
    answer = serving(**{name: tf.constant(values) for name, values in request.items()})
    ids = [i.decode() for i in answer["item_ids"].numpy()[0][:k]]
    scores = answer["scores"].numpy()[0][:k]

    query = model.represent_queries({n: v[row : row + 1] for n, v in data.test.features.items()})
    in_process = model.score(query, model.represent_candidates(data.catalog)).numpy()[0]
    expected = data.catalog_ids[top_k_with_exclusions(in_process, data.test.exclusions(row), k)]
    agreement = "matches" if list(expected) == ids else "DIFFERS FROM"
    row_of = {item: r for r, item in enumerate(data.catalog_ids)}
    earlier = data.test.exclusions(row)
    shown = {name: (v[0][-5:] if isinstance(v[0], list) else v[0]) for name, v in request.items() if name != "exclude"}
    lines = [f"Request to the exported SavedModel (raw features; lists truncated here): {shown}"]
    lines.append(f"User {user}: {len(earlier)} earlier items; the most recent:")
    lines += [f"    - {data.catalog_titles[r]}" for r in earlier[-5:][::-1]]
    lines.append(f"Top-{k} recommendations from {saved_model_dir} (earlier items excluded):")
    for rank, (item, score) in enumerate(zip(ids, scores, strict=True), 1):
        r = row_of[item]
        mark = "   <- the held-out next item" if r == data.test.target[row] else ""
        lines.append(f"  {rank:2d}. {data.catalog_titles[r]}  (score {score:.3f}){mark}")
    lines.append(f"The exported model's answer {agreement} the in-process model's top-{k}.")
    return "\n".join(lines)
