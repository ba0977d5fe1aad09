"""Contracts every registered model keeps (docs/design.md), checked for the whole registry."""

import harness
import numpy as np
import pytest
import tensorflow as tf

from tfcs3.evaluation import represent
from tfcs3.models import build_model, is_trainable, model_names, protocols_of

TRAINABLE = [n for n in model_names() if n != "popularity"]


@pytest.fixture
def data_for(synthetic_retrieval, synthetic_preranking):
    """The synthetic data of a model's first protocol (retrieval unless it is pre-ranking only)."""
    return lambda name: synthetic_retrieval if "retrieval" in protocols_of(name) else synthetic_preranking


@pytest.fixture(params=["retrieval", "preranking"])
def data(request, synthetic_retrieval, synthetic_preranking):
    return synthetic_retrieval if request.param == "retrieval" else synthetic_preranking


@pytest.mark.parametrize("name", TRAINABLE)
def test_candidate_side_never_sees_query_inputs(name, data):
    if data.protocol not in protocols_of(name):
        with pytest.raises(ValueError, match="is a (pre-ranking|retrieval) model"):
            build_model(name, data)
        return
    harness.check_decoupled(build_model(name, data, embedding_dim=8, hidden_units=[16]), data)


@pytest.mark.parametrize("name", TRAINABLE)
def test_catalog_scores_agree_with_per_pair_scores(name, data_for):
    """score (evaluation, top-k export) and score_candidates (candidate scoring) are one function;
    for dot models it is the dot product, so ScaNN/brute-force indices reproduce it."""
    data = data_for(name)
    model = build_model(name, data, embedding_dim=8, hidden_units=[16])
    q = represent(model.query_model, harness.head(data.test, 20))
    c = represent(model.candidate_model, data.catalog)
    full = model.score(q, c).numpy()
    some = np.array([[3, 0, 7], [5, 5, 1]] * 10)
    per_pair = model.score_candidates(q, tf.gather(c, some)).numpy()
    np.testing.assert_allclose(per_pair, np.take_along_axis(full, some, axis=1), rtol=1e-5, atol=1e-5)
    if model.is_dot:
        np.testing.assert_allclose(full, q.numpy() @ c.numpy().T, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", model_names())
def test_registry_builds_every_model(name, data_for):
    model = build_model(name, data_for(name))
    assert is_trainable(model) == (name != "popularity")


def test_unknown_model_and_hparams_are_errors(synthetic_retrieval):
    with pytest.raises(ValueError, match="Unknown model"):
        build_model("nope", synthetic_retrieval)
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        build_model("dssm", synthetic_retrieval, embedding_size=3)
    with pytest.raises(ValueError, match="no hyperparameters"):
        build_model("popularity", synthetic_retrieval, k=3)


@pytest.mark.parametrize("name", TRAINABLE)
def test_every_model_keeps_the_harness_contracts(name, data_for, tmp_path):
    """Decoupled towers, gradients in both, one step moving both, save/load to the same vectors."""
    harness.check_model(name, data_for(name), tmp_path, embedding_dim=8, hidden_units=[16])


@pytest.mark.parametrize("name", model_names())
def test_every_registered_model_class_is_public(name, data_for):
    import tfcs3.models

    model = build_model(name, data_for(name))
    public = [getattr(tfcs3.models, n) for n in tfcs3.models.__all__]
    assert any(type(model) is cls for cls in public), f"{type(model).__name__} is not exported by tfcs3.models"
    assert "Example" in (type(model).__doc__ or ""), f"{type(model).__name__}'s docstring has no Example"
