"""The two evaluation protocols of tfcs3, turning a :class:`RawDataset` into encoded splits.

Retrieval (``"retrieval"``):
    Per user, interactions in chronological order (timestamp, ties broken by item id ascending).
    The last one is the test target, the second-to-last the validation target, the rest are
    training examples. Every example's history is the user's *strictly earlier* items. Ranking is
    over the full catalog (every item that occurs in the interactions), excluding the user's
    earlier items except the target itself.

Pre-ranking (``"preranking"``):
    Every rating is a labelled impression (label = rating >= 4). Impressions are ordered globally
    by (timestamp, user, item) and split 80/10/10 by time. History is again strictly earlier
    items of the same user (earlier impressions of any split, as a live system would know them).

Per-user pre-ranking (``"preranking_per_user"``, evaluated as pre-ranking):
    The same labelled impressions, split per user instead of globally: each user's impressions in
    time order (timestamp, ties by item id), the last 20% (rounded) held out and halved, the
    earlier half to validation (rounded up) and the later to test. A user with fewer than 10
    impressions stays wholly in training (fewer would leave no test row), so every validation and
    test row belongs to a user seen in training, and no user has a training impression later than
    a held-out one. It measures what per-user state (FIT's meta queries, CS3's memories,
    IntTower's user side) can do for known users, which the global split hides (most of its test
    users are new).

User split (``"user_split"``, :func:`prepare_user_split`, T2Diff's published protocol):
    Users are split at random into training, validation and test users (72/8/20: the paper's
    80/20 split, with a tenth of the training users held out for model selection). A training
    user gives up to 10 examples at random target positions that have a full history window (or,
    with a shorter sequence, one example targeting the last item); a validation or test user gives
    one example picked the same way. Ranking is over the full catalog with nothing excluded, as in
    the paper. Models see it as retrieval data (``protocol == "retrieval"``); it tests
    generalisation to users never seen in training, so the user-id feature is left out.

Vocabularies (and item sampling probabilities) are learned from the training split only; values
first seen later map to the OOV bucket.

With ``history_gaps=True`` every protocol adds the query feature ``history_gap``
(:data:`~tfcs3.data.sequences.HISTORY_GAP`, kind ``multi``): for each history position, the
log-scale bucket (:func:`~tfcs3.data.sequences.gap_buckets`) of the time between that item and
the example's own timestamp (the moment of the request), aligned with ``history`` (0 where it is
padding). The last gap thus spans the time from the latest behaviour to the interaction being
predicted, as a live request would measure it from the latest behaviour to the request. T2Diff
adds the gaps to the history in its target attention; other towers pool them like any
multi-valued feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tfcs3.data.features import (
    CATEGORICAL,
    MULTI,
    SEQUENCE,
    Feature,
    FeatureSpec,
    HashedVocabulary,
    Vocabulary,
)
from tfcs3.data.prepared import PreparedData, Split
from tfcs3.data.raw import RawDataset
from tfcs3.data.sequences import GAP_BUCKETS, HISTORY_GAP, gap_buckets

RETRIEVAL = "retrieval"
PRERANKING = "preranking"
PROTOCOLS = (RETRIEVAL, PRERANKING)
#: T2Diff's user split (:func:`prepare_user_split`): a way of preparing data, evaluated as retrieval.
USER_SPLIT = "user_split"
#: Pre-ranking with a per-user time split (:func:`per_user_split`): a way of preparing data,
#: evaluated as pre-ranking.
PRERANKING_PER_USER = "preranking_per_user"
DATA_PROTOCOLS = (*PROTOCOLS, USER_SPLIT, PRERANKING_PER_USER)
#: Per-user pre-ranking: share of each user's impressions held out, and the fewest a user needs.
HELD_OUT_FRACTION, MIN_IMPRESSIONS = 0.2, 10
HISTORY = "history"


def id_sort_key(ids: pd.Series) -> pd.Series:
    """Numeric order for numeric ids ("9" < "10"), string order otherwise."""
    numeric = pd.to_numeric(ids, errors="coerce")
    return numeric if numeric.notna().all() else ids


def id_vocabulary(ids: np.ndarray, counts: np.ndarray, min_count: int = 1, buckets: int = 0) -> Vocabulary:
    """The vocabulary of an id feature from its training ids (in order of first appearance) and
    their counts: the ids seen at least ``min_count`` times (rarer ones share the OOV index, in
    training and at serving time alike), or with ``buckets`` > 0 every id hashed into that many
    indices (:class:`~tfcs3.data.features.HashedVocabulary`)."""
    if buckets > 0:
        return HashedVocabulary(buckets)
    return Vocabulary(ids if min_count <= 1 else ids[counts >= min_count])


def build_spec(
    raw: RawDataset,
    train_users: np.ndarray,
    train_items: np.ndarray,
    max_history: int,
    history_gaps: bool = False,
    id_vocabularies: tuple[Vocabulary, Vocabulary] | None = None,
) -> FeatureSpec:
    """The feature spec learned from the training split: ``train_users`` / ``train_items`` are its
    raw ids in order of first appearance, and each categorical vocabulary is the side-table values
    of those ids in that order. ``id_vocabularies`` (users, items) replace the user-id and item-id
    vocabularies (:func:`id_vocabulary`); the default keeps every training id."""
    user_table = raw.users.loc[train_users]
    item_table = raw.items.loc[train_items]
    user_ids, item_ids = id_vocabularies or (Vocabulary(user_table.index), Vocabulary(item_table.index))
    query = [Feature("user_id", CATEGORICAL, user_ids)]
    query += [Feature(c, CATEGORICAL, Vocabulary(user_table[c])) for c in raw.user_features]
    if max_history > 0:
        query.append(Feature(HISTORY, SEQUENCE, None, max_len=max_history))
        if history_gaps:
            buckets = Vocabulary(str(b) for b in range(GAP_BUCKETS))
            query.append(Feature(HISTORY_GAP, MULTI, buckets, max_len=max_history, aligned_with=HISTORY))
    candidate = [Feature("item_id", CATEGORICAL, item_ids)]
    candidate += [Feature(c, CATEGORICAL, Vocabulary(item_table[c])) for c in raw.item_features]
    for c in raw.item_multi_features:
        values = [v for lst in item_table[c] for v in lst]
        width = max(1, int(raw.items[c].map(len).max()))
        candidate.append(Feature(c, MULTI, Vocabulary(values), max_len=width))
    return FeatureSpec(query=query, candidate=candidate)


def encode_catalog(raw: RawDataset, spec: FeatureSpec, catalog_ids: np.ndarray) -> dict[str, np.ndarray]:
    items = raw.items.loc[catalog_ids]
    out = {}
    for f in spec.candidate:
        assert f.vocabulary is not None
        if f.name == spec.item_id:
            out[f.name] = f.vocabulary.lookup(catalog_ids)
        elif f.kind == MULTI:
            out[f.name] = f.vocabulary.lookup_lists(list(items[f.name]), f.max_len)
        else:
            out[f.name] = f.vocabulary.lookup(items[f.name])
    return out


def histories(
    frame: pd.DataFrame, item_index: np.ndarray, max_len: int, gaps: bool = False
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
    """For rows of ``frame`` (sorted by user, then time), the left-padded earlier item indices.

    Returns the padded matrix, per row the catalog rows of *all* earlier items, and with ``gaps``
    the aligned ``history_gap`` vocabulary indices (bucket + 2; 0 on padding), else ``None``.
    """
    users = frame["user"].to_numpy()
    rows = frame["row"].to_numpy()
    # The frame row of each history entry (-1 on padding), then everything is gathered through it.
    source = np.full((len(frame), max_len), -1, dtype=np.int32)
    earlier: list[np.ndarray] = []
    boundaries = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    for start, end in zip(boundaries[:-1], boundaries[1:], strict=True):
        user_rows = rows[start:end]
        for i in range(start, end):
            earlier.append(user_rows[: i - start])
            first = max(start, i - max_len)
            if i > first:
                source[i, max_len - (i - first) :] = np.arange(first, i)
    real = source >= 0
    out = np.zeros((len(frame), max_len), dtype=np.int32)
    out[real] = item_index[rows[source[real]]]
    gap_out = None
    if gaps:
        times = frame["timestamp"].to_numpy().astype(np.int64)
        request = np.broadcast_to(times[:, None], source.shape)
        gap_out = np.zeros((len(frame), max_len), dtype=np.int32)
        gap_out[real] = 2 + gap_buckets(request[real] - times[source[real]])
    return out, earlier, gap_out


def split_from(
    frame: pd.DataFrame,
    idx: np.ndarray,
    raw: RawDataset,
    spec: FeatureSpec,
    catalog: dict[str, np.ndarray],
    history: np.ndarray,
    earlier: list[np.ndarray] | None,
    labels: bool,
    gaps: np.ndarray | None = None,
) -> Split:
    part = frame.iloc[idx]
    users = part["user"].to_numpy()
    target = part["row"].to_numpy().astype(np.int64)
    features: dict[str, np.ndarray] = {}
    user_table = raw.users.loc[users]
    for f in spec.query:
        assert f.kind == SEQUENCE or f.vocabulary is not None
        if f.kind == SEQUENCE:
            features[f.name] = history[idx]
        elif f.name == HISTORY_GAP and gaps is not None:
            features[f.name] = gaps[idx]
        elif f.vocabulary is None:
            raise ValueError(f"feature {f.name!r} of kind {f.kind!r} has no vocabulary")
        elif f.name == spec.user_id:
            features[f.name] = f.vocabulary.lookup(users)
        else:
            features[f.name] = f.vocabulary.lookup(user_table[f.name])
    for name, values in catalog.items():
        features[name] = values[target]
    timestamps = part["timestamp"].to_numpy().astype(np.int64)
    split = Split(features=features, target=target, users=users, timestamps=timestamps)
    if labels:
        split.labels = raw.labels(part)
    if earlier is not None:
        lists = [earlier[i][earlier[i] != t] for i, t in zip(idx, target, strict=True)]
        split.exclusion_indptr = np.r_[0, np.cumsum([len(x) for x in lists])].astype(np.int64)
        split.exclusion_rows = np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, dtype=np.int64)
    return split


def ordered(raw: RawDataset) -> tuple[pd.DataFrame, np.ndarray]:
    """The interactions with their catalog ``row``, in per-user chronological order (timestamp,
    then item id; this order defines histories in every protocol), and the catalog's raw ids
    (every item that occurs, in id order)."""
    df = raw.interactions.copy()
    if df.empty:
        raise ValueError(f"Dataset {raw.name!r} has no interactions")
    df["_item_key"] = id_sort_key(df["item"])
    df["_user_key"] = id_sort_key(df["user"])
    unique_items = pd.Series(pd.unique(df["item"]))
    catalog_ids = unique_items.iloc[np.argsort(id_sort_key(unique_items).to_numpy(), kind="stable")]
    catalog_ids = catalog_ids.to_numpy().astype(str)
    df["row"] = pd.Series(np.arange(len(catalog_ids)), index=catalog_ids).loc[df["item"]].to_numpy()
    df = df.sort_values(["_user_key", "timestamp", "_item_key"], kind="stable").reset_index(drop=True)
    return df, catalog_ids


def _check_gaps(raw: RawDataset, max_history: int, history_gaps: bool) -> None:
    if history_gaps and not raw.timestamps_are_times:
        raise ValueError(f"Dataset {raw.name!r} has order but no timestamps: it has no time gaps (history_gaps=True)")
    if history_gaps and max_history < 1:
        raise ValueError(f"history_gaps=True needs a history (max_history >= 1), got max_history={max_history}")


def check_protocol(raw: RawDataset, protocol: str, max_history: int, history_gaps: bool, has_labels: bool) -> None:
    """Refuses a protocol the data cannot serve (clear errors before any work)."""
    if protocol not in (*PROTOCOLS, PRERANKING_PER_USER):
        raise ValueError(f"protocol must be one of {(*PROTOCOLS, PRERANKING_PER_USER)}, got {protocol!r}")
    if protocol != RETRIEVAL and not has_labels:
        raise ValueError(
            f"Dataset {raw.name!r} has no ratings or labels, so it has no labels for the pre-ranking "
            "protocol; use protocol='retrieval'"
        )
    if max_history < 0:
        raise ValueError(f"max_history must be >= 0, got {max_history}")
    _check_gaps(raw, max_history, history_gaps)


def per_user_roles(protocol: str, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, validation, test)`` row positions of ``frame`` (sorted by user, then time) under a
    protocol that splits each user's rows on their own (retrieval, per-user pre-ranking): what one
    user's rows become never depends on another user's, so any set of whole users can be split
    apart from the rest (:mod:`tfcs3.data.streaming` does, bucket by bucket)."""
    position = frame.groupby("user", sort=False).cumcount().to_numpy()
    count = frame.groupby("user", sort=False)["item"].transform("size").to_numpy()
    if protocol == PRERANKING_PER_USER:
        return per_user_split(position, count)
    evaluable = count >= 3
    is_test = evaluable & (position == count - 1)
    is_val = evaluable & (position == count - 2)
    return np.flatnonzero(~is_test & ~is_val), np.flatnonzero(is_val), np.flatnonzero(is_test)


