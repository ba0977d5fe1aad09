import harness
import numpy as np
import pytest
import tensorflow as tf

from tfcs3.evaluation import evaluate, represent
from tfcs3.models import build_model, load_model, save_model
from tfcs3.training import train

SMALL = dict(embedding_dim=16, hidden_units=[32], token_dim=8, codebook_size=8, interaction_units=[16, 16])


@pytest.fixture(scope="module")
def trained(synthetic_retrieval):
    model = build_model("sparcode", synthetic_retrieval, **SMALL)
    train(model, synthetic_retrieval, epochs=6, batch_size=128, learning_rate=3e-3, patience=6, verbose=0)
    return model


def test_training_beats_popularity(trained, synthetic_retrieval):
    ours = evaluate(trained, synthetic_retrieval, "test")["ndcg@10"]
    popularity = evaluate(build_model("popularity", synthetic_retrieval), synthetic_retrieval, "test")["ndcg@10"]
    assert ours > popularity
    assert float(trained.quantizer.initialized) == 1.0
    q = represent(trained.query_model, synthetic_retrieval.test.features)
    assert len(np.unique(trained.query_codes(q).numpy())) > 10  # the codebooks did not collapse


def test_query_representations_are_codewords(trained, synthetic_retrieval):
    q = represent(trained.query_model, harness.head(synthetic_retrieval.test, 20)).numpy()
    tokens = q.reshape(-1, 8)
    codes = trained.quantizer.encode(tokens)
    np.testing.assert_array_equal(trained.quantizer.decode(codes).numpy(), tokens)
    assert trained.query_codes(q).shape == (20, 4)


def test_catalog_scorer_ranks_exactly_like_the_network(trained, synthetic_retrieval):
    # Evaluation ranks large user sets through a code x item table: the same scores as the network.
    items = represent(trained.candidate_model, synthetic_retrieval.catalog)
    q = represent(trained.query_model, harness.head(synthetic_retrieval.test, 50))
    bias = float(trained.bias.numpy())
    trained.bias.assign(-0.5)  # some per-token scores fall below zero, so the ReLU matters
    try:
        table = np.concatenate(list(trained.code_item_scores(items)))
        assert (table == 0).any() and (table > 0).any()
        scorer, width = trained.catalog_scorer(items)
        assert width == trained.hparams["num_query_tokens"]
        np.testing.assert_allclose(scorer(q).numpy(), trained.score(q, items).numpy(), rtol=1e-5, atol=1e-5)
        # Fewer query tokens than codes, or a table over budget: the network, with its own width.
        assert trained.catalog_scorer(items, num_queries=3)[1] == trained.score_width
        assert trained.catalog_scorer(items, max_table_bytes=0)[1] == trained.score_width
    finally:
        trained.bias.assign(bias)
    unquantized = build_model("all_to_all", synthetic_retrieval, **SMALL)
    unquantized(harness.features(synthetic_retrieval.train, 2))
    assert unquantized.catalog_scorer(represent(unquantized.candidate_model, synthetic_retrieval.catalog))[1] == (
        unquantized.score_width
    )


def test_warmup_trains_continuous_tokens_then_initialises_the_codebooks(synthetic_retrieval):
    data = synthetic_retrieval
    model = build_model("sparcode", data, warmup_epochs=1.0, **SMALL)
    assert model.hparams["warmup_examples"] == len(data.train)
    batch = harness.features(data.train)
    before = model.quantizer.codebook.numpy().copy()
    model.compute_loss(batch, training=True)
    assert float(model.quantizer.initialized) == 0.0
    np.testing.assert_array_equal(model.quantizer.codebook.numpy(), before)
    model.examples_seen.assign(float(len(data.train)))
    model.compute_loss(batch, training=True)
    assert float(model.quantizer.initialized) == 1.0
    assert not np.allclose(model.quantizer.codebook.numpy(), before)


def test_bias_anneals_from_zero(synthetic_retrieval):
    data = synthetic_retrieval
    model = build_model("sparcode", data, sparsity_bias=-1.0, bias_anneal_epochs=2.0, **SMALL)
    assert float(model.bias) == 0.0
    model.compute_loss(harness.features(data.train), training=True)
    assert float(model.bias) == pytest.approx(-64 / (2 * len(data.train)))
    model.examples_seen.assign(1e9)
    model.compute_loss(harness.features(data.train), training=True)
    assert float(model.bias) == -1.0


def test_gradients_reach_the_towers_and_the_interaction_but_not_the_codebook(synthetic_retrieval):
    model = build_model("sparcode", synthetic_retrieval, **SMALL)
    with tf.GradientTape() as tape:
        loss = model.compute_loss(harness.features(synthetic_retrieval.train), training=True)
    variables = model.trainable_variables
    grads = dict(zip([v.name for v in variables], tape.gradient(loss, variables), strict=True))
    assert all(g is not None for g in grads.values())
    assert any("all_to_all" in n for n in grads) and not any("codebook" in n for n in grads)


def test_all_to_all_is_unquantized_and_errors_are_clear(synthetic_retrieval, synthetic_preranking):
    model = build_model("all_to_all", synthetic_retrieval, **SMALL)
    assert model.quantizer is None
    with pytest.raises(ValueError, match="no codes"):
        model.query_codes(tf.zeros([1, 32]))
    with pytest.raises(ValueError, match="retrieval model"):
        build_model("sparcode", synthetic_preranking)
    with pytest.raises(ValueError, match="sparsity_bias"):
        build_model("sparcode", synthetic_retrieval, sparsity_bias=0.5)


def test_save_and_load_restore_codebooks_and_scores(trained, synthetic_retrieval, tmp_path):
    save_model(trained, tmp_path / "m", "sparcode", SMALL)
    restored = load_model(tmp_path / "m", synthetic_retrieval)
    np.testing.assert_array_equal(restored.quantizer.codebook.numpy(), trained.quantizer.codebook.numpy())
    assert float(restored.bias) == float(trained.bias)
    features = harness.head(synthetic_retrieval.test, 10)
    q1, q2 = represent(trained.query_model, features), represent(restored.query_model, features)
    c = represent(trained.candidate_model, synthetic_retrieval.catalog)
    np.testing.assert_array_equal(restored.score(q2, c).numpy(), trained.score(q1, c).numpy())
