"""Online learning: predict-then-learn order, label independence of a batch's own predictions,
periodic exports, both protocols."""

import harness
import numpy as np
import pytest
import tensorflow as tf

from tfcs3.evaluation import represent
from tfcs3.models import build_model
from tfcs3.online import SPLITS, _stream, learn_online

SMALL = dict(embedding_dim=8, hidden_units=[16], ranker_hidden_units=[16, 8])


def _cs3(data, **kw):
    return build_model("cs3_youtubednn", data, cas="none", **SMALL, **kw)


def test_preranking_stream_scores_every_evaluated_row(synthetic_preranking):
    data = synthetic_preranking
    out = learn_online(_cs3(data), data, batch_size=512, verbose=0)
    assert out["examples"] == len(data.train) + len(data.validation) + len(data.test)
    for split in ("validation", "test"):
        assert np.isfinite(out["predictions"][split]).all()
        assert 0.5 < out["metrics"][split]["auc"] <= 1.0  # the synthetic data is learnable online


def _test_predictions(data, test_labels, batch_size):
    saved = data.test.labels
    data.test.labels = test_labels
    try:
        model = _cs3(data, cms=False)
        out = learn_online(model, data, batch_size=batch_size, evaluate_on=("test",), verbose=0, seed=1)
    finally:
        data.test.labels = saved
    return out["predictions"]["test"]


def test_a_batch_prediction_never_depends_on_its_own_labels(synthetic_preranking):
    """Flipping the labels of the last batch's rows leaves their predictions unchanged (CTS writes
    positives only, so a label that reached its own prediction would show); flipping earlier labels
    changes them (the memories carry the past forward, so the check is not vacuous)."""
    data, bs = synthetic_preranking, 256
    stream = _stream(data, SPLITS)
    start = (len(stream["_source"]) - 1) // bs * bs
    is_test = stream["_source"] == SPLITS.index("test")
    own = stream["_row"][start:][is_test[start:]]
    earlier = stream["_row"][:start][is_test[:start]]
    assert len(own) > 20 and len(earlier) > 20
    labels = data.test.labels
    base = _test_predictions(data, labels.copy(), bs)
    flipped_own, flipped_earlier = labels.copy(), labels.copy()
    flipped_own[own] = 1.0 - flipped_own[own]
    flipped_earlier[earlier] = 1.0 - flipped_earlier[earlier]
    np.testing.assert_allclose(_test_predictions(data, flipped_own, bs)[own], base[own], rtol=1e-5, atol=1e-6)
    assert np.abs(_test_predictions(data, flipped_earlier, bs)[own] - base[own]).max() > 1e-3


def test_exports_a_new_version_every_n_steps(synthetic_retrieval, tmp_path):
    data = synthetic_retrieval
    model = _cs3(data)
    out = learn_online(model, data, batch_size=512, export_every=2, export_dir=tmp_path, verbose=0)
    assert out["steps"] >= 4 and len(out["exports"]) == out["steps"] // 2
    assert [p.rsplit("/", 1)[1] for p in out["exports"]] == [str(i + 1) for i in range(len(out["exports"]))]
    assert 0.0 <= out["metrics"]["test"]["ndcg@10"] <= 1.0
    if out["steps"] % 2 == 0:  # the last export is the final model, memories included
        loaded = tf.saved_model.load(out["exports"][-1])
        assert loaded is not None
        q = represent(model.query_model, harness.head(data.test, 3)).numpy()
        assert np.isfinite(q).all()


def test_bad_arguments(synthetic_retrieval):
    model = _cs3(synthetic_retrieval)
    with pytest.raises(ValueError, match="unknown split"):
        learn_online(model, synthetic_retrieval, evaluate_on=("dev",))
    with pytest.raises(ValueError, match="export_dir"):
        learn_online(model, synthetic_retrieval, export_every=3)


@pytest.mark.parametrize(
    ("name", "loss"),
    [("sasrec", "full_softmax"), ("youtubednn", "sampled_softmax"), ("cs3_youtubednn", "full_softmax")],
)
def test_the_softmax_losses_learn_online(name, loss, synthetic_retrieval):
    """Every loss runs in the online loop; a sequence model trains each streamed row's last position."""
    extra = {"num_negatives": 16} if loss == "sampled_softmax" else {}
    hparams = SMALL if name.startswith("cs3") else dict(embedding_dim=8, hidden_units=[16])
    model = build_model(name, synthetic_retrieval, loss=loss, **hparams, **extra)
    out = learn_online(model, synthetic_retrieval, batch_size=256, evaluate_on=("test",), verbose=0)
    ranks = out["predictions"]["test"]
    assert np.isfinite(ranks).all() and out["metrics"]["test"]["ndcg@10"] > 0
