import numpy as np
import tensorflow as tf

from tfcs3.layers import MaskedMeanPooling


def test_padding_is_ignored_and_empty_gives_zeros():
    emb = tf.random.normal([2, 4, 3], seed=0)
    ids = tf.constant([[0, 5, 0, 7], [0, 0, 0, 0]])
    out = MaskedMeanPooling()((emb, ids)).numpy()
    np.testing.assert_allclose(out[0], (emb[0, 1] + emb[0, 3]).numpy() / 2, rtol=1e-6)
    np.testing.assert_array_equal(out[1], np.zeros(3))


def test_gradient_reaches_only_real_positions():
    emb = tf.Variable(tf.ones([1, 3, 2]))
    ids = tf.constant([[4, 0, 9]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(MaskedMeanPooling()((emb, ids)))
    grad = tape.gradient(loss, emb).numpy()
    np.testing.assert_allclose(grad[0, :, 0], [0.5, 0.0, 0.5])


def test_config_round_trip():
    layer = MaskedMeanPooling(name="pool")
    assert MaskedMeanPooling.from_config(layer.get_config()).name == "pool"
