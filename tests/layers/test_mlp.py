import numpy as np
import tensorflow as tf

from tfcs3.layers import MLP


def test_shapes_and_normalisation():
    x = tf.random.normal([5, 7], seed=1)
    assert MLP([16, 8], 4)(x).shape == (5, 4)
    norms = np.linalg.norm(MLP([16], 4, l2_normalize=True)(x).numpy(), axis=1)
    np.testing.assert_allclose(norms, np.ones(5), rtol=1e-5)


def test_config_round_trip():
    layer = MLP([16], 4, dropout=0.2, l2_normalize=True)
    x = tf.random.normal([3, 5], seed=2)
    out = layer(x)
    clone = MLP.from_config(layer.get_config())
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x).numpy(), out.numpy(), rtol=1e-6)
    assert clone.get_config()["hidden_units"] == [16]
