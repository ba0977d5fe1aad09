import numpy as np
import pytest
import tensorflow as tf

from tfcs3.layers import FeatureEmbedding

FEATURES = [
    {"name": "user_id", "kind": "categorical", "input_dim": 10},
    {"name": "genres", "kind": "multi", "input_dim": 6},
    {"name": "history", "kind": "sequence", "input_dim": 20},
]
INPUTS = {
    "user_id": tf.constant([2, 3]),
    "genres": tf.constant([[2, 3, 0], [0, 0, 0]]),
    "history": tf.constant([[0, 0, 5, 6], [0, 0, 0, 9]]),
}


def test_shape_and_pooling():
    layer = FeatureEmbedding(FEATURES, 4)
    out = layer(INPUTS)
    assert out.shape == (2, 12)
    table = layer.tables["history"].embeddings.numpy()
    np.testing.assert_allclose(out[0, 8:].numpy(), (table[5] + table[6]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(out[1, 4:8].numpy(), np.zeros(4))  # no genres -> zeros


def test_config_round_trip_gives_same_outputs():
    layer = FeatureEmbedding(FEATURES, 4, embeddings_regularizer=1e-4)
    out = layer(INPUTS)
    clone = FeatureEmbedding.from_config(layer.get_config())
    clone(INPUTS)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(INPUTS).numpy(), out.numpy())
    assert len(layer.losses) == 3  # one L2 term per table


def test_gradients_reach_every_table():
    layer = FeatureEmbedding(FEATURES, 4)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(INPUTS) ** 2)
    grads = tape.gradient(loss, layer.trainable_variables)
    assert len(grads) == 3 and all(g is not None for g in grads)


def test_errors_name_the_input():
    layer = FeatureEmbedding(FEATURES, 4)
    with pytest.raises(ValueError, match="'history'"):
        layer({"user_id": INPUTS["user_id"], "genres": INPUTS["genres"]})
    with pytest.raises(ValueError, match="'genres'.*rank 2"):
        layer({**INPUTS, "genres": tf.constant([1, 2])})
    with pytest.raises(ValueError, match="kind"):
        FeatureEmbedding([{"name": "x", "kind": "dense", "input_dim": 3}], 2)
