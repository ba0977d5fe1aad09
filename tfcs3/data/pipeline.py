"""``tf.data`` pipelines over prepared splits."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfcs3.data.prepared import Split
from tfcs3.data.shards import ShardedSplit

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

    A :class:`~tfcs3.data.shards.ShardedSplit` (the training split of your own log) is streamed
    from its shards instead of held in memory.

    Args:
        split: a :class:`~tfcs3.data.prepared.Split`.
        batch_size: examples per batch.
        shuffle: reshuffle every epoch (training).
        seed: shuffle seed, for reproducible runs.
        drop_remainder: drop the last short batch (keeps in-batch softmax batches full).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if drop_remainder and len(split) < batch_size:
        raise ValueError(
            f"{len(split)} training examples make no full batch of batch_size={batch_size} (training keeps "
            "full batches only); lower the batch size"
        )
    if isinstance(split, ShardedSplit):  # streamed from its files
        return split.dataset(batch_size, shuffle, seed, drop_remainder)
    ds = tf.data.Dataset.from_tensor_slices(split_arrays(split))
    if shuffle:
        ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def make_length_bucketed_dataset(
    split: Split,
    sequence: str,
    batch_size: int = 512,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """A shuffled training dataset whose batches hold sequences of similar length.

    Rows are shuffled every epoch, then grouped by the number of real (non-zero) entries of
    feature ``sequence`` into buckets split at 4, 8, 16, 32 ... (below the feature's width); a
    bucket is emitted as a batch when it holds ``batch_size`` rows. A model that skips the columns
    every row of a batch pads (the sequence towers) then spends its time on real items: on Amazon
    Beauty, where most histories are far shorter than 50, an epoch is several times faster.

    With ``drop_remainder`` each bucket drops what does not fill a batch; where full buckets would
    cover less than half the rows (small data, large batches), the batches are plain shuffled
    ones instead (:func:`make_dataset`), so no epoch is empty.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    width = split.features[sequence].shape[1]
    boundaries = [b for b in (4, 8, 16, 32, 64, 128, 256) if b < width]
    if drop_remainder:
        lengths = np.count_nonzero(split.features[sequence], axis=1)
        per_bucket = np.bincount(np.digitize(lengths, [b + 1 for b in boundaries]), minlength=len(boundaries) + 1)
        if 2 * int((per_bucket // batch_size).sum()) * batch_size < len(split):
            return make_dataset(split, batch_size, shuffle=True, seed=seed, drop_remainder=True)
    ds = tf.data.Dataset.from_tensor_slices(split_arrays(split))
    ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        lambda row: tf.math.count_nonzero(row[sequence], dtype=tf.int32),
        [b + 1 for b in boundaries],
        [batch_size] * (len(boundaries) + 1),
        drop_remainder=drop_remainder,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
