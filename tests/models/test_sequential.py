"""SASRec and GRU4Rec: causality, dense supervision, training, export and save/load."""

import harness
import numpy as np
import pytest
import tensorflow as tf
from harness import export_matches_model

from tfcs3.data.dense import NEXT_ITEMS, dense_split
from tfcs3.evaluation import evaluate, represent
from tfcs3.export import export_model, raw_requests
from tfcs3.layers.causal_transformer import CausalTransformerEncoder
from tfcs3.layers.gru_encoder import GRUSequenceEncoder
from tfcs3.models import SideVectors, build_model, load_model, save_model
from tfcs3.training import train

SMALL = dict(embedding_dim=8, hidden_units=[16])


MECHANISMS = [pytest.param(name, marks=pytest.mark.slow) for name in ("dat_sasrec", "inttower_sasrec", "cs3_sasrec")]


@pytest.fixture(scope="module", params=["sasrec", "gru4rec", *MECHANISMS])
def trained(request, synthetic_retrieval):
    model = build_model(request.param, synthetic_retrieval, loss="full_softmax", dropout=0.1, **SMALL)
    train(model, synthetic_retrieval, epochs=4, batch_size=32, learning_rate=1e-2, verbose=0)
    return request.param, model


@pytest.mark.parametrize(
    "encoder",
    [CausalTransformerEncoder(12, num_blocks=2, num_heads=2, ffn_units=16, dropout=0.0), GRUSequenceEncoder(8)],
)
def test_a_position_never_sees_later_items(encoder):
    x = tf.random.normal([3, 12, 8], seed=1)
    valid = tf.constant([[False] * 4 + [True] * 8, [True] * 12, [False] * 11 + [True]])
    before = encoder((x, valid)).numpy()
    changed = tf.concat([x[:, :7], tf.random.normal([3, 5, 8], seed=2)], axis=1)  # positions 7.. change
    after = encoder((changed, valid)).numpy()
    np.testing.assert_allclose(after[:, :7], before[:, :7], atol=1e-6)
    assert np.abs(after[:2, 7:] - before[:2, 7:]).max() > 1e-3  # and later positions do see them


def test_leading_padding_does_not_change_real_positions(synthetic_retrieval):
    """The tower skips columns every row pads; each row's output is the same in any batch."""
    model = build_model("sasrec", synthetic_retrieval, **SMALL)
    features = harness.head(synthetic_retrieval.test, 40)
    alone = np.concatenate(
        [represent(model.query_model, {k: v[i : i + 1] for k, v in features.items()}) for i in range(40)]
    )
    together = represent(model.query_model, features).numpy()
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_training_beats_popularity(trained, synthetic_retrieval):
    encoder, model = trained
    ours = evaluate(model, synthetic_retrieval, "test")["ndcg@10"]
    popularity = evaluate(build_model("popularity", synthetic_retrieval), synthetic_retrieval, "test")["ndcg@10"]
    assert ours > popularity, encoder


def test_the_dense_loss_counts_every_real_position(synthetic_retrieval):
    """Only positions with a next item enter the loss: full softmax over them equals the sum of
    per-position cross-entropies computed by hand from the tower's outputs."""
    model = build_model("sasrec", synthetic_retrieval, loss="full_softmax", dropout=0.0, **SMALL)
    split = model.training_examples(synthetic_retrieval.train)
    batch = harness.features(split, 16)
    h = model.query_model(batch, all_positions=True).numpy()
    table = model.candidate_vectors(tf.range(len(synthetic_retrieval.spec.item_vocabulary))).numpy()
    following = batch[NEXT_ITEMS].numpy()
    expected = 0.0
    for r, t in zip(*np.nonzero(following), strict=True):
        logits = h[r, t] @ table[2:].T
        expected += np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[following[r, t] - 2]
    np.testing.assert_allclose(float(model.compute_loss(batch)), expected, rtol=1e-4)


def test_export_equals_the_in_process_model(trained, synthetic_retrieval, tmp_path, serve_in_fresh_process):
    name, model = trained
    data = synthetic_retrieval
    out = export_matches_model(model, data, tmp_path, name)
    path, raw, top = out["path"], out["raw"], out["top"]
    catalog = represent(model.candidate_model, data.catalog).numpy()
    scores = out["queries"] @ catalog.T
    for r in range(6):
        excluded = set(data.test.exclusions(r))
        ranked = [i for i in np.argsort(-scores[r], kind="stable") if i not in excluded][:5]
        np.testing.assert_allclose(top["scores"].numpy()[r], scores[r, ranked], rtol=1e-4, atol=1e-5)
    fresh = serve_in_fresh_process(path, "tfcs3,scann,tensorflow_recommenders", raw)
    assert fresh["ids"] == [[i.decode() for i in row] for row in top["item_ids"].numpy()]


def test_scann_export_serves(trained, synthetic_retrieval, tmp_path):
    name, model = trained
    path = export_model(model, synthetic_retrieval, tmp_path, name, index="scann", k=5)
    raw = raw_requests(synthetic_retrieval, model.query_feature_names, "test", rows=range(4))
    out = tf.saved_model.load(str(path)).signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})
    assert out["item_ids"].shape == (4, 5)