def encode_splits(
    raw: RawDataset,
    frame: pd.DataFrame,
    roles: tuple[np.ndarray, np.ndarray, np.ndarray],
    protocol: str,
    spec: FeatureSpec,
    catalog: dict[str, np.ndarray],
    max_history: int,
    history_gaps: bool,
) -> list[Split]:
    """The encoded train, validation and test splits of ``frame``'s rows (sorted by user, then
    time; every user's rows all present): histories, features and, for retrieval's held-out rows,
    the exclusion lists."""
    history, earlier, gaps = histories(frame, catalog[spec.item_id], max_history, history_gaps)
    labels = protocol != RETRIEVAL
    excl = earlier if protocol == RETRIEVAL else None
    splits = [split_from(frame, idx, raw, spec, catalog, history, excl, labels, gaps) for idx in roles]
    if protocol == RETRIEVAL:
        splits[0].exclusion_indptr = splits[0].exclusion_rows = None
    return splits


def prepare(
    raw: RawDataset,
    protocol: str = RETRIEVAL,
    max_history: int = 50,
    history_gaps: bool = False,
    min_count: int = 1,
    user_id_buckets: int = 0,
) -> PreparedData:
    """Splits and encodes ``raw`` under ``protocol`` (see the module docstring); ``history_gaps``
    adds the time-gap buckets of the history (``history_gap``). ``min_count`` leaves users and
    items with fewer training interactions out of the id vocabularies (they map to OOV);
    ``user_id_buckets`` > 0 hashes user ids into that many indices instead (:func:`id_vocabulary`)."""
    check_protocol(raw, protocol, max_history, history_gaps, raw.has_labels)
    df, catalog_ids = ordered(raw)
    if protocol == PRERANKING:
        order = np.lexsort((df["_item_key"].to_numpy(), df["_user_key"].to_numpy(), df["timestamp"].to_numpy()))
        n = len(order)
        cut1, cut2 = int(round(0.8 * n)), int(round(0.9 * n))
        roles = np.sort(order[:cut1]), order[cut1:cut2], order[cut2:]
    else:
        roles = per_user_roles(protocol, df)
    train_frame = df.iloc[roles[0]]
    users, user_counts = first_seen_counts(train_frame["user"])
    items, item_counts = first_seen_counts(train_frame["item"])
    known = id_vocabulary(users, user_counts, min_count, user_id_buckets), id_vocabulary(items, item_counts, min_count)
    spec = build_spec(raw, users, items, max_history, history_gaps, known)
    catalog = encode_catalog(raw, spec, catalog_ids)
    splits = encode_splits(raw, df, roles, protocol, spec, catalog, max_history, history_gaps)
    train_rows = train_frame["row"].to_numpy()
    counts = np.bincount(train_rows, minlength=len(catalog_ids))
    stored, name, description = protocol_label(raw, protocol)
    return assemble(raw, stored, spec, catalog_ids, catalog, counts, splits, name, description)


