import harness
import numpy as np
import pytest
import tensorflow as tf

from tfcs3.data.features import PAD
from tfcs3.evaluation import evaluate
from tfcs3.export import ServingModule, export_model, raw_requests
from tfcs3.models import build_model, load_model, save_model
from tfcs3.training import train

SMALL = dict(embedding_dim=16, hidden_units=[16], num_meta=4, head_dim=8)


@pytest.fixture(scope="module")
def trained(synthetic_preranking):
    model = build_model("fit", synthetic_preranking, **SMALL)
    result = train(model, synthetic_preranking, epochs=6, batch_size=128, learning_rate=3e-3, verbose=0)
    return model, result


def test_fit_is_pre_ranking_only_and_needs_a_history(synthetic_retrieval, synthetic_raw):
    from tfcs3.data.protocols import prepare

    with pytest.raises(ValueError, match="pre-ranking"):
        build_model("fit", synthetic_retrieval)
    with pytest.raises(ValueError, match="history"):
        build_model("fit", prepare(synthetic_raw, "preranking", max_history=0))
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        build_model("fit", prepare(synthetic_raw, "preranking", max_history=20), heads=3)


def test_training_beats_popularity(trained, synthetic_preranking):
    """Popularity alone ranks the synthetic impressions well (AUC ~0.78); FIT must match it and
    predict better probabilities (log loss)."""
    model, _ = trained
    ours = evaluate(model, synthetic_preranking, "test")
    popularity = evaluate(build_model("popularity", synthetic_preranking), synthetic_preranking, "test")
    assert ours["auc"] > 0.75 and ours["logloss"] < popularity["logloss"] - 0.005


def test_temperature_anneals_linearly_over_one_epoch_then_stays(synthetic_preranking):
    data = synthetic_preranking
    model = build_model("fit", data, anneal_epochs=2.0, min_temperature=0.05, **SMALL)
    assert model.hparams["anneal_examples"] == 2 * len(data.train)
    batch = {**harness.features(data.train, 64), "label": tf.constant(data.train.labels[:64])}
    model.compute_loss(batch, training=True)
    assert float(model.meta.temperature) == pytest.approx(1.0)  # set before the first batch counts
    model.compute_loss(batch, training=True)
    assert float(model.meta.temperature) == pytest.approx(1.0 - 64 / (2 * len(data.train)))
    model.examples_seen.assign(10 * len(data.train))
    model.compute_loss(batch, training=True)
    assert float(model.meta.temperature) == pytest.approx(0.05)
    model.compute_loss(batch, training=False)  # evaluation does not advance the schedule
    assert float(model.examples_seen) == 10 * len(data.train) + 64


def test_inference_uses_the_hard_query_that_score_gathers(trained, synthetic_preranking):
    model, _ = trained
    batch = harness.features(synthetic_preranking.test, 50)
    logits = model(batch, training=False).numpy()
    users = model.query_model(batch)  # every hard query
    items = model.candidate_model(batch)  # heads + the item's index
    assert users.shape == (50, 4 * 4 * 8) and items.shape == (50, 4 * 8 + 1)
    index = items.numpy()[:, -1]
    attributes = model.candidate_model.embedding(batch)
    np.testing.assert_array_equal(index, model.meta.hard_index(attributes).numpy())
    np.testing.assert_allclose(model.score_pairs(users, items).numpy(), logits, rtol=1e-5, atol=1e-6)
    # The soft path differs while tau is high and meets the hard one at tau -> 0.
    model.meta.temperature.assign(1e-6)
    np.testing.assert_allclose(model(batch, training=True).numpy(), logits, rtol=1e-4, atol=1e-5)


def test_offline_item_tables_reproduce_the_online_item_tower(trained, synthetic_preranking):
    model, _ = trained
    data = synthetic_preranking
    serving = ServingModule(model, data)
    rows = data.test.target[:40]
    online = model.candidate_model(harness.features(data.test, 40)).numpy()
    np.testing.assert_allclose(serving.item_embeddings.numpy()[rows], online, rtol=1e-5, atol=1e-6)
    # History items are embedded with the candidate tables through the item -> attribute table.
    hist = data.test.features["history"][:40]
    embedded, ids = model.query_model.behaviour({"history": tf.constant(hist)})
    catalog_attributes = model.candidate_model.embedding({k: tf.constant(v) for k, v in data.catalog.items()}).numpy()
    vocab_to_row = {v: r for r, v in enumerate(data.catalog["item_id"]) if v > 1}
    for b, t in zip(*np.nonzero(hist > 1), strict=True):
        np.testing.assert_allclose(embedded.numpy()[b, t], catalog_attributes[vocab_to_row[hist[b, t]]], atol=1e-6)
    assert np.all(ids.numpy()[hist == PAD] == PAD)


def test_exported_hard_query_path_equals_the_model(trained, synthetic_preranking, tmp_path):
    model, _ = trained
    data = synthetic_preranking
    path = export_model(model, data, tmp_path, "fit", k=5)
    loaded = tf.saved_model.load(str(path))
    n = 12
    request = raw_requests(data, model.query_feature_names, "test", rows=range(n), exclude_earlier=False)
    candidates = [[data.catalog_ids[data.test.target[i]]] for i in range(n)]
    scores = loaded.signatures["score_candidates"](
        **{k: tf.constant(v) for k, v in request.items()}, candidate_ids=tf.constant(candidates)
    )["scores"].numpy()[:, 0]
    expected = model(harness.features(data.test, n), training=False).numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    top = loaded.signatures["serving_default"](
        **{k: tf.constant(v) for k, v in request.items()}, exclude=tf.constant([[""]] * n)
    )
    assert top["item_ids"].shape == (n, 5)


def test_save_and_load_restore_the_model(trained, synthetic_preranking, tmp_path):
    model, _ = trained
    save_model(model, tmp_path / "m", "fit", SMALL)
    restored = load_model(tmp_path / "m", synthetic_preranking)
    batch = harness.features(synthetic_preranking.test, 30)
    np.testing.assert_array_equal(restored(batch).numpy(), model(batch).numpy())
    assert float(restored.meta.temperature) == float(model.meta.temperature)


@pytest.mark.parametrize("switch", [{"use_mqm": False}, {"use_lss": False}])
def test_ablations_train_and_keep_the_contract(switch, synthetic_preranking):
    data = synthetic_preranking
    model = build_model("fit", data, **SMALL, **switch)
    batch = {**harness.features(data.train, 32), "label": tf.constant(data.train.labels[:32])}
    assert np.isfinite(float(model.compute_loss(batch, training=True)))
    users, items = model.query_model(batch), model.candidate_model(batch)
    np.testing.assert_allclose(model.score_pairs(users, items).numpy(), model(batch).numpy(), rtol=1e-5, atol=1e-6)
    if "use_mqm" in switch:
        assert model.meta is None and users.shape[1] == 4 * 8 and np.all(items.numpy()[:, -1] == 0)
    else:
        assert model.lss is None
