"""Turn prepared examples back into raw-feature requests, as a client would send them."""

from __future__ import annotations

from collections.abc import Sequence

from tfcs3.data.features import PAD, SEQUENCE
from tfcs3.data.protocols import HISTORY, PreparedData
from tfcs3.data.sequences import HISTORY_GAP


def raw_requests(
    data: PreparedData,
    feature_names: Sequence[str],
    split: str = "test",
    rows: Sequence[int] | None = None,
    exclude_earlier: bool = True,
) -> dict[str, list]:
    """Raw query features (strings, as in the dataset) of some examples of an evaluation split.

    Categorical values are spelled back from the vocabulary (values unseen in training come back
    as ``"<oov>"``, which the export also maps to the OOV bucket). A sequence feature lists the
    user's earlier item ids in time order (for retrieval splits all of them; for pre-ranking
    splits the encoded history, unseen items as ``"<oov>"``). With ``exclude_earlier`` an
    ``exclude`` entry lists them too. With the time-gap feature (``history_gap``) the history is
    the encoded one in every split, and ``history_gap`` lists the bucket of each of its entries.
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
    gaps = HISTORY_GAP in feature_names
    real: list = []  # per row, the non-padding positions of the encoded history
    encoded_history: list[list[str]] = []
    if HISTORY in part.features and (gaps or part.exclusion_indptr is None):
        vocab = data.spec.item_vocabulary
        real = [part.features[HISTORY][r] != PAD for r in rows]
        encoded_history = [vocab.raw(part.features[HISTORY][r][m]) for r, m in zip(rows, real, strict=True)]
    if part.exclusion_indptr is not None:
        earlier = [data.catalog_ids[part.exclusions(r)].tolist() for r in rows]
    elif HISTORY in part.features:  # pre-ranking: the encoded history is all a split keeps of earlier items
        earlier = encoded_history
    else:
        raise ValueError(f"split {split!r} carries no earlier items to build a history from")
    out: dict[str, list] = {}
    lists = []
    for name in feature_names:
        feature = data.spec.feature(name)
        if feature.kind == SEQUENCE:
            # Aligned with history_gap, the history is the encoded window (unseen items "<oov>").
            out[name] = [list(e) for e in (encoded_history if gaps else earlier)]
            lists.append(name)
        elif name == HISTORY_GAP:
            assert feature.vocabulary is not None
            out[name] = [feature.vocabulary.raw(part.features[name][r][m]) for r, m in zip(rows, real, strict=True)]
            lists.append(name)
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
