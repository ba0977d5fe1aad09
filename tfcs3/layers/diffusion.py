"""T2Diff's diffusion next-intent generator: a DDPM over the temporal drift of a behaviour
sequence, denoised by a small 1-D U-Net conditioned on the sequence."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras


def exponential_betas(steps: int = 50, a: float = 0.01, b: float = 4.5) -> np.ndarray:
    """``beta_s = a * exp(b * s / T)`` for ``s = 1..T`` (T2Diff's schedule; ``beta_T = 0.9`` by
    default), float64 ``[T]``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    betas = a * np.exp(b * np.arange(1, steps + 1) / steps)
    if not np.all((betas > 0) & (betas < 1)):
        raise ValueError(f"the schedule a={a}, b={b} leaves (0, 1): beta_T = {betas[-1]:.3f}")
    return betas


def ddim_steps(steps: int, count: int) -> np.ndarray:
    """The DDIM sampler's steps ``tau_i = round(i * T / S)`` for ``i = 1..S``, int ``[S]``,
    ascending (the sampler runs them from the last): ``S = 1`` denoises once at ``T``, ``S = T``
    visits every step.

    Example:
        >>> ddim_steps(50, 5).tolist()
        [10, 20, 30, 40, 50]
    """
    if not 1 <= count <= steps:
        raise ValueError(f"the number of sampler steps must be in 1..{steps}, got {count}")
    return np.round(np.arange(1, count + 1) * steps / count).astype(np.int64)


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class UNet1D(tf_keras.layers.Layer):
    """A small U-Net over the sequence axis: ``[B, L, C_in] -> [B, L, out_dim]``.

    Encoder level ``i`` (channels ``width * 2^i``): Conv1D(k=3) -> swish -> LayerNorm, then
    max-pooling by 2 (not after the last level); decoder level: upsampling by 2 -> Conv1D(k=1) ->
    swish, concatenation with the encoder's skip, Conv1D(k=3) -> swish -> LayerNorm; a linear
    Conv1D(k=1) head. As in T2Diff's code, with two changes (INTERPRETATION): 'same' convolutions
    on a sequence left-padded with zeros to a multiple of ``2^(levels-1)`` (then cropped back)
    instead of reflect padding tuned to length 50, and a linear head so the predicted drift is not
    forced through a LayerNorm.

    Args:
        out_dim: output channels.
        width: channels of the first level.
        levels: encoder depth.
    """

    def __init__(self, out_dim: int, width: int | None = None, levels: int = 4, **kwargs: Any):
        super().__init__(**kwargs)
        self.out_dim = int(out_dim)
        self.width = int(width or out_dim)
        self.levels = int(levels)
        chans = [self.width * 2**i for i in range(self.levels)]
        conv = tf_keras.layers.Conv1D
        norm = tf_keras.layers.LayerNormalization
        self.down = [(conv(c, 3, padding="same", activation="swish"), norm()) for c in chans]
        self.up = [
            (conv(c, 1, activation="swish"), conv(c, 3, padding="same", activation="swish"), norm()) for c in chans[:-1]
        ]
        self.head = conv(self.out_dim, 1)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        length = tf.shape(x)[1]
        unit = 2 ** (self.levels - 1)
        pad = (unit - length % unit) % unit
        x = tf.pad(x, [[0, 0], [pad, 0], [0, 0]])
        skips = []
        for i, (layer, ln) in enumerate(self.down):
            x = ln(layer(x))
            if i < self.levels - 1:
                skips.append(x)
                x = tf.nn.max_pool1d(x, 2, 2, "VALID")
        for (proj, layer, ln), skip in zip(reversed(self.up), reversed(skips), strict=True):
            x = proj(tf.repeat(x, 2, axis=1))
            x = ln(layer(tf.concat([skip, x], axis=-1)))
        return self.head(x)[:, pad:]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "out_dim": self.out_dim, "width": self.width, "levels": self.levels}


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class DiffusionIntentGenerator(tf_keras.layers.Layer):
    """Estimates the embedding of a user's next item by diffusing the temporal drift.

    Wang et al., "Unleashing the Potential of Two-Tower Models: Diffusion-Based Cross-Interaction
    for Large-Scale Matching" (T2Diff), WWW 2025. For a behaviour sequence ``X = [x_1..x_n]``
    (``[B, n, d]``, left-padded) and, in training, the target ``x_{n+1}``:

    * drift preparation: ``z_0 = [x_2 - x_1, ..., x_{n+1} - x_n]`` (the target's drift last); with
      ``drift=False`` the shifted sequence ``[x_2, ..., x_{n+1}]`` itself is diffused;
    * schedule: :func:`exponential_betas`, ``alpha_bar_r = prod_{s<=r} (1 - beta_s)``;
    * denoiser: ``z0_hat = UNet([z_r ; X] + w * SE(r))`` with ``SE(r)_f = sin(r / 2^f)`` and
      ``w = step_weight``; it predicts the clean drift (x0-parameterisation);
    * training (:meth:`loss`): one ``r ~ U{1..T}`` and noise per example,
      ``z_r = sqrt(alpha_bar_r) z_0 + sqrt(1 - alpha_bar_r) eps``, loss ``mean ||z_0 - z0_hat||^2``
      over real positions; the one-shot estimate ``x_n + z0_hat[n]``;
    * inference (:meth:`sample`): the full reverse chain from ``z_T ~ N(0, I)`` with the standard
      DDPM posterior ``q(z_{t-1} | z_t, z0_hat)`` (mean and standard deviation; T2Diff's code uses
      a different coefficient and the variance, a quirk not copied); ``deterministic=True`` draws
      every noise tensor from a fixed seed (stateless), so serving is reproducible;
    * fast inference (``serving_steps=S < T``, training-free): the deterministic DDIM sampler
      (Song et al., ICLR 2021, eta = 0) on the strided steps ``tau_i = round(i T / S)``,
      ``i = S..1``, from the same ``z_T``: ``eps_hat = (z_tau - sqrt(abar_tau) z0_hat) /
      sqrt(1 - abar_tau)``, ``z_prev = sqrt(abar_prev) z0_hat + sqrt(1 - abar_prev) eps_hat``
      (``abar_prev = 1`` after ``tau_1``, so the last ``z0_hat`` is the sample): ``S`` U-Net calls
      instead of ``T``;
    * next intent: ``x_hat_{n+1} = x_n + z_0[n]`` (``z_0[n]`` itself with ``drift=False``).

    Everything entering the generator is ``stop_gradient``-ed and so is its output (the paper's
    isolation of the diffusion loss from the tower loss); padded positions (id 0) are zeroed in
    the condition and left out of the loss.

    Args:
        steps: ``T``.
        beta_a, beta_b: the exponential schedule.
        step_weight: ``w``.
        levels: U-Net depth.
        width: U-Net channels of the first level (default ``d``, as in T2Diff's code, where ``d``
            is tiny; the deepest level has ``width * 2^(levels-1)``).
        drift: diffuse differences (T2Diff) or the shifted sequence (the ablation).
        deterministic: fixed-seed noise in :meth:`sample`.
        seed: that seed.
        serving_steps: ``None`` (or ``T``): the DDPM chain of ``T`` steps; ``S < T``: the DDIM
            sampler with ``S`` steps (see :func:`ddim_steps`). A serving-time option: it changes
            no weight and can be set on a trained model (``generator.serving_steps = 5``).

    Input shape (``call`` = :meth:`sample`):
        ``(sequence [B, n, d], ids [B, n])``.
    Output shape:
        ``[B, d]``: the next-intent embedding.
    """

    def __init__(
        self,
        steps: int = 50,
        beta_a: float = 0.01,
        beta_b: float = 4.5,
        step_weight: float = 0.01,
        levels: int = 4,
        width: int | None = None,
        drift: bool = True,
        deterministic: bool = True,
        seed: int = 0,
        serving_steps: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.steps, self.beta_a, self.beta_b = int(steps), float(beta_a), float(beta_b)
        self.serving_steps = serving_steps
        self.step_weight, self.levels = float(step_weight), int(levels)
        self.width = None if width is None else int(width)
        self.drift, self.deterministic, self.seed = bool(drift), bool(deterministic), int(seed)
        betas = exponential_betas(self.steps, self.beta_a, self.beta_b)
        alpha_bar = np.cumprod(1.0 - betas)
        previous = np.concatenate([[1.0], alpha_bar[:-1]])
        # Index r - 1 for step r = 1..T.
        self._betas = tf.constant(betas, tf.float32)
        self._alpha_bar = tf.constant(alpha_bar, tf.float32)
        self._posterior_x0 = tf.constant(np.sqrt(previous) * betas / (1 - alpha_bar), tf.float32)
        self._posterior_xt = tf.constant(np.sqrt(1 - betas) * (1 - previous) / (1 - alpha_bar), tf.float32)
        self._posterior_std = tf.constant(np.sqrt(betas * (1 - previous) / (1 - alpha_bar)), tf.float32)

    @property
    def serving_steps(self) -> int | None:
        """Reverse steps at inference: ``None`` for the DDPM chain of ``T`` steps, else DDIM's."""
        return self._serving_steps

    @serving_steps.setter
    def serving_steps(self, value: int | None) -> None:
        if value is not None and not 1 <= int(value) <= self.steps:
            raise ValueError(f"serving_steps must be in 1..{self.steps} (the trained T) or None, got {value}")
        self._serving_steps = None if value is None or int(value) == self.steps else int(value)

    def build(self, input_shape: Any) -> None:
        dim = int(input_shape[0][-1])
        self.dim = dim
        self.unet = UNet1D(dim, width=self.width, levels=self.levels, name="unet")
        self.unet.build(tf.TensorShape([None, None, 2 * dim]))
        super().build(input_shape)

    # --- the pieces --------------------------------------------------------------------------

    def step_embedding(self, steps: tf.Tensor) -> tf.Tensor:
        """``w * sin(r / 2^f)``, ``f = 0..2d-1``, ``[B, 2d]`` for integer steps ``[B]``."""
        freq = tf.constant(2.0 ** -np.arange(2 * self.dim), tf.float32)
        return self.step_weight * tf.sin(tf.cast(steps, tf.float32)[:, None] * freq[None, :])

    def denoise(self, noisy: tf.Tensor, condition: tf.Tensor, steps: tf.Tensor) -> tf.Tensor:
        """``z0_hat = UNet([z_r ; c] + SE(r))``."""
        x = tf.concat([noisy, condition], axis=-1) + self.step_embedding(steps)[:, None, :]
        return self.unet(x)

    def diffuse(self, clean: tf.Tensor, steps: tf.Tensor, noise: tf.Tensor) -> tf.Tensor:
        """Closed-form forward noising ``q(z_r | z_0)`` for steps ``r in 1..T`` (``[B]``)."""
        alpha_bar = tf.gather(self._alpha_bar, steps - 1)[:, None, None]
        return tf.sqrt(alpha_bar) * clean + tf.sqrt(1.0 - alpha_bar) * noise

    def forward_step(self, previous: tf.Tensor, step: int, noise: tf.Tensor) -> tf.Tensor:
        """One forward step ``q(z_r | z_{r-1}) = N(sqrt(1 - beta_r) z_{r-1}, beta_r I)``."""
        beta = self._betas[step - 1]
        return tf.sqrt(1.0 - beta) * previous + tf.sqrt(beta) * noise

    def _inputs(self, sequence: tf.Tensor, ids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mask = tf.cast(tf.not_equal(ids, 0), sequence.dtype)[..., None]
        return tf.stop_gradient(sequence) * mask, mask

    def targets(self, sequence: tf.Tensor, ids: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        """``z_0``: the drift (or the shifted sequence) with the target last, ``[B, n, d]``;
        zero where ``x_j`` is padding."""
        condition, mask = self._inputs(sequence, ids)
        extended = tf.concat([condition, tf.stop_gradient(target)[:, None, :]], axis=1)
        clean = extended[:, 1:] - extended[:, :-1] if self.drift else extended[:, 1:]
        return clean * mask

    def _intent(self, condition: tf.Tensor, clean_hat: tf.Tensor) -> tf.Tensor:
        last = clean_hat[:, -1]
        return condition[:, -1] + last if self.drift else last

    def loss(self, sequence: tf.Tensor, ids: tf.Tensor, target: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """``(L, x_hat)``: the denoising loss of one noised sample per example (mean squared error
        over real positions) and the one-shot next intent (stop-gradient)."""
        condition, mask = self._inputs(sequence, ids)
        clean = self.targets(sequence, ids, target)
        batch = tf.shape(clean)[0]
        steps = tf.random.uniform([batch], 1, self.steps + 1, dtype=tf.int32)
        noise = tf.random.normal(tf.shape(clean))
        clean_hat = self.denoise(self.diffuse(clean, steps, noise), condition, steps)
        error = tf.reduce_sum(tf.square(clean - clean_hat) * mask, axis=[1, 2])
        loss = tf.reduce_mean(error / tf.maximum(tf.reduce_sum(mask, axis=[1, 2]), 1.0))
        return loss, tf.stop_gradient(self._intent(condition, clean_hat))

    def _noise(self, shape: tf.Tensor, step: int | tf.Tensor) -> tf.Tensor:
        if self.deterministic:
            return tf.random.stateless_normal(shape, seed=tf.stack([tf.constant(self.seed), tf.cast(step, tf.int32)]))
        return tf.random.normal(shape)

    def sample(self, sequence: tf.Tensor, ids: tf.Tensor, return_drift: bool = False) -> tf.Tensor:
        """The reverse chain: ``x_hat_{n+1}`` ``[B, d]`` (or the final ``z_0`` ``[B, n, d]``);
        the DDPM chain, or DDIM's with :attr:`serving_steps` set."""
        condition, mask = self._inputs(sequence, ids)
        if self.serving_steps is None:
            z = self._ddpm(condition, mask)
        else:
            z = self._ddim(condition, mask, self.serving_steps)
        return z if return_drift else self._intent(condition, z)

    def _ddpm(self, condition: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """The DDPM chain of ``T`` steps: the final ``z_0`` ``[B, n, d]``."""
        shape = tf.shape(condition)

        def reverse_step(t: tf.Tensor, z: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            clean_hat = self.denoise(z, condition, tf.fill(shape[:1], t)) * mask
            mean = tf.gather(self._posterior_x0, t - 1) * clean_hat + tf.gather(self._posterior_xt, t - 1) * z
            noise = tf.gather(self._posterior_std, t - 1) * self._noise(shape, t) * tf.cast(t > 1, z.dtype)
            return t - 1, tf.ensure_shape(mean + noise, z.shape)  # the U-Net crop loses the static length

        # An explicit while loop (not a Python loop left to AutoGraph): the chain must stay a
        # loop in every tracing context, including Keras's SavedModel export of the layer.
        start = (tf.constant(self.steps), self._noise(shape, self.steps + 1))
        _, z = tf.while_loop(lambda t, _: t > 0, reverse_step, start, maximum_iterations=self.steps)
        return tf.stop_gradient(z * mask)

    def _ddim(self, condition: tf.Tensor, mask: tf.Tensor, count: int) -> tf.Tensor:
        """DDIM (eta = 0) over :func:`ddim_steps` ``(T, count)``: the final ``z0_hat`` ``[B, n, d]``."""
        shape = tf.shape(condition)
        taus = ddim_steps(self.steps, count)
        current = tf.constant(taus, tf.int32)
        previous = tf.constant(np.r_[0, taus[:-1]], tf.int32)  # 0: abar = 1, the end of the chain
        abar = tf.concat([[1.0], self._alpha_bar], axis=0)  # index r -> abar_r, abar_0 = 1

        def reverse_step(i: tf.Tensor, z: tf.Tensor, clean_hat: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            t, prev = current[i], previous[i]
            clean_hat = self.denoise(z, condition, tf.fill(shape[:1], t)) * mask
            a_t, a_prev = tf.gather(abar, t), tf.gather(abar, prev)
            noise = (z - tf.sqrt(a_t) * clean_hat) / tf.sqrt(1.0 - a_t)
            z = tf.sqrt(a_prev) * clean_hat + tf.sqrt(1.0 - a_prev) * noise
            return i - 1, tf.ensure_shape(z, condition.shape), tf.ensure_shape(clean_hat, condition.shape)

        start = (tf.constant(count - 1), self._noise(shape, self.steps + 1), tf.zeros_like(condition))
        _, _, clean_hat = tf.while_loop(lambda i, *_: i >= 0, reverse_step, start, maximum_iterations=count)
        return tf.stop_gradient(clean_hat * mask)

    def call(self, inputs: tuple[tf.Tensor, tf.Tensor]) -> tf.Tensor:
        sequence, ids = inputs
        return self.sample(sequence, ids)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "steps": self.steps,
            "beta_a": self.beta_a,
            "beta_b": self.beta_b,
            "step_weight": self.step_weight,
            "levels": self.levels,
            "width": self.width,
            "serving_steps": self.serving_steps,
            "drift": self.drift,
            "deterministic": self.deterministic,
            "seed": self.seed,
        }
