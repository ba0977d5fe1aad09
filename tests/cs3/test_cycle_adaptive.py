"""CAS: a neutral gate gives the plain dense layer; gradients reach all four weights."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from tfcs3.layers import MLP, CycleAdaptiveDense, CycleAdaptiveMLP


def _plain_twin(layer: CycleAdaptiveDense, activation: str | None) -> tf_keras.layers.Dense:
    dense = tf_keras.layers.Dense(layer.units, activation=activation)
    dense.build([None, layer.kernel.shape[0]])
    dense.set_weights([layer.kernel.numpy(), layer.bias.numpy()])
    return dense


@pytest.mark.parametrize("activation", ["relu", None])
@pytest.mark.parametrize("cycles", [1, 3])
def test_neutral_gate_is_the_plain_dense_layer(activation, cycles):
    x = tf.random.normal([16, 12], seed=1)
    layer = CycleAdaptiveDense(8, activation, cycles=cycles)
    layer.build(x.shape)
    layer.bias.assign(tf.random.normal([8], seed=2))
    np.testing.assert_allclose(layer(x).numpy(), _plain_twin(layer, activation)(x).numpy(), rtol=1e-6, atol=1e-6)


def test_a_non_neutral_gate_reweights_the_input_with_the_same_weights():
    x = tf.random.normal([4, 6], seed=3)
    layer = CycleAdaptiveDense(5)
    layer.build(x.shape)
    layer.gate_kernel.assign(tf.random.normal([5, 6], seed=4))
    layer.gate_bias.assign(tf.random.normal([6], seed=5))
    w, b = layer.kernel.numpy(), layer.bias.numpy()
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    z = relu(x.numpy() @ w + b)
    e = sigmoid(z @ layer.gate_kernel.numpy() + layer.gate_bias.numpy())
    expected = relu((x.numpy() * 2 * e) @ w + b)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(expected, z)


def test_gradients_reach_w_b_and_the_gate():
    x = tf.random.normal([32, 10], seed=6)
    target = tf.random.normal([32, 7], seed=7)
    layer = CycleAdaptiveDense(7)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum((layer(x) - target) ** 2)
    grads = tape.gradient(loss, [layer.kernel, layer.bias, layer.gate_kernel, layer.gate_bias])
    for g in grads:
        assert g is not None and float(tf.reduce_max(tf.abs(g))) > 0


def test_weights_are_the_dense_weights_plus_the_gate():
    layer = CycleAdaptiveDense(7)
    layer.build([None, 10])
    assert sorted(w.shape.as_list() for w in layer.trainable_weights) == [[7], [7, 10], [10], [10, 7]]


def test_config_round_trips():
    layer = CycleAdaptiveDense(7, "tanh", cycles=2)
    clone = CycleAdaptiveDense.from_config(layer.get_config())
    assert (clone.units, clone.cycles, clone.activation_name) == (7, 2, "tanh")
    mlp = CycleAdaptiveMLP([16, 8], 4, dropout=0.1, cycles=2)
    again = CycleAdaptiveMLP.from_config(mlp.get_config())
    assert again.get_config() == mlp.get_config()
    assert again(tf.zeros([2, 5])).shape == (2, 4)


def test_cas_mlp_replaces_every_dense_layer_and_starts_as_the_plain_mlp():
    x = tf.random.normal([8, 5], seed=8)
    cas, plain = CycleAdaptiveMLP([16], 4), MLP([16], 4)
    cas(x), plain(x)
    assert all(isinstance(layer, CycleAdaptiveDense) for layer in [*cas.hidden, cas.out])
    for c_layer, p_layer in zip([*cas.hidden, cas.out], [*plain.hidden, plain.out], strict=True):
        p_layer.set_weights([c_layer.kernel.numpy(), c_layer.bias.numpy()])
    np.testing.assert_allclose(cas(x).numpy(), plain(x).numpy(), rtol=1e-6, atol=1e-6)


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="cycles"):
        CycleAdaptiveDense(4, cycles=0)
    with pytest.raises(ValueError, match="units"):
        CycleAdaptiveDense(0)
