import harness
import numpy as np
import pytest
import tensorflow as tf
from harness import export_matches_model

from tfcs3.evaluation import evaluate, represent
from tfcs3.export import export_model, raw_requests
from tfcs3.models import build_model, load_model, save_model
from tfcs3.training import train

SMALL = dict(embedding_dim=8, hidden_units=[16], diffusion_steps=5, session_length=5, ffn_units=8, attention_units=8)


@pytest.fixture(scope="module")
def trained(synthetic_retrieval):
    model = build_model("t2diff", synthetic_retrieval, **SMALL)
    train(model, synthetic_retrieval, epochs=3, batch_size=128, learning_rate=1e-2, verbose=0)
    return model


def test_training_beats_popularity(trained, synthetic_retrieval):
    ours = evaluate(trained, synthetic_retrieval, "test")["ndcg@10"]
    popularity = evaluate(build_model("popularity", synthetic_retrieval), synthetic_retrieval, "test")["ndcg@10"]
    assert ours > popularity


def test_the_diffusion_loss_and_the_tower_loss_train_disjoint_weights(synthetic_retrieval):
    model = build_model("t2diff", synthetic_retrieval, **SMALL)
    batch = harness.features(synthetic_retrieval.train)
    behaviours, ids = model.query_model.behaviour(batch)
    target = model.candidate_model.embedding(batch)
    with tf.GradientTape(persistent=True) as tape:
        diffusion, intent = model.generator.loss(behaviours, ids, target)
        q = model.query_model(batch, training=True, intent=intent)
        tower = model.loss_from_representations(batch, q, model.candidate_model(batch, training=True))
    variables = model.trainable_variables
    unet = {v.name for v in model.generator.trainable_variables}  # built by the first call

    def trained_by(loss):
        return {v.name for v, g in zip(variables, tape.gradient(loss, variables), strict=True) if g is not None}

    by_diffusion, by_tower = trained_by(diffusion), trained_by(tower)
    assert by_diffusion == unet  # the U-Net and nothing else
    assert by_tower and not by_tower & unet  # the towers and embeddings, never the U-Net


def test_query_side_runs_the_reverse_chain_reproducibly(trained, synthetic_retrieval):
    features = harness.head(synthetic_retrieval.test, 8)
    a = represent(trained.query_model, features).numpy()
    b = represent(trained.query_model, features).numpy()
    np.testing.assert_array_equal(a, b)  # fixed-seed noise
    # Candidate representations never depend on the query side (the contract tests check the
    # whole registry; here: the catalog embedding is a plain item tower).
    assert represent(trained.candidate_model, synthetic_retrieval.catalog).shape[1] == 8


def test_export_reload_gives_the_same_query_embeddings_and_top_k(trained, synthetic_retrieval, tmp_path):
    export_matches_model(trained, synthetic_retrieval, tmp_path, "t2diff")


def test_save_load_and_clear_errors(trained, synthetic_retrieval, synthetic_preranking, tmp_path):
    save_model(trained, tmp_path / "m", "t2diff", SMALL)
    restored = load_model(tmp_path / "m", synthetic_retrieval)
    features = harness.head(synthetic_retrieval.test, 4)
    np.testing.assert_allclose(
        represent(restored.query_model, features).numpy(), represent(trained.query_model, features).numpy(), atol=1e-6
    )
    with pytest.raises(ValueError, match="retrieval model"):
        build_model("t2diff", synthetic_preranking)
    with pytest.raises(ValueError, match="session_length"):
        build_model("t2diff", synthetic_retrieval, session_length=40)


@pytest.mark.parametrize("switch", [{"use_diffusion": False}, {"drift": False}])
def test_ablations_train(switch, synthetic_retrieval):
    model = build_model("t2diff", synthetic_retrieval, **SMALL, **switch)
    assert np.isfinite(float(model.compute_loss(harness.features(synthetic_retrieval.train), training=True)))
    assert (model.generator is None) == ("use_diffusion" in switch)


@pytest.fixture(scope="module")
def with_gaps(synthetic_raw):
    from tfcs3.data import prepare

    return prepare(synthetic_raw, "retrieval", max_history=20, history_gaps=True)


