import harness
import numpy as np
import pytest
import tensorflow as tf

from tfcs3.data import load_prepared
from tfcs3.evaluation import represent
from tfcs3.export import export_model, raw_requests
from tfcs3.models import build_model
from tfcs3.retrieval import SparseCodeIndex
from tfcs3.training import train

SMALL = dict(embedding_dim=16, hidden_units=[32], token_dim=8, codebook_size=8, interaction_units=[16, 16])


@pytest.fixture(scope="module")
def trained(synthetic_retrieval):
    model = build_model("sparcode", synthetic_retrieval, sparsity_bias=-0.5, **SMALL)
    train(model, synthetic_retrieval, epochs=3, batch_size=128, learning_rate=1e-2, patience=3, verbose=0)
    return model


def _assert_index_equals_model(model, data, n_queries):
    features = harness.head(data.test, n_queries)
    q = represent(model.query_model, features)
    c = represent(model.candidate_model, data.catalog)
    index = SparseCodeIndex.from_model(model, c)
    exact = model.score(q, c).numpy()
    np.testing.assert_allclose(index.scores(q).numpy(), exact, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(index.codes(q).numpy(), model.query_codes(q).numpy())
    # Same top-k wherever the model's scores are not tied.
    scores, rows = index.search(q, 10)
    expected = np.argsort(-exact, axis=1, kind="stable")[:, :10]
    exact_sorted = np.take_along_axis(exact, expected, axis=1)
    distinct = np.abs(np.diff(exact_sorted, axis=1)).min(axis=1) > 1e-4
    np.testing.assert_array_equal(rows.numpy()[distinct], expected[distinct])
    assert 0 < index.density <= 1 and index.nnz == int(np.sum(index.indptr.numpy()[-1]))
    return index


def test_untruncated_index_returns_exactly_the_model_scores(trained, synthetic_retrieval):
    index = _assert_index_equals_model(trained, synthetic_retrieval, 60)
    assert index.num_codes == 8**2 and index.memory_bytes == index.nnz * 8 + (64 + 1) * 8


def test_index_equals_the_model_on_movielens(ml100k_dir):
    data = load_prepared("ml-100k", "retrieval", data_dir=ml100k_dir.parent)
    model = build_model("sparcode", data, sparsity_bias=-0.5, bias_anneal_epochs=0.5, **SMALL)
    train(model, data, epochs=1, batch_size=512, learning_rate=3e-3, verbose=0)
    _assert_index_equals_model(model, data, 200)


def test_top_t_keeps_the_highest_entries_of_each_code(trained, synthetic_retrieval):
    c = represent(trained.candidate_model, synthetic_retrieval.catalog)
    full = SparseCodeIndex.from_model(trained, c)
    capped = SparseCodeIndex.from_model(trained, c, top_t=3)
    lengths = np.diff(capped.indptr.numpy())
    assert lengths.max() <= 3 and capped.nnz < full.nnz
    cut = full.truncated(3)  # truncating a built index == building with the cap
    for name in ("indptr", "item_rows", "values"):
        np.testing.assert_array_equal(getattr(cut, name).numpy(), getattr(capped, name).numpy())
    start, end = full.indptr.numpy()[:2]
    best = np.sort(full.values.numpy()[start:end])[::-1][:3]
    np.testing.assert_allclose(capped.values.numpy()[: lengths[0]], best[: lengths[0]], rtol=1e-6)
    with pytest.raises(ValueError, match="quantizer"):
        SparseCodeIndex.from_model(build_model("all_to_all", synthetic_retrieval, **SMALL), c)


def test_exported_index_serves_in_a_fresh_process_with_tensorflow_only(
    trained, synthetic_retrieval, tmp_path, serve_in_fresh_process
):
    data = synthetic_retrieval
    path = export_model(trained, data, tmp_path, "sparcode", index="sparse_code", k=5)
    raw = raw_requests(data, trained.query_feature_names, "test", rows=range(6))
    result = serve_in_fresh_process(path, "tfcs3,scann,tensorflow_recommenders", raw)
    loaded = tf.saved_model.load(str(path))
    in_process = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in raw.items()})
    assert result["ids"] == [[i.decode() for i in r] for r in in_process["item_ids"].numpy()]
    # The exported scores are the model's own for the returned items.
    q = represent(trained.query_model, harness.head(data.test, 6))
    c = represent(trained.candidate_model, data.catalog)
    exact = trained.score(q, c).numpy()
    row_of = {item: r for r, item in enumerate(data.catalog_ids.astype(str))}
    for b in range(6):
        want = [exact[b, row_of[i]] for i in result["ids"][b]]
        np.testing.assert_allclose(result["scores"][b], want, rtol=1e-5, atol=1e-5)
