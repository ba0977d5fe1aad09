import numpy as np
import pytest
import tensorflow as tf

from tfcs3.layers import DiffusionIntentGenerator, UNet1D, exponential_betas


def _generator(dim=4, n=8, **kwargs):
    gen = DiffusionIntentGenerator(**{"steps": 10, **kwargs})
    gen.build((tf.TensorShape([None, n, dim]), tf.TensorShape([None, n])))
    return gen


def test_exponential_schedule_matches_the_paper():
    betas = exponential_betas(50, 0.01, 4.5)
    assert betas[0] == pytest.approx(0.01 * np.exp(0.09)) and betas[-1] == pytest.approx(0.9, rel=1e-3)
    assert np.prod(1 - betas[:25]) == pytest.approx(0.36, abs=0.01)  # alpha_bar_25
    with pytest.raises(ValueError, match="leaves"):
        exponential_betas(10, 0.5, 2.0)


def test_forward_noising_closed_form_matches_iterated_single_steps():
    gen = _generator(steps=20)
    clean = tf.constant(np.random.default_rng(0).normal(size=(1, 8, 4)), tf.float32)
    r = 12
    # Without noise, iterating the single steps scales by sqrt(alpha_bar_r) exactly.
    z = clean
    for step in range(1, r + 1):
        z = gen.forward_step(z, step, tf.zeros_like(z))
    zero = gen.diffuse(clean, tf.constant([r]), tf.zeros_like(clean))
    np.testing.assert_allclose(z.numpy(), zero.numpy(), rtol=1e-5)
    # With noise, the iterated chain has the closed form's variance 1 - alpha_bar_r.
    samples = tf.tile(clean, [20000, 1, 1])
    z = samples
    for step in range(1, r + 1):
        z = gen.forward_step(z, step, tf.random.normal(tf.shape(z), seed=step))
    closed = gen.diffuse(samples, tf.fill([20000], r), tf.random.normal(tf.shape(samples), seed=99))
    for a in (z, closed):
        np.testing.assert_allclose(tf.reduce_mean(a, 0).numpy(), zero.numpy()[0], atol=0.03)
    alpha_bar = np.prod(1 - exponential_betas(20)[:r])
    np.testing.assert_allclose(tf.math.reduce_variance(z, 0).numpy(), 1 - alpha_bar, rtol=0.05)
    np.testing.assert_allclose(tf.math.reduce_variance(closed, 0).numpy(), 1 - alpha_bar, rtol=0.05)


def _toy(batch, n=8, dim=8, seed=0):
    """Sequences moving with one constant drift v: x_j = x_0 + j v (random x_0); target x_0 + n v."""
    rng = np.random.default_rng(seed)
    start = rng.normal(size=(batch, 1, dim))
    v = np.linspace(-1.0, 1.0, dim)[None, None, :]
    seq = start + np.arange(n)[None, :, None] * v
    target = (start + n * v)[:, 0]
    ids = np.ones((batch, n), np.int32)
    return tf.constant(seq, tf.float32), tf.constant(ids), tf.constant(target, tf.float32)


def test_denoiser_learns_and_the_reverse_chain_recovers_a_deterministic_drift():
    tf.random.set_seed(0)
    gen = _generator(dim=8, steps=10, levels=2)
    optimizer = tf.keras.optimizers.Adam(3e-3)
    seq, ids, target = _toy(128)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss, _ = gen.loss(seq, ids, target)
        grads = tape.gradient(loss, gen.trainable_variables)
        optimizer.apply_gradients(zip(grads, gen.trainable_variables, strict=True))
        return loss

    losses = [float(step()) for _ in range(300)]
    assert np.mean(losses[-20:]) < 0.2 * np.mean(losses[:5])
    seq, ids, target = _toy(64, seed=1)
    intent = gen.sample(seq, ids).numpy()
    error = np.linalg.norm(intent - target.numpy(), axis=1).mean()
    no_drift = np.linalg.norm(seq.numpy()[:, -1] - target.numpy(), axis=1).mean()  # "next = last"
    assert error < 0.2 * no_drift


