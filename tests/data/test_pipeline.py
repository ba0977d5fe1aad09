"""Training batches: full batches only, and never an empty epoch."""

import numpy as np
import pytest

from tfcs3.data.dense import dense_split
from tfcs3.data.pipeline import make_dataset, make_length_bucketed_dataset
from tfcs3.models import build_model
from tfcs3.training import train


def _windows(data):
    history = data.spec.sequence_features[0].name
    return dense_split(data.train, history, data.spec.item_id), history


def test_bucketed_batches_are_full_and_of_similar_length(synthetic_retrieval):
    windows, history = _windows(synthetic_retrieval)
    batches = list(make_length_bucketed_dataset(windows, history, batch_size=16, seed=0, drop_remainder=True))
    assert batches and all(len(b[history]) == 16 for b in batches)
    lengths = [np.count_nonzero(b[history].numpy(), axis=1) for b in batches]
    assert any(lo.max() - lo.min() < 8 for lo in lengths)


def test_small_data_falls_back_to_plain_batches_instead_of_an_empty_epoch(synthetic_retrieval):
    windows, history = _windows(synthetic_retrieval)
    size = len(windows) // 3  # no length bucket fills a batch
    batches = list(make_length_bucketed_dataset(windows, history, batch_size=size, seed=0, drop_remainder=True))
    assert len(batches) == 3 and all(len(b[history]) == size for b in batches)


def test_no_full_batch_is_a_clear_error(synthetic_retrieval):
    windows, history = _windows(synthetic_retrieval)
    with pytest.raises(ValueError, match=r"make no full batch of batch_size=\d+.*lower the batch size"):
        make_dataset(windows, batch_size=len(windows) + 1, drop_remainder=True)
    model = build_model("sasrec", synthetic_retrieval, embedding_dim=8, hidden_units=[16])
    with pytest.raises(ValueError, match="lower the batch size"):
        train(model, synthetic_retrieval, epochs=1, batch_size=len(windows) + 1, verbose=0)
