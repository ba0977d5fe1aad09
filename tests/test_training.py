import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from tfcs3.evaluation import evaluate
from tfcs3.models import build_model
from tfcs3.training import ValidationEarlyStopping, train


def test_validation_sample_judges_epochs_on_a_fixed_subset(synthetic_retrieval):
    data = synthetic_retrieval
    stopper = ValidationEarlyStopping(data, sample=60, seed=4)
    sample = stopper.data.validation
    assert len(sample) == 60 and len(stopper.data.test) == len(data.test)
    assert set(sample.users) < set(data.validation.users)
    # The same seed draws the same examples; a sample as large as the split is the split.
    again = ValidationEarlyStopping(data, sample=60, seed=4).data.validation
    np.testing.assert_array_equal(again.target, sample.target)
    assert ValidationEarlyStopping(data, sample=10**6).data.validation is data.validation
    with pytest.raises(ValueError, match="validation sample"):
        ValidationEarlyStopping(data, sample=0)

    model = build_model("youtubednn", data, embedding_dim=16)
    fit = train(model, data, epochs=1, batch_size=128, seed=4, verbose=0, validation_sample=60)
    # One epoch: the kept weights are that epoch's, judged on the sample, not the whole split.
    assert fit["best_validation"]["ndcg@10"] == pytest.approx(evaluate(model, stopper.data, "validation")["ndcg@10"])


def test_subset_keeps_each_examples_exclusions(synthetic_retrieval):
    split = synthetic_retrieval.validation
    rows = np.array([5, 0, 7])
    sub = split.subset(rows)
    for k, row in enumerate(rows):
        np.testing.assert_array_equal(sub.exclusions(k), split.exclusions(row))
    assert synthetic_retrieval.train.subset(rows).exclusion_indptr is None
    mask = np.zeros(len(split), dtype=bool)
    mask[rows] = True  # a boolean mask selects the same examples, in split order
    np.testing.assert_array_equal(split.subset(mask).target, split.target[np.sort(rows)])


def test_validation_sample_refuses_a_single_class_sample_in_preranking(synthetic_preranking):
    labels = synthetic_preranking.validation.labels
    one_class = synthetic_preranking.validation.subset(np.flatnonzero(labels == 1)[:50])
    data = dataclasses.replace(synthetic_preranking, validation=one_class)
    with pytest.raises(ValueError, match="one label class"):
        ValidationEarlyStopping(data, sample=10)


def test_tensorboard_gets_the_hyperparameters_and_every_validation_metric(synthetic_retrieval, tmp_path):
    model = build_model("youtubednn", synthetic_retrieval, embedding_dim=8)
    train(model, synthetic_retrieval, epochs=1, batch_size=128, verbose=0, output_dir=tmp_path)
    plugins, tags = set(), set()
    for events in (tmp_path / "tensorboard").glob("**/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            plugins |= {v.metadata.plugin_data.plugin_name for v in event.summary.value}
            tags |= {v.tag for v in event.summary.value}
    assert "hparams" in plugins
    assert {"validation/ndcg@10", "validation/recall@50", "validation/mrr@10"} <= tags  # every metric
