"""The retrieval losses: exact values on toy catalogs, and every loss on every dot model."""

import harness
import numpy as np
import pytest
import tensorflow as tf

from tfcs3.models import build_model
from tfcs3.models.retrieval_loss import contains, full_softmax_loss, sample_negatives, sampled_softmax_loss

RNG = np.random.default_rng(0)
Q = RNG.normal(size=(3, 4)).astype(np.float32)
TABLE = RNG.normal(size=(7, 4)).astype(np.float32)  # rows 0, 1: padding and OOV
POSITIVES = np.array([2, 5, 6])


def _cross_entropy(logits, label):
    return float(np.log(np.exp(logits).sum()) - logits[label])


def test_full_softmax_equals_a_hand_computed_cross_entropy():
    expected = 0.0
    for r in range(3):
        logits = Q[r] @ TABLE[2:].T / 0.5  # every real item, padding and OOV left out
        expected += _cross_entropy(logits, POSITIVES[r] - 2)
    got = full_softmax_loss(tf.constant(Q), tf.constant(TABLE), tf.constant(POSITIVES), temperature=0.5)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_sampled_softmax_with_every_item_as_negative_and_no_logq_is_the_full_softmax():
    everything = np.arange(2, 7)
    sampled = sampled_softmax_loss(
        tf.constant(Q), tf.constant(TABLE[POSITIVES]), tf.constant(POSITIVES),
        tf.constant(TABLE[everything]), tf.constant(everything),
    )  # fmt: skip
    full = full_softmax_loss(tf.constant(Q), tf.constant(TABLE), tf.constant(POSITIVES))
    np.testing.assert_allclose(float(sampled), float(full), rtol=1e-5)


def test_logq_shifts_each_logit_by_exactly_log_p():
    negatives = np.array([3, 4])
    p_pos, p_neg = np.array([0.1, 0.2, 0.4], np.float32), np.array([0.05, 0.5], np.float32)
    got = sampled_softmax_loss(
        tf.constant(Q), tf.constant(TABLE[POSITIVES]), tf.constant(POSITIVES), tf.constant(TABLE[negatives]),
        tf.constant(negatives), positive_probability=tf.constant(p_pos), negative_probability=tf.constant(p_neg),
    )  # fmt: skip
    expected = 0.0
    for r in range(3):
        logits = np.r_[Q[r] @ TABLE[POSITIVES[r]] - np.log(p_pos[r]), Q[r] @ TABLE[negatives].T - np.log(p_neg)]
        if POSITIVES[r] in negatives:  # an accidental hit
            logits[1 + list(negatives).index(POSITIVES[r])] = -np.inf
        expected += _cross_entropy(logits, 0)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_known_positives_are_removed_from_the_negatives():
    negatives = np.array([3, 4, 5, 6])
    known = np.array([[3, 0], [4, 6], [0, 0]])  # row 1's positive (5) is also dropped, as an accidental hit
    got = sampled_softmax_loss(
        tf.constant(Q), tf.constant(TABLE[POSITIVES]), tf.constant(POSITIVES), tf.constant(TABLE[negatives]),
        tf.constant(negatives), known=tf.constant(known),
    )  # fmt: skip
    expected = 0.0
    for r, kept in enumerate([[4, 5, 6], [3], [3, 4, 5]]):
        logits = np.r_[Q[r] @ TABLE[POSITIVES[r]], Q[r] @ TABLE[kept].T]
        expected += _cross_entropy(logits, 0)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    mask = contains(tf.constant(known), tf.constant(negatives)).numpy()
    np.testing.assert_array_equal(mask, [[1, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]])


def test_samplers_draw_real_items_with_their_probability():
    tf.random.set_seed(0)
    ids, p = sample_negatives(1000, 7, "uniform")
    assert ids.numpy().min() >= 2 and ids.numpy().max() <= 6
    np.testing.assert_allclose(p.numpy(), 1 / 5)
    popularity = tf.constant([0, 0, 0.7, 0.3, 0, 0, 0], tf.float32)
    ids, p = sample_negatives(2000, 7, "popularity", popularity)
    assert set(ids.numpy()) == {2, 3}
    assert 0.6 < np.mean(ids.numpy() == 2) < 0.8
    np.testing.assert_allclose(p.numpy(), popularity.numpy()[ids.numpy()])


