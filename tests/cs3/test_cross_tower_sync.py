"""EMA memories (CTS and CMS): arithmetic, masks, duplicate ids in stream order, no gradients,
saving and restoring."""

import numpy as np
import pytest
import tensorflow as tf

from tfcs3.layers import CascadeMemory, CrossTowerMemory, EMAMemory


def _sequential(table, ids, values, decay, mask=None):
    """Reference: one EMA step per row, in order."""
    table = table.copy()
    for r, (i, v) in enumerate(zip(ids, values, strict=True)):
        if mask is None or mask[r]:
            table[i] = decay * table[i] + (1 - decay) * v
    return table


def test_ema_arithmetic():
    memory = EMAMemory(5, 2, decay=0.8)
    memory.update(tf.constant([3]), tf.constant([[1.0, 2.0]]))
    np.testing.assert_allclose(memory(tf.constant([3, 0])).numpy(), [[0.2, 0.4], [0, 0]], atol=1e-7)
    memory.update(tf.constant([3]), tf.constant([[-1.0, 0.0]]))
    # 0.8 * 0.2 + 0.2 * -1, 0.8 * 0.4 + 0.2 * 0
    np.testing.assert_allclose(memory(tf.constant([3])).numpy(), [[-0.04, 0.32]], atol=1e-7)


def test_duplicate_ids_are_applied_one_after_another_in_batch_order():
    rng = np.random.default_rng(0)
    memory = EMAMemory(6, 3, decay=0.7)
    start = rng.normal(size=(6, 3)).astype(np.float32)
    memory.table.assign(start)
    ids = np.array([2, 4, 2, 2, 0, 4, 5, 2])
    values = rng.normal(size=(8, 3)).astype(np.float32)
    memory.update(tf.constant(ids), tf.constant(values))
    np.testing.assert_allclose(memory.table.numpy(), _sequential(start, ids, values, 0.7), rtol=1e-5, atol=1e-6)
    # The order matters: the last row weighs most.
    reversed_memory = EMAMemory(6, 3, decay=0.7)
    reversed_memory.table.assign(start)
    reversed_memory.update(tf.constant(ids[::-1]), tf.constant(values[::-1]))
    assert not np.allclose(reversed_memory.table.numpy()[2], memory.table.numpy()[2])


def test_cross_tower_memory_only_takes_positives():
    rng = np.random.default_rng(1)
    memory = CrossTowerMemory(4, 2, decay=0.8)
    ids = np.array([1, 1, 2, 3, 1])
    values = rng.normal(size=(5, 2)).astype(np.float32)
    positive = np.array([1.0, 0.0, 0.0, 1.0, 1.0], np.float32)
    memory.update(tf.constant(ids), tf.constant(values), tf.constant(positive))
    expected = _sequential(np.zeros((4, 2), np.float32), ids, values, 0.8, positive > 0)
    np.testing.assert_allclose(memory.table.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.all(memory.table.numpy()[2] == 0)  # only a negative for id 2
    with pytest.raises(ValueError, match="positive mask"):
        memory.update(tf.constant(ids), tf.constant(values))


def test_cascade_memory_takes_every_sample():
    memory = CascadeMemory(4, 2, decay=0.8)
    memory.update(tf.constant([1, 2]), tf.constant([[1.0, 1.0], [2.0, 2.0]]))
    np.testing.assert_allclose(memory.table.numpy()[1:3], [[0.2, 0.2], [0.4, 0.4]], atol=1e-7)


def test_update_inside_tf_function_and_reset():
    memory = EMAMemory(4, 2)

    @tf.function
    def step(ids, values):
        memory.update(ids, values)

    step(tf.constant([0, 0]), tf.ones([2, 2]))
    step(tf.constant([1, 2, 1]), tf.ones([3, 2]))
    np.testing.assert_allclose(memory.table.numpy()[:, 0], [0.36, 0.36, 0.2, 0.0], atol=1e-6)
    memory.reset()
    assert not memory.table.numpy().any()


def test_reads_are_not_trainable_and_pass_no_gradient():
    memory = EMAMemory(4, 2)
    memory.update(tf.constant([1]), tf.ones([1, 2]))
    assert memory.trainable_weights == [] and len(memory.non_trainable_weights) == 1
    with tf.GradientTape() as tape:
        tape.watch(memory.table)
        out = tf.reduce_sum(memory(tf.constant([1, 2])))
    assert tape.gradient(out, memory.table) is None


def test_memory_is_saved_and_restored(tmp_path):
    memory = EMAMemory(4, 2)
    memory.update(tf.constant([1, 3]), tf.constant([[1.0, 2.0], [3.0, 4.0]]))
    tf.train.Checkpoint(memory=memory).write(str(tmp_path / "ckpt"))
    other = EMAMemory(4, 2)
    tf.train.Checkpoint(memory=other).read(str(tmp_path / "ckpt")).assert_consumed()
    np.testing.assert_array_equal(other.table.numpy(), memory.table.numpy())


def test_config_and_bad_arguments():
    memory = CrossTowerMemory(7, 3, decay=0.5, key="user_id")
    clone = CrossTowerMemory.from_config(memory.get_config())
    assert (clone.num_rows, clone.dim, clone.decay, clone.key) == (7, 3, 0.5, "user_id")
    with pytest.raises(ValueError, match="decay"):
        EMAMemory(3, 2, decay=1.0)
    with pytest.raises(ValueError, match="ids must have shape"):
        memory(tf.constant([[1, 2]]))
    with pytest.raises(ValueError, match="width 3"):
        memory.update(tf.constant([1]), tf.ones([1, 4]), tf.ones([1]))
