"""``tf.data`` pipelines over prepared splits."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfcs3.data.protocols import Split

LABEL = "label"


def split_arrays(split: Split) -> dict[str, np.ndarray]:
    """A split's feature arrays plus its float32 labels under ``"label"`` (pre-ranking splits)."""
    arrays = dict(split.features)
    if split.labels is not None:
        arrays[LABEL] = split.labels.astype(np.float32)
    return arrays


def make_dataset(
    split: Split,
    batch_size: int = 512,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A dataset of feature dictionaries (plus ``"label"`` for pre-ranking splits).

    Args:
        split: a :class:`~tfcs3.data.protocols.Split`.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch (training).
        seed: shuffle seed, for reproducible runs.
        drop_remainder: drop the last short batch (keeps in-batch softmax batches full).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ds = tf.data.Dataset.from_tensor_slices(split_arrays(split))
    if shuffle:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