DOT_MODELS = ["youtubednn", "dssm", "dat_youtubednn", "inttower_dot", "cs3_youtubednn", "t2diff", "sasrec", "gru4rec"]
LOSSES = [
    {"loss": "full_softmax"},
    {"loss": "sampled_softmax", "num_negatives": 16},
    {"loss": "sampled_softmax", "num_negatives": 16, "negative_sampler": "popularity", "mixed_negatives": True},
]
SMALL = {"t2diff": dict(diffusion_steps=5, session_length=5, ffn_units=8, attention_units=8)}


@pytest.mark.parametrize("loss", LOSSES, ids=lambda h: "-".join(str(v) for v in h.values()))
@pytest.mark.parametrize("name", DOT_MODELS)
def test_every_dot_model_trains_with_every_loss(name, loss, synthetic_retrieval):
    model = build_model(name, synthetic_retrieval, embedding_dim=8, hidden_units=[16], **SMALL.get(name, {}), **loss)
    split = model.training_examples(synthetic_retrieval.train)
    batch = harness.features(split, 32)
    with tf.GradientTape() as tape:
        value = model.compute_loss(batch, training=True)
    grads = tape.gradient(value, model.trainable_variables)
    assert np.isfinite(float(value))
    named = {v.name: g for v, g in zip(model.trainable_variables, grads, strict=True)}
    assert any("query_tower" in n and g is not None for n, g in named.items())
    assert any("candidate_tower" in n and g is not None for n, g in named.items())


def test_bad_loss_settings_are_clear_errors(synthetic_retrieval, synthetic_preranking):
    with pytest.raises(ValueError, match="loss must be one of"):
        build_model("youtubednn", synthetic_retrieval, loss="softmax")
    with pytest.raises(ValueError, match="use loss='sampled_softmax'"):
        build_model("youtubednn", synthetic_retrieval, loss="full_softmax", max_full_softmax_items=10)
    with pytest.raises(ValueError, match="retrieval loss"):
        build_model("youtubednn", synthetic_preranking, loss="full_softmax")
    with pytest.raises(ValueError, match="in_batch"):
        build_model("inttower_youtubednn", synthetic_retrieval, loss="sampled_softmax")
    with pytest.raises(ValueError, match="negative_sampler"):
        build_model("youtubednn", synthetic_retrieval, loss="sampled_softmax", negative_sampler="zipf")
    with pytest.raises(ValueError, match="num_negatives"):
        build_model("youtubednn", synthetic_retrieval, loss="sampled_softmax", num_negatives=0)


def test_sparcode_trains_with_catalog_negatives(synthetic_retrieval):
    """SparCode's all-to-all scorer: sampled softmax over negatives drawn from the catalog."""
    model = build_model("all_to_all", synthetic_retrieval, loss="sampled_softmax", num_negatives=16, embedding_dim=8)
    batch = harness.features(synthetic_retrieval.train, 32)
    with tf.GradientTape() as tape:
        value = model.compute_loss(batch, training=True)
    grads = tape.gradient(value, model.trainable_variables)
    assert np.isfinite(float(value)) and any(g is not None for g in grads)
    with pytest.raises(ValueError, match="full and sampled softmax need a dot-product score"):
        build_model("sparcode", synthetic_retrieval, loss="full_softmax")


def test_full_softmax_takes_each_rows_own_positive_vector_and_drops_its_known_items():
    own = RNG.normal(size=(3, 4)).astype(np.float32)  # the positives as the rows themselves read them
    known = np.array([[3, 2], [4, 0], [0, 0]])  # row 0's own positive (2) is known too: it stays
    got = full_softmax_loss(
        tf.constant(Q), tf.constant(TABLE), tf.constant(POSITIVES), positive_vectors=tf.constant(own),
        known=tf.constant(known),
    )  # fmt: skip
    expected = 0.0
    for r in range(3):
        logits = Q[r] @ TABLE.T
        logits[POSITIVES[r]] = Q[r] @ own[r]
        dropped = {0, 1} | ({int(i) for i in known[r]} - {int(POSITIVES[r])})
        kept = [i for i in range(7) if i not in dropped]
        expected += _cross_entropy(logits[kept], kept.index(POSITIVES[r]))
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