def test_save_and_load(trained, synthetic_retrieval, tmp_path):
    name, model = trained
    save_model(model, tmp_path / "m", name, dict(loss="full_softmax", dropout=0.1, **SMALL))
    restored = load_model(tmp_path / "m", synthetic_retrieval)
    features = harness.head(synthetic_retrieval.test, 8)
    np.testing.assert_allclose(
        represent(restored.query_model, features).numpy(), represent(model.query_model, features).numpy(), atol=1e-6
    )


def test_profile_options_and_errors(synthetic_retrieval, synthetic_preranking):
    spec = synthetic_retrieval.spec
    user_features = {f.name for f in spec.query if f.kind == "categorical"}
    for profile, expected in [("none", set()), ("features", user_features - {spec.user_id}), ("all", user_features)]:
        model = build_model("sasrec", synthetic_retrieval, profile=profile, **SMALL)
        assert set(model.query_feature_names) == {"history", *expected}
    with pytest.raises(ValueError, match="profile must be one of"):
        build_model("sasrec", synthetic_retrieval, profile="some")
    with pytest.raises(ValueError, match="retrieval model"):
        build_model("gru4rec", synthetic_preranking)
    with pytest.raises(ValueError, match="num_heads"):
        model = build_model("sasrec", synthetic_retrieval, embedding_dim=9, num_heads=2)
        model.query_model(harness.features(synthetic_retrieval.test, 2))


def _dense_batch(data, rows):
    return harness.features(dense_split(data.train, "history", "item_id"), rows)


def _loss_with_and_without(model, batch, weight, value):
    """The model's loss on ``batch`` with hyperparameter ``weight`` at ``value`` and at 0."""
    model.hparams[weight] = 0.0
    without = float(model.compute_loss(batch))
    model.hparams[weight] = value
    return float(model.compute_loss(batch)), without


def test_side_vectors_join_every_position_or_each_position():
    side = SideVectors(4, num_vectors=1, augment_feature="user_id", augment_input_dim=5)
    x = tf.zeros([2, 3, 4])
    per_row = side.vectors({"user_id": tf.constant([2, 3])}, [tf.ones([2, 6])])
    joined = side.join(x, per_row).numpy()
    np.testing.assert_allclose(joined[:, 0], joined[:, 2])  # one vector for every position
    per_position = [tf.random.normal([2, 3, 6]), per_row[1]]
    # a memory's projection starts at zero: the tower starts as its backbone
    np.testing.assert_allclose(side.join(x, per_position).numpy(), side.join(x, per_row).numpy())
    side.projections[0].kernel.assign(tf.random.normal([6, 4]))
    joined = side.join(x, per_position).numpy()
    assert not np.allclose(joined[:, 0], joined[:, 2])
    with pytest.raises(ValueError, match="expects 1 memory reads"):
        side.vectors({"user_id": tf.constant([2])}, [])


def test_dat_on_sasrec_adds_the_mimic_losses_of_every_supervised_position(synthetic_retrieval):
    data = synthetic_retrieval
    model = build_model("dat_sasrec", data, cal_weight=0.0, dropout=0.0, **SMALL)
    batch = _dense_batch(data, slice(0, 16))
    with_mimic, base = _loss_with_and_without(model, batch, "amm_weight", 0.5)
    valid = batch[NEXT_ITEMS].numpy() != 0
    q = model.query_model(batch, all_positions=True).numpy()[valid]
    items = batch[NEXT_ITEMS].numpy()[valid]
    users = np.broadcast_to(batch["user_id"].numpy()[:, None], valid.shape)[valid]
    c = model.candidate_vectors(tf.constant(items)).numpy()
    a_u = model.query_model.side.augment(tf.constant(users)).numpy()
    a_v = model.candidate_model.side.augment(tf.constant(items)).numpy()
    mimic = ((a_u - c) ** 2).sum(-1).mean() + ((a_v - q) ** 2).sum(-1).mean()
    np.testing.assert_allclose(with_mimic - base, 0.5 * valid.sum() * mimic, rtol=1e-3)


def test_inttower_on_sasrec_adds_cir_over_every_supervised_position(synthetic_retrieval):
    from tfcs3.layers.interaction_tower import contrastive_interaction_loss

    data = synthetic_retrieval
    model = build_model("inttower_sasrec", data, dropout=0.0, **SMALL)
    batch = _dense_batch(data, slice(0, 16))
    with_cir, base = _loss_with_and_without(model, batch, "cir_weight", 0.3)
    valid = batch[NEXT_ITEMS].numpy() != 0
    q = model.query_model(batch, all_positions=True).numpy()[valid]
    c = model.candidate_vectors(tf.constant(batch[NEXT_ITEMS].numpy()[valid])).numpy()
    cir = float(contrastive_interaction_loss(q, c, tf.ones(len(q)), model.hparams["cir_temperature"]))
    np.testing.assert_allclose(with_cir - base, 0.3 * valid.sum() * cir, rtol=1e-3)
