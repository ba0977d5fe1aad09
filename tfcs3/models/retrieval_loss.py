"""Softmax losses of the dot-product retrieval models: in-batch, full and sampled.

All three are cross-entropies of the positive item against a set of negatives, summed over the
query rows (TFRS's ``Retrieval`` reduction, so one learning rate fits every loss). With query
``q_r``, positive ``i_r`` and temperature ``T``:

* ``in_batch``: negatives are the other rows' positives (``tfrs.tasks.Retrieval``; logQ with the
  items' training frequency, accidental hits removed). Implemented in :class:`TwoTowerModel`.
* ``full_softmax`` (:func:`full_softmax_loss`): every item of the vocabulary,
  ``L_r = -log softmax_j(q_r . c_j / T)[i_r]``, ``j`` over all real items (padding and OOV rows
  left out). Exact; costs one candidate-tower pass over the vocabulary and a ``[rows, items]``
  product per step.
* ``sampled_softmax`` (:func:`sampled_softmax_loss`): ``N`` negatives drawn once per step and
  shared by every row, uniformly or by training popularity (:func:`sample_negatives`). Each logit,
  the positive's included, is corrected by the sampling probability ``p`` of its item (logQ,
  ``s - log p``; Bengio & Senecal 2008, Jean et al. 2015); a negative that is the row's positive
  or one of its known positives (its history) is removed. With ``mixed`` the other rows'
  positives join as negatives too, corrected by their in-batch probability (mixed negative
  sampling, Yi et al., RecSys 2019).

Example:
    >>> q = tf.random.normal([4, 8]); table = tf.random.normal([10, 8])
    >>> full_softmax_loss(q, table, tf.constant([2, 3, 4, 5])).shape  # TensorShape([])
"""

from __future__ import annotations

import tensorflow as tf

from tfcs3.data.features import NUM_RESERVED

LOSSES = ("in_batch", "full_softmax", "sampled_softmax")
SAMPLERS = ("uniform", "popularity")
#: Default largest vocabulary ``full_softmax`` accepts (``max_full_softmax_items`` overrides it).
MAX_FULL_SOFTMAX_ITEMS = 200_000
#: The two-tower constructor arguments that choose and shape the retrieval loss.
LOSS_HPARAMS = ("loss", "num_negatives", "negative_sampler", "mixed_negatives", "max_full_softmax_items")


def _masked(logits: tf.Tensor, drop: tf.Tensor) -> tf.Tensor:
    return tf.where(drop, tf.cast(logits.dtype.min, logits.dtype), logits)


def full_softmax_loss(
    queries: tf.Tensor,
    item_table: tf.Tensor,
    positives: tf.Tensor,
    temperature: float = 1.0,
    positive_vectors: tf.Tensor | None = None,
    known: tf.Tensor | None = None,
) -> tf.Tensor:
    """Exact softmax cross-entropy over the whole item vocabulary, summed over rows.

    Args:
        queries: ``[R, D]`` query representations.
        item_table: ``[V, D]`` candidate representation of every item-vocabulary index (rows 0
            and 1, padding and OOV, are never candidates).
        positives: ``[R]`` item-vocabulary index of each row's positive (``>= 2``).
        temperature: ``T``.
        positive_vectors: ``[R, D]``: each row's own representation of its positive, used for the
            positive's logit instead of the table's row (CS3: a training row's item memory
            without the row's own write, where the table holds the final memory). ``None``: the
            table's.
        known: ``[R, K]`` item indices each row must not see as negatives (its known positives;
            0 pads); the row's positive stays.

    Returns:
        ``sum_r -log softmax(q_r C^T / T)[i_r]``, a scalar.
    """
    logits = tf.matmul(queries, item_table, transpose_b=True) / temperature
    positives = tf.cast(positives, tf.int32)
    items = tf.range(tf.shape(item_table)[0])
    drop = tf.broadcast_to((items < NUM_RESERVED)[None, :], tf.shape(logits))
    is_positive = tf.equal(items[None, :], positives[:, None])
    if known is not None:
        drop |= contains(known, items) & ~is_positive
    if positive_vectors is not None:
        own = tf.reduce_sum(queries * positive_vectors, axis=-1, keepdims=True) / temperature
        logits = tf.where(is_positive, own, logits)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=_masked(logits, drop))
    return tf.reduce_sum(losses)


