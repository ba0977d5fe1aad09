import numpy as np
import pytest
import tensorflow as tf

from tfcs3.layers import AdaptiveMimicVector, category_alignment_loss


def test_augmented_vectors_are_learned_embeddings_not_noise():
    layer = AdaptiveMimicVector(10, 4)
    ids = tf.constant([3, 3, 7])
    first, second = layer(ids).numpy(), layer(ids).numpy()
    np.testing.assert_array_equal(first, second)  # deterministic: a lookup, not fresh noise
    np.testing.assert_array_equal(first[0], first[1])  # same id, same vector
    assert len(layer.trainable_variables) == 1 and layer.trainable_variables[0].shape == (10, 4)


def test_mimic_targets_are_stop_gradient_and_only_positives_count():
    a = tf.Variable([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    target = tf.Variable([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    positive = tf.constant([1.0, 1.0, 0.0])
    with tf.GradientTape(persistent=True) as tape:
        loss = AdaptiveMimicVector.mimic_loss(a, target, positive)
    assert float(loss) == pytest.approx((1.0 + 1.0) / 2)  # the negative row (norm^2 = 8) is ignored
    assert tape.gradient(loss, target) is None  # no gradient into the other tower's output
    grad_a = tape.gradient(loss, a).numpy()
    np.testing.assert_allclose(grad_a[2], [0.0, 0.0])  # negatives get no gradient
    np.testing.assert_allclose(grad_a[0], [1.0, 0.0])  # d/da of ||a - t||^2 / 2 positives
    assert float(AdaptiveMimicVector.mimic_loss(a, target, tf.zeros(3))) == 0.0


def test_mimic_loss_pulls_the_vector_to_its_target():
    layer = AdaptiveMimicVector(5, 3)
    ids = tf.constant([1, 2])
    target = tf.constant([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0]])
    opt = tf.keras.optimizers.SGD(0.5)
    for _ in range(50):
        with tf.GradientTape() as tape:
            loss = AdaptiveMimicVector.mimic_loss(layer(ids), target, tf.ones(2))
        opt.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables), layer.trainable_variables, strict=True))
    np.testing.assert_allclose(layer(ids).numpy(), target.numpy(), atol=1e-3)


def test_category_alignment_hand_example():
    # Category 0 (3 items, the major one), category 1 (2 items), category 2 (1 item: ignored).
    vectors = tf.constant([[0.0, 0.0], [2.0, 0.0], [4.0, 0.0], [0.0, 1.0], [0.0, 3.0], [9.0, 9.0]])
    categories = tf.constant([5, 5, 5, 8, 8, 2])
    c0 = np.cov(np.array([[0, 0], [2, 0], [4, 0]]).T)  # [[4, 0], [0, 0]]
    c1 = np.cov(np.array([[0, 1], [0, 3]]).T)  # [[0, 0], [0, 2]]
    expected = np.sum((c0 - c1) ** 2)
    assert float(category_alignment_loss(vectors, categories)) == pytest.approx(expected)
    # Identical spreads align perfectly.
    same = tf.constant([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0], [6.0, 6.0]])
    assert float(category_alignment_loss(same, tf.constant([1, 1, 2, 2]))) == pytest.approx(0.0)


def test_config_round_trip():
    layer = AdaptiveMimicVector(7, 3, name="aug")
    clone = AdaptiveMimicVector.from_config(layer.get_config())
    assert (clone.input_dim, clone.output_dim, clone.name) == (7, 3, "aug")
