import numpy as np
import pytest

from tfcs3.data import OOV, PAD, Feature, FeatureSpec, Vocabulary


def test_vocabulary_reserves_padding_and_oov():
    vocab = Vocabulary(["a", "b", "a", 7])
    assert len(vocab) == 3 + 2
    np.testing.assert_array_equal(vocab.lookup(["a", "b", "7", "never"]), [2, 3, 4, OOV])
    assert vocab.raw([PAD, OOV, 3]) == ["<pad>", "<oov>", "b"]


def test_lookup_lists_pads_and_truncates():
    vocab = Vocabulary(["x", "y"])
    out = vocab.lookup_lists([["x"], [], ["y", "zz", "x"]], max_len=2)
    np.testing.assert_array_equal(out, [[2, 0], [0, 0], [3, OOV]])


def test_spec_json_round_trip():
    spec = FeatureSpec(
        query=[
            Feature("user_id", "categorical", Vocabulary(["1", "2"])),
            Feature("history", "sequence", max_len=5),
            Feature("gaps", "multi", Vocabulary(["0", "1"]), 5, aligned_with="history"),
        ],
        candidate=[
            Feature("item_id", "categorical", Vocabulary(["9"])),
            Feature("genres", "multi", Vocabulary(["g"]), 3),
        ],
    )
    again = FeatureSpec.from_json(spec.to_json())
    assert again.to_json() == spec.to_json()
    assert again.feature("genres").max_len == 3
    assert again.feature("gaps").aligned_with == "history" and again.feature("genres").aligned_with is None
    assert again.item_vocabulary.values == ["9"]


def test_spec_rejects_duplicates_and_bad_kinds():
    v = Vocabulary(["a"])
    with pytest.raises(ValueError, match="used twice"):
        FeatureSpec(query=[Feature("item_id", "categorical", v)], candidate=[Feature("item_id", "categorical", v)])
    with pytest.raises(ValueError, match="kind"):
        Feature("x", "dense", v)
    with pytest.raises(ValueError, match="vocabulary"):
        Feature("x", "categorical", None)


def test_aligned_features_must_match_a_query_sequence():
    v = Vocabulary(["a"])
    items = [Feature("item_id", "categorical", v)]
    history = Feature("history", "sequence", max_len=4)
    with pytest.raises(ValueError, match="only a multi feature"):
        Feature("x", "categorical", v, aligned_with="history")
    for query, candidate in [
        ([history, Feature("x", "multi", v, 3, aligned_with="history")], items),  # wrong length
        ([history, Feature("x", "multi", v, 4, aligned_with="session")], items),  # no such sequence
        ([history], [*items, Feature("x", "multi", v, 4, aligned_with="history")]),  # candidate side
    ]:
        with pytest.raises(ValueError, match="'x' is aligned with"):
            FeatureSpec(query=query, candidate=candidate)


def test_a_hashed_vocabulary_gives_every_id_a_stable_bucket_and_round_trips():
    from tfcs3.data.features import CATEGORICAL, HashedVocabulary

    vocab = HashedVocabulary(64)
    ids = vocab.lookup(["u1", "u2", "someone new", "u1"])
    assert len(vocab) == 66 and ((ids >= 2) & (ids < 66)).all() and ids[0] == ids[3]
    assert "anything" in vocab
    spec = FeatureSpec(
        query=[Feature("user_id", CATEGORICAL, vocab)], candidate=[Feature("item_id", CATEGORICAL, Vocabulary(["a"]))]
    )
    again = FeatureSpec.from_json(spec.to_json()).feature("user_id").vocabulary
    assert isinstance(again, HashedVocabulary) and again.buckets == 64
    np.testing.assert_array_equal(again.lookup(["u1", "u2"]), ids[:2])