def sample_negatives(
    num_negatives: int, vocab_size: int, sampler: str, item_probability: tf.Tensor | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """``N`` item-vocabulary indices drawn with replacement from the real items, and the
    probability with which each was drawn: ``1 / (V - 2)`` (uniform) or the item's training
    frequency (popularity; ``item_probability`` is ``[V]`` and sums to 1 over real items)."""
    if sampler == "uniform":
        ids = tf.random.uniform([num_negatives], NUM_RESERVED, vocab_size, dtype=tf.int32)
    else:
        _check_sampler(sampler, item_probability)
        assert item_probability is not None
        logits = tf.math.log(tf.maximum(item_probability, 1e-30))
        logits = tf.where(tf.range(vocab_size) < NUM_RESERVED, tf.cast(-1e30, logits.dtype), logits)
        ids = tf.cast(tf.random.categorical(logits[None, :], num_negatives)[0], tf.int32)
    return ids, sampling_probability(ids, vocab_size, sampler, item_probability)


def sampling_probability(
    ids: tf.Tensor, vocab_size: int, sampler: str, item_probability: tf.Tensor | None = None
) -> tf.Tensor:
    """The probability with which :func:`sample_negatives` draws each of ``ids`` (any shape):
    ``1 / (V - 2)`` (uniform over the real items) or the item's training frequency (popularity);
    the logQ term of a sampled softmax."""
    if sampler == "uniform":
        return tf.fill(tf.shape(ids), 1.0 / float(vocab_size - NUM_RESERVED))
    _check_sampler(sampler, item_probability)
    return tf.gather(item_probability, ids)


def _check_sampler(sampler: str, item_probability: tf.Tensor | None) -> None:
    if sampler != "popularity" or item_probability is None:
        raise ValueError(f"negative_sampler must be one of {SAMPLERS} (popularity needs item probabilities)")


def contains(known: tf.Tensor, ids: tf.Tensor) -> tf.Tensor:
    """``[R, N]`` bool: whether ``ids[n]`` is among row ``r``'s ``known`` ``[R, K]`` item indices
    (padding 0 and OOV 1 match nothing). A sorted search, so memory is ``O(R (K + N))``."""
    known = tf.sort(tf.cast(known, tf.int32), axis=1)
    ids = tf.broadcast_to(tf.cast(ids, tf.int32)[None, :], [tf.shape(known)[0], tf.shape(ids)[0]])
    at = tf.searchsorted(known, ids, side="left")
    found = tf.gather(known, tf.minimum(at, tf.shape(known)[1] - 1), batch_dims=1)
    return tf.equal(found, ids) & (ids >= NUM_RESERVED)


def sampled_softmax_loss(
    queries: tf.Tensor,
    positive_vectors: tf.Tensor,
    positives: tf.Tensor,
    negative_vectors: tf.Tensor,
    negatives: tf.Tensor,
    temperature: float = 1.0,
    positive_probability: tf.Tensor | None = None,
    negative_probability: tf.Tensor | None = None,
    known: tf.Tensor | None = None,
) -> tf.Tensor:
    """Softmax cross-entropy of each row's positive against shared negatives, by dot product,
    summed over rows.

    Args:
        queries: ``[R, D]``.
        positive_vectors: ``[R, D]`` candidate representation of each row's positive.
        positives: ``[R]`` item index of each row's positive.
        negative_vectors: ``[N, D]`` candidate representations of the negatives.
        negatives: ``[N]`` their item indices.
        temperature: ``T``.
        positive_probability, negative_probability, known: see :func:`sampled_softmax_from_logits`.

    Returns:
        ``sum_r -log softmax([s_r+ ; s_r1 .. s_rN])[0]`` over the kept negatives, a scalar.
    """
    positive_logits = tf.reduce_sum(queries * positive_vectors, axis=-1)
    negative_logits = tf.matmul(queries, negative_vectors, transpose_b=True)
    return sampled_softmax_from_logits(
        positive_logits / temperature,
        negative_logits / temperature,
        positives,
        negatives,
        positive_probability,
        negative_probability,
        known,
    )


def sampled_softmax_from_logits(
    positive_logits: tf.Tensor,
    negative_logits: tf.Tensor,
    positives: tf.Tensor,
    negatives: tf.Tensor,
    positive_probability: tf.Tensor | None = None,
    negative_probability: tf.Tensor | None = None,
    known: tf.Tensor | None = None,
) -> tf.Tensor:
    """The sampled softmax of any scorer: ``positive_logits`` ``[R]`` and ``negative_logits``
    ``[R, N]`` (already divided by the temperature) for positives ``[R]`` and negatives ``[N]``.

    ``positive_probability`` ``[R]`` and ``negative_probability`` ``[N]``: sampling probabilities
    for the logQ correction ``s - log p`` (``None``: none). ``known`` ``[R, K]``: item indices each
    row must not see as negatives (its known positives; 0 pads). A negative equal to the row's
    positive is always removed (an accidental hit). Returns the cross-entropy summed over rows.
    """
    positive_logits = positive_logits[:, None]
    if positive_probability is not None:
        positive_logits -= tf.math.log(tf.maximum(positive_probability, 1e-30))[:, None]
    if negative_probability is not None:
        negative_logits -= tf.math.log(tf.maximum(negative_probability, 1e-30))[None, :]
    positives = tf.cast(positives, tf.int32)
    negatives = tf.cast(negatives, tf.int32)
    drop = tf.equal(negatives[None, :], positives[:, None])
    if known is not None:
        drop |= contains(known, negatives)
    logits = tf.concat([positive_logits, _masked(negative_logits, drop)], axis=1)
    labels = tf.zeros(tf.shape(logits)[:1], tf.int32)
    return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