def test_padded_positions_change_nothing_and_sampling_is_reproducible():
    gen = _generator(n=6)
    rng = np.random.default_rng(2)
    seq = rng.normal(size=(3, 6, 4)).astype(np.float32)
    ids = np.array([[0, 0, 1, 2, 3, 4], [0, 5, 6, 7, 8, 9], [1, 2, 3, 4, 5, 6]], np.int32)
    target = rng.normal(size=(3, 4)).astype(np.float32)
    changed = seq.copy()
    changed[0, :2] = 50.0
    changed[1, 0] = -50.0
    np.testing.assert_array_equal(gen.sample(seq, ids).numpy(), gen.sample(changed, ids).numpy())
    tf.random.set_seed(3)
    a = gen.loss(seq, ids, target)
    tf.random.set_seed(3)
    b = gen.loss(changed, ids, target)
    np.testing.assert_allclose(a[0].numpy(), b[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(a[1].numpy(), b[1].numpy(), rtol=1e-6)
    assert gen.deterministic


def test_the_loss_and_the_intent_are_isolated_from_the_inputs():
    gen = _generator()
    seq = tf.Variable(tf.random.normal([2, 8, 4]))
    target = tf.Variable(tf.random.normal([2, 4]))
    with tf.GradientTape(persistent=True) as tape:
        loss, intent = gen.loss(seq, tf.ones([2, 8], tf.int32), target)
        sampled = gen.sample(seq, tf.ones([2, 8], tf.int32))
    assert tape.gradient(loss, [seq, target]) == [None, None]  # the loss trains the U-Net only
    assert all(g is not None for g in tape.gradient(loss, gen.trainable_variables))
    assert all(g is None for g in tape.gradient(intent, [seq, target, *gen.trainable_variables]))
    assert all(g is None for g in tape.gradient(sampled, [seq, *gen.trainable_variables]))


def test_unet_keeps_the_length_and_configs_round_trip():
    unet = UNet1D(5, levels=3)
    for n in (7, 8, 50):
        assert unet(tf.zeros([2, n, 3])).shape == (2, n, 5)
    assert UNet1D.from_config(unet.get_config()).levels == 3
    gen = DiffusionIntentGenerator(steps=7, drift=False, seed=4)
    clone = DiffusionIntentGenerator.from_config(gen.get_config())
    assert (clone.steps, clone.drift, clone.seed) == (7, False, 4)


def test_reverse_chain_is_a_graph_loop_without_autograph():
    # Keras's SavedModel export traces layers without AutoGraph: the chain must still be a loop.
    gen = DiffusionIntentGenerator(steps=4, width=4)
    seq, ids = tf.random.normal([2, 6, 4], seed=1), tf.constant([[0, 1, 2, 3, 4, 5]] * 2)
    gen.build((seq.shape, ids.shape))
    traced = tf.function(gen.sample, autograph=False)
    np.testing.assert_allclose(traced(seq, ids).numpy(), gen.sample(seq, ids).numpy(), rtol=1e-5, atol=1e-6)
    ops = {op.type for op in traced.get_concrete_function(seq, ids).graph.get_operations()}
    assert "While" in ops or "StatelessWhile" in ops


def test_ddim_steps_stride_the_trained_chain():
    from tfcs3.layers.diffusion import ddim_steps

    assert ddim_steps(50, 5).tolist() == [10, 20, 30, 40, 50]
    assert ddim_steps(50, 1).tolist() == [50]
    assert ddim_steps(7, 7).tolist() == list(range(1, 8))
    with pytest.raises(ValueError, match="1..50"):
        ddim_steps(50, 0)


@pytest.mark.parametrize("count", [1, 2, 5])
def test_ddim_recovers_the_clean_drift_from_an_exact_denoiser(count):
    # DDIM's defining property: the update re-noises z0_hat along the deterministic path, so a
    # denoiser that always predicts the true z0 lands on z0 whatever the number of steps.
    gen = _generator(dim=4, n=6, steps=10, serving_steps=count)
    clean = tf.random.normal([3, 6, 4], seed=5)
    gen.denoise = lambda noisy, condition, steps: clean
    ids = tf.constant([[0, 0, 1, 2, 3, 4]] * 3)
    drift = gen.sample(tf.random.normal([3, 6, 4], seed=6), ids, return_drift=True).numpy()
    mask = (ids.numpy() != 0)[..., None]
    np.testing.assert_allclose(drift, clean.numpy() * mask, atol=1e-5)


def test_one_ddim_step_is_one_denoising_of_the_starting_noise():
    gen = _generator(dim=4, n=6, steps=10, serving_steps=1)
    seq, ids = tf.random.normal([2, 6, 4], seed=1), tf.constant([[0, 1, 2, 3, 4, 5]] * 2)
    condition, mask = gen._inputs(seq, ids)
    start = gen._noise(tf.shape(condition), gen.steps + 1)
    expected = gen.denoise(start, condition, tf.fill([2], 10)) * mask
    np.testing.assert_allclose(gen.sample(seq, ids, return_drift=True).numpy(), expected.numpy(), atol=1e-5)
    # ... and differs from the 10-step DDPM chain it replaces.
    gen.serving_steps = None
    assert not np.allclose(gen.sample(seq, ids, return_drift=True).numpy(), expected.numpy(), atol=1e-3)


def test_serving_steps_is_checked_kept_in_the_config_and_traced_as_a_loop():
    gen = _generator(dim=4, n=6, steps=10, serving_steps=3)
    assert DiffusionIntentGenerator.from_config(gen.get_config()).serving_steps == 3
    gen.serving_steps = 10
    assert gen.serving_steps is None  # T steps: the DDPM chain itself
    with pytest.raises(ValueError, match="1..10"):
        gen.serving_steps = 11
    gen.serving_steps = 4
    seq, ids = tf.random.normal([2, 6, 4], seed=1), tf.constant([[0, 1, 2, 3, 4, 5]] * 2)
    traced = tf.function(gen.sample, autograph=False)
    np.testing.assert_allclose(traced(seq, ids).numpy(), gen.sample(seq, ids).numpy(), rtol=1e-4, atol=1e-5)
    ops = {op.type for op in traced.get_concrete_function(seq, ids).graph.get_operations()}
    assert "While" in ops or "StatelessWhile" in ops