def protocol_label(raw: RawDataset, protocol: str) -> tuple[str, str, str]:
    """``(protocol, name, description)`` of the data ``prepare(raw, protocol)`` makes: per-user
    pre-ranking is evaluated as pre-ranking, under a name that says which split it is."""
    if protocol == PRERANKING_PER_USER:
        return PRERANKING, f"{raw.name} per-user", f"{raw.description}; per-user time split (last 20% of each user)"
    return protocol, raw.name, raw.description


def first_seen_counts(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values in order of first appearance, and how often each occurs."""
    codes, uniques = pd.factorize(values, sort=False)
    return np.asarray(uniques, dtype=object), np.bincount(codes, minlength=len(uniques))


def per_user_split(
    position: np.ndarray,
    count: np.ndarray,
    held_out: float = HELD_OUT_FRACTION,
    min_impressions: int = MIN_IMPRESSIONS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, validation, test)`` row indices of the per-user time split.

    ``position`` is each row's place in its user's time order and ``count`` the user's number of
    rows. A user with ``count >= min_impressions`` holds out its last ``round(held_out * count)``
    rows, the first half of them (rounded up) for validation and the rest for test; any other user
    keeps every row in training.
    """
    held = np.where(count >= min_impressions, np.round(held_out * count).astype(np.int64), 0)
    first_held = count - held
    first_test = first_held + (held + 1) // 2
    train = position < first_held
    test = position >= first_test
    return np.flatnonzero(train), np.flatnonzero(~train & ~test), np.flatnonzero(test)


def assemble(
    raw: RawDataset,
    protocol: str,
    spec: FeatureSpec,
    catalog_ids: np.ndarray,
    catalog: dict[str, np.ndarray],
    train_counts: np.ndarray,
    splits: list[Split],
    name: str | None = None,
    description: str | None = None,
) -> PreparedData:
    """The :class:`PreparedData`; item probabilities are ``train_counts`` (training rows per
    catalog row) normalised."""
    counts = np.asarray(train_counts, dtype=np.float64)
    return PreparedData(
        name=name or raw.name,
        protocol=protocol,
        spec=spec,
        catalog_ids=catalog_ids,
        catalog_titles=raw.items.loc[catalog_ids, "title"].to_numpy().astype(str),
        catalog=catalog,
        item_probability=counts / counts.sum(),
        train=splits[0],
        validation=splits[1],
        test=splits[2],
        description=raw.description if description is None else description,
    )


def _pick_targets(count: int, window: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``size`` distinct positions, in order, among those of a ``count``-long sequence with
    ``window`` earlier items; the last position when there are none."""
    eligible = np.arange(window, count)
    if eligible.size == 0:
        return np.array([count - 1])
    return np.sort(rng.choice(eligible, size=min(size, eligible.size), replace=False))


def prepare_user_split(
    raw: RawDataset,
    max_history: int = 50,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    targets_per_user: int = 10,
    seed: int = 0,
    history_gaps: bool = False,
) -> PreparedData:
    """Splits ``raw`` by user, T2Diff's protocol (see the module docstring).

    Args:
        raw: the dataset.
        max_history: history window (the paper's ``n = 50``); a target position is eligible when
            at least this many items precede it.
        test_fraction: share of users held out for testing.
        validation_fraction: share of the *remaining* users held out for validation.
        targets_per_user: most training examples per training user.
        seed: seeds the user split and the target positions.
        history_gaps: add the time-gap buckets of the history (``history_gap``).
    """
    if not 0 < test_fraction < 1 or not 0 < validation_fraction < 1:
        raise ValueError(f"fractions must lie in (0, 1); got test {test_fraction}, validation {validation_fraction}")
    if max_history < 1 or targets_per_user < 1:
        raise ValueError(f"max_history and targets_per_user must be >= 1; got {max_history}, {targets_per_user}")
    _check_gaps(raw, max_history, history_gaps)
    df, catalog_ids = ordered(raw)

    rng = np.random.default_rng(seed)
    users = pd.unique(df["user"])
    if len(users) < 3:
        raise ValueError(f"Dataset {raw.name!r} has {len(users)} users; the user split needs at least 3")
    order = rng.permutation(len(users))
    n_test = max(1, int(round(test_fraction * len(users))))
    n_val = max(1, int(round(validation_fraction * (len(users) - n_test))))
    if len(users) - n_test - n_val < 1:
        raise ValueError(
            f"the user split leaves no training users: {len(users)} users, {n_test} test, {n_val} validation"
        )
    role = np.zeros(len(users), dtype=np.int8)  # 0 train, 1 validation, 2 test
    role[order[:n_test]] = 2
    role[order[n_test : n_test + n_val]] = 1
    start = np.flatnonzero(np.r_[True, df["user"].to_numpy()[1:] != df["user"].to_numpy()[:-1]])
    count = np.diff(np.r_[start, len(df)])
    per_user = np.where(role == 0, targets_per_user, 1)
    picks = [start[u] + _pick_targets(int(count[u]), max_history, int(per_user[u]), rng) for u in range(len(users))]
    rows_by_role = [np.concatenate([picks[u] for u in np.flatnonzero(role == r)]) for r in range(3)]

    # The vocabulary is every item a training user interacted with. An item that falls in no
    # training example (target or history window) keeps an untrained row, as the OOV row does
    # here (no training example holds an OOV item); items only held-out users saw map to OOV.
    train_frame = df[df["user"].isin(set(users[role == 0]))]
    spec = build_spec(raw, pd.unique(train_frame["user"]), pd.unique(train_frame["item"]), max_history, history_gaps)
    # Test users are new users: their id is unknown by construction, so the id feature is dropped.
    spec = FeatureSpec(query=[f for f in spec.query if f.name != spec.user_id], candidate=spec.candidate)
    catalog = encode_catalog(raw, spec, catalog_ids)
    history, _, gaps = histories(df, catalog[spec.item_id], max_history, history_gaps)
    splits = [split_from(df, idx, raw, spec, catalog, history, None, False, gaps) for idx in rows_by_role]
    shares = (1 - test_fraction) * (1 - validation_fraction), (1 - test_fraction) * validation_fraction, test_fraction
    name = f"{raw.name} user split"
    description = f"{raw.description}; T2Diff's user split ({'/'.join(f'{x:.0%}' for x in shares)} users, seed {seed})"
    train_counts = np.bincount(df["row"].to_numpy()[rows_by_role[0]], minlength=len(catalog_ids))
    return assemble(raw, RETRIEVAL, spec, catalog_ids, catalog, train_counts, splits, name, description)
