"""Turn prepared examples back into raw-feature requests, as a client would send them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tfcs3.data.features import PAD, SEQUENCE, HashedVocabulary
from tfcs3.data.prepared import PreparedData
from tfcs3.data.protocols import HISTORY


def raw_requests(
    data: PreparedData,
    feature_names: Sequence[str],
    split: str = "test",
    rows: Sequence[int] | None = None,
    exclude_earlier: bool = True,
) -> dict[str, list[Any]]:
    """Raw query features (strings, as in the dataset) of some examples of an evaluation split.

    Categorical values are spelled back from the vocabulary (values unseen in training come back
    as ``"<oov>"``, which the export also maps to the OOV bucket). A sequence feature lists the
    user's earlier item ids in time order (for retrieval splits all of them; for pre-ranking
    splits the encoded history, unseen items as ``"<oov>"``). With ``exclude_earlier`` an
    ``exclude`` entry lists them too. A sequence that another requested feature is aligned with
    (the time gaps ``history_gap``) is the encoded window in every split, and the aligned feature
    lists its value for each of the window's entries.
    Lists are right-padded with ``""`` to a common width.

    Args:
        data: the prepared data.
        feature_names: the model's query features (``model.query_feature_names``).
        split: ``"train"``, ``"validation"`` or ``"test"``.
        rows: which examples (default: all).
        exclude_earlier: add the ``exclude`` input of ``serving_default``.
    """
    part = data.split(split)
    rows = list(range(len(part)) if rows is None else rows)
    if split == "train" and rows:
        part = part.head(max(rows) + 1)  # a streamed training split reads only the shards needed
    # A sequence that another feature is aligned with goes out as its encoded window.
    aligned = {data.spec.feature(n).aligned_with for n in feature_names} - {None}
    if part.exclusion_indptr is not None:
        earlier = [data.catalog_ids[part.exclusions(r)].tolist() for r in rows]
    elif HISTORY in part.features:  # pre-ranking: the encoded history is all a split keeps of earlier items
        earlier = _encoded(data, part.features[HISTORY], rows)[1]
    elif not any(data.spec.feature(n).kind == SEQUENCE for n in feature_names):
        earlier = [[] for _ in rows]  # no history anywhere: nothing earlier to list or exclude
    else:
        raise ValueError(f"split {split!r} carries no earlier items to build a history from")
    out: dict[str, list[Any]] = {}
    lists = []
    for name in feature_names:
        feature = data.spec.feature(name)
        if feature.kind == SEQUENCE:
            out[name] = _encoded(data, part.features[name], rows)[1] if name in aligned else [list(e) for e in earlier]
            lists.append(name)
        elif feature.aligned_with:
            assert feature.vocabulary is not None
            real, _ = _encoded(data, part.features[feature.aligned_with], rows)
            out[name] = [feature.vocabulary.raw(part.features[name][r][m]) for r, m in zip(rows, real, strict=True)]
            lists.append(name)
        elif name == data.spec.user_id and isinstance(feature.vocabulary, HashedVocabulary):
            out[name] = [str(u) for u in part.users[rows]]  # hashed: the raw id is not in the vocabulary
        elif feature.kind == "categorical":
            assert feature.vocabulary is not None
            out[name] = feature.vocabulary.raw(part.features[name][rows])
        else:
            raise ValueError(f"query feature {name!r} of kind {feature.kind} is not supported")
    if exclude_earlier:
        out["exclude"] = [list(e) for e in earlier]
        lists.append("exclude")
    for name in lists:
        width = max(1, max((len(v) for v in out[name]), default=1))
        out[name] = [v + [""] * (width - len(v)) for v in out[name]]
    return out


def _encoded(data: PreparedData, sequence: np.ndarray, rows: list[int]) -> tuple[list[np.ndarray], list[list[str]]]:
    """Per row of an encoded (left-padded) sequence: its real positions and their raw item ids
    (items unseen in training as ``"<oov>"``)."""
    vocab = data.spec.item_vocabulary
    real = [sequence[r] != PAD for r in rows]
    return real, [list(vocab.raw(sequence[r][m])) for r, m in zip(rows, real, strict=True)]