def test_time_gaps_enter_the_history_attention_only_at_real_positions(with_gaps):
    model = build_model("t2diff", with_gaps, **SMALL)
    assert "history_gap" in model.query_feature_names
    batch = harness.features(with_gaps.train, 16)
    hist, gaps = batch["history"].numpy(), batch["history_gap"].numpy()
    base = model.query_model(batch).numpy()

    def changed(mask):
        altered = dict(batch, history_gap=tf.constant(np.where(mask, 5, gaps)))
        return np.abs(model.query_model(altered).numpy() - base).max(axis=1)

    history_part = np.zeros_like(hist, bool)
    history_part[:, : -SMALL["session_length"]] = True
    padded = hist == 0
    # Padding is masked: a bucket there changes nothing (the id of padding stays 0 in real data).
    np.testing.assert_allclose(changed(padded & history_part), 0, atol=1e-6)
    # The session's gaps are not used either (the time lag enters the target attention only).
    np.testing.assert_allclose(changed(~padded & ~history_part), 0, atol=1e-6)
    real = ~padded & history_part
    rows = real.any(axis=1)
    assert rows.any() and (changed(real)[rows] > 1e-5).all()


def test_time_gaps_export_and_reload(with_gaps, tmp_path):
    model = build_model("t2diff", with_gaps, **SMALL)
    train(model, with_gaps, epochs=1, batch_size=128, learning_rate=1e-2, verbose=0)
    path = export_model(model, with_gaps, tmp_path, "t2diff", k=5)
    loaded = tf.saved_model.load(str(path))
    raw = raw_requests(with_gaps, model.query_feature_names, "test", rows=range(6))
    assert len(raw["history_gap"][0]) == len(raw["history"][0])
    names = model.query_feature_names
    exported = loaded.signatures["query_embedding"](**{k: tf.constant(raw[k]) for k in names})["embedding"]
    in_process = represent(model.query_model, harness.head(with_gaps.test, 6))
    np.testing.assert_allclose(exported.numpy(), in_process.numpy(), rtol=1e-4, atol=1e-5)
    # Padding may sit anywhere in a request and older entries beyond the window are cut: both
    # lists are reordered and cropped together (rows with a full window, so the extra item is cut).
    full = [r for r in range(len(with_gaps.test)) if (with_gaps.test.features["history"][r] != 0).all()][:4]
    raw = raw_requests(with_gaps, names, "test", rows=full)
    reference = loaded.signatures["query_embedding"](**{k: tf.constant(raw[k]) for k in names})["embedding"]
    old = {"history": str(with_gaps.spec.item_vocabulary.values[0]), "history_gap": "20"}
    messy = {k: [[old[k], "", *row[:5], "", *row[5:]] for row in raw[k]] if k in old else raw[k] for k in names}
    again = loaded.signatures["query_embedding"](**{k: tf.constant(messy[k]) for k in names})["embedding"]
    np.testing.assert_allclose(again.numpy(), reference.numpy(), atol=1e-6)
    bad = dict({k: tf.constant(raw[k]) for k in names}, history_gap=tf.constant([r[:-1] for r in raw["history_gap"]]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="`history_gap` must give one value per `history` entry"):
        loaded.signatures["query_embedding"](**bad)


def test_fewer_serving_steps_change_the_query_and_export_as_set(trained, synthetic_retrieval, tmp_path):
    features = harness.head(synthetic_retrieval.test, 8)
    default = trained.hparams["diffusion_serving_steps"]
    assert default == 1  # one DDIM step: the count benchmarks/t2diff_steps.py chose on validation
    trained.set_serving_steps(None)  # the trained chain
    try:
        chain = represent(trained.query_model, features).numpy()
        trained.set_serving_steps(2)
        assert trained.hparams["diffusion_serving_steps"] == 2
        fast = represent(trained.query_model, features).numpy()
        assert np.all(np.isfinite(fast)) and not np.allclose(fast, chain)
        export_matches_model(trained, synthetic_retrieval, tmp_path, "t2diff")
        trained.set_serving_steps(None)
        np.testing.assert_array_equal(represent(trained.query_model, features).numpy(), chain)
    finally:
        trained.set_serving_steps(default)
    with pytest.raises(ValueError, match="no diffusion generator"):
        build_model("t2diff", synthetic_retrieval, **SMALL, use_diffusion=False).set_serving_steps(2)
