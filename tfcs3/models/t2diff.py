"""T2Diff: a diffusion-generated next intent and mixed attention in the user tower.

Wang et al., "Unleashing the Potential of Two-Tower Models: Diffusion-Based Cross-Interaction for
Large-Scale Matching", WWW 2025. See :mod:`tfcs3.layers.diffusion` and
:mod:`tfcs3.layers.mixed_attention` for the pieces. For a user with history ``x_1..x_n`` (items
embedded with the candidate tower's tables) and profile features:

    x_hat = x_n + z_0[n]                 z_0 from the reverse chain (serving) or one noised sample of
                                         the true drift (training); stop-gradient both ways
    [h_l ; h_s] = MixedAttention(session = x_{n-k+1..n}, x_hat, history = x_{1..n-k})
    e_u = MLP([h_l ; h_s ; profile])     e_i = MLP(item features)      s = <e_u, e_i>
    L = in-batch softmax with logQ (the tfcs3 retrieval loss) + lambda * L_diffusion

The item tower is the plain one, so items are indexed as usual (ScaNN or brute force); the whole
reverse chain runs inside ``query_model`` (and so inside the export's ``query_embedding`` and
``serving_default``), with fixed-seed noise by default (reproducible serving).

INTERPRETATIONS: the user's categorical features join ``[h_l ; h_s]`` before the final MLP (as for
the YouTubeDNN baseline; the paper's towers read behaviour only); in-batch negatives with logQ
instead of a full softmax; ablations ``use_diffusion=False`` (the session is encoded without an
intent token) and ``drift=False`` (the generator diffuses the shifted sequence, not differences).

Time lag (optional; the paper's text has it, its code does not): when the data carries the
``history_gap`` feature (``load_prepared(..., history_gaps=True)``), each history item entering
the target attention becomes ``x_j + g[b_j]``, ``b_j`` the log-bucket of the time from ``x_j`` to
the request and ``g`` a learned table (zero on padding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from tfcs3.data.features import FeatureSpec
from tfcs3.data.sequences import split_session
from tfcs3.layers import MLP, FeatureEmbedding
from tfcs3.layers.diffusion import DiffusionIntentGenerator
from tfcs3.layers.mixed_attention import MixedAttention
from tfcs3.models.tower import BehaviourTower, Tower
from tfcs3.models.two_tower import TwoTowerModel


@tf_keras.utils.register_keras_serializable(package="tfcs3")
class T2DiffUserTower(BehaviourTower):
    """``e_u = MLP([MixedAttention(session, x_hat, history) ; profile])``.

    Called on features alone it generates ``x_hat`` with the reverse chain; ``intent=[B, D]``
    supplies it (training's one-shot estimate). A feature aligned with the history (``aligned_with``
    in its config: the time gaps ``history_gap``), among ``features`` or given as ``gap_feature``,
    is not pooled into the profile: its embeddings are added to the history items of the target
    attention, position by position.

    Args:
        features, embedding_dim, hidden_units, output_dim, dropout, embeddings_regularizer: as for
            :class:`~tfcs3.models.tower.Tower`.
        item_embedding, item_attributes: see :class:`~tfcs3.models.tower.BehaviourTower`.
        session_length: ``k``.
        generator: the :class:`DiffusionIntentGenerator` (``None``: no intent token).
        num_heads, ffn_units, attention_units: :class:`MixedAttention` sizes.
        gap_feature: that aligned feature's config, when ``features`` leaves it out.
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        embedding_dim: int,
        hidden_units: Sequence[int],
        output_dim: int,
        dropout: float = 0.0,
        embeddings_regularizer: float = 0.0,
        item_embedding: FeatureEmbedding | None = None,
        item_attributes: Mapping[str, np.ndarray] | None = None,
        session_length: int = 10,
        generator: DiffusionIntentGenerator | None = None,
        num_heads: int = 2,
        ffn_units: int = 64,
        attention_units: int = 32,
        gap_feature: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        aligned = [f for f in features if f.get("aligned_with")]
        if len(aligned) > 1:
            raise ValueError(f"T2Diff reads one feature aligned with its history, got {[f['name'] for f in aligned]}")
        gap_feature = aligned[0] if aligned else gap_feature
        features = [f for f in features if not f.get("aligned_with")]
        config = dict(
            hidden_units=list(hidden_units),
            output_dim=output_dim,
            dropout=dropout,
            session_length=session_length,
            num_heads=num_heads,
            ffn_units=ffn_units,
            attention_units=attention_units,
            gap_feature=None if gap_feature is None else dict(gap_feature),
        )
        kwargs.pop("l2_normalize", None)
        super().__init__(
            features, embedding_dim, embeddings_regularizer, item_embedding, item_attributes, config=config, **kwargs
        )
        self.session_length = int(session_length)
        self.generator = generator
        self.mixed = MixedAttention(num_heads, ffn_units, attention_units, name="mixed_attention")
        self.mlp = MLP(hidden_units, output_dim, dropout)
        self.gap_embedding = None
        self.gap_name = None if gap_feature is None else gap_feature["name"]
        if gap_feature is not None:
            self.feature_names.append(str(gap_feature["name"]))
            width = len(self.item_embedding.features) * self.item_embedding.embedding_dim
            reg = tf_keras.regularizers.l2(embeddings_regularizer) if embeddings_regularizer else None
            self.gap_embedding = tf_keras.layers.Embedding(
                int(gap_feature["input_dim"]), width, embeddings_regularizer=reg, name="gap_embedding"
            )

    def call(
        self, inputs: Mapping[str, tf.Tensor], training: bool | None = None, intent: tf.Tensor | None = None
    ) -> tf.Tensor:
        behaviours, ids = self.behaviour(inputs)
        if intent is None and self.generator is not None:
            intent = self.generator.sample(behaviours, ids)
        session, history = split_session(behaviours, self.session_length)
        session_ids, history_ids = split_session(ids, self.session_length)
        if self.gap_embedding is not None and self.gap_name is not None:
            _, gaps = split_session(tf.cast(inputs[self.gap_name], tf.int32), self.session_length)
            history = history + self.gap_embedding(gaps) * tf.cast(gaps != 0, history.dtype)[..., None]
        mixed = self.mixed((session, session_ids, intent, history, history_ids))
        return self.mlp(tf.concat([mixed, self.embed(inputs)], axis=-1), training=training)


class T2DiffModel(TwoTowerModel):
    """T2Diff on the tfcs3 two-tower contract (see the module docstring). Retrieval only.

    Args:
        spec: the dataset's features (needs a history sequence longer than ``session_length``).
        item_attributes: :func:`~tfcs3.models.tower.item_attribute_table` of the data.
        session_length: ``k``.
        diffusion_steps: ``T``.
        diffusion_weight: ``lambda``.
        diffusion_width: U-Net channels of its first level (levels: 1, 2, 4, 8 times that).
        use_diffusion: ``False`` for the ablation without the generator.
        drift: ``False`` for the ablation without drift preparation.
        deterministic: fixed-seed noise in the reverse chain.
        diffusion_serving_steps: reverse steps at inference (evaluation and export), run by the
            training-free DDIM sampler (:class:`~tfcs3.layers.diffusion.DiffusionIntentGenerator`);
            ``None`` (or ``diffusion_steps``) runs the DDPM chain itself. The default, 1 step, is
            the count ``benchmarks/t2diff_steps.py`` picks on validation (MovieLens-100K, 3 seeds:
            validation NDCG@10 0.1173 against the 50-step chain's 0.1159) at a 17x lower latency.
            Changes no weight: :meth:`set_serving_steps` sets it on a trained model.
        num_heads, ffn_units, attention_units: :class:`MixedAttention` sizes.
        **kwargs: :class:`TwoTowerModel` arguments.

    Example:
        >>> model = tfcs3.models.build_model("t2diff", data, diffusion_steps=50)
        >>> tfcs3.training.train(model, data)
    """

    excluded_hparams = frozenset({"tower"})  # the user tower always reads the history

    def __init__(
        self,
        spec: FeatureSpec,
        item_attributes: Mapping[str, np.ndarray],
        session_length: int = 10,
        diffusion_steps: int = 50,
        diffusion_weight: float = 1.0,
        diffusion_width: int = 32,
        use_diffusion: bool = True,
        drift: bool = True,
        deterministic: bool = True,
        diffusion_serving_steps: int | None = 1,
        num_heads: int = 2,
        ffn_units: int = 64,
        attention_units: int = 32,
        **kwargs: Any,
    ):
        if kwargs.setdefault("mode", "retrieval") != "retrieval":
            raise ValueError(f"T2Diff is a retrieval model; got mode={kwargs['mode']!r}")
        if kwargs.setdefault("tower", "youtubednn") != "youtubednn":
            raise ValueError("T2Diff's user tower reads the history: tower must be 'youtubednn'")
        history = [f for f in spec.sequence_features]
        if len(history) != 1 or not 0 < session_length < history[0].max_len:
            lengths = [f.max_len for f in history]
            raise ValueError(
                f"T2Diff needs one history feature longer than session_length={session_length}; got lengths {lengths}"
            )
        self._t2diff_args: dict[str, Any] = dict(
            item_attributes=item_attributes,
            session_length=int(session_length),
            steps=int(diffusion_steps),
            width=int(diffusion_width),
            use_diffusion=bool(use_diffusion),
            drift=bool(drift),
            deterministic=bool(deterministic),
            serving_steps=None if diffusion_serving_steps is None else int(diffusion_serving_steps),
            num_heads=int(num_heads),
            ffn_units=int(ffn_units),
            attention_units=int(attention_units),
        )
        if kwargs.get("loss", "in_batch") != "in_batch":
            kwargs["item_attributes"] = item_attributes  # full / sampled softmax embed any item
        super().__init__(spec, **kwargs)
        a = self._t2diff_args
        self.hparams.update(
            {k: v for k, v in a.items() if k not in ("item_attributes", "steps", "width", "serving_steps")},
            diffusion_steps=a["steps"],
            diffusion_serving_steps=self.generator.serving_steps if self.generator is not None else None,
            diffusion_width=a["width"],
            diffusion_weight=float(diffusion_weight),
        )
        if a["use_diffusion"]:
            self.diffusion_loss = tf_keras.metrics.Mean(name="diffusion_loss")

    def build_towers(
        self,
        query_features: list[dict[str, Any]],
        candidate_features: list[dict[str, Any]],
        query_args: dict[str, Any],
        candidate_args: dict[str, Any],
    ) -> tuple[tf_keras.Model, tf_keras.Model]:
        a = self._t2diff_args
        items = Tower(candidate_features, name="candidate_tower", **candidate_args)
        generator = None
        if a["use_diffusion"]:
            generator = DiffusionIntentGenerator(
                a["steps"],
                width=a["width"],
                drift=a["drift"],
                deterministic=a["deterministic"],
                serving_steps=a["serving_steps"],
                name="diffusion",
            )
            dim = len(candidate_features) * candidate_args["embedding_dim"]
            generator.build((tf.TensorShape([None, None, dim]), tf.TensorShape([None, None])))
        users = T2DiffUserTower(
            query_features,
            item_embedding=items.embedding,
            item_attributes=a["item_attributes"],
            session_length=a["session_length"],
            generator=generator,
            num_heads=a["num_heads"],
            ffn_units=a["ffn_units"],
            attention_units=a["attention_units"],
            name="query_tower",
            **query_args,
        )
        return users, items

    @property
    def generator(self) -> DiffusionIntentGenerator | None:
        return self.query_model.generator

    def set_serving_steps(self, steps: int | None) -> None:
        """Sets the reverse steps that evaluation and export run (``None``: the DDPM chain of
        ``diffusion_steps``; fewer: DDIM), and records it in :attr:`hparams`."""
        if self.generator is None:
            raise ValueError("this T2Diff has no diffusion generator (use_diffusion=False): no steps to set")
        self.generator.serving_steps = steps
        self.hparams["diffusion_serving_steps"] = self.generator.serving_steps

    def compute_loss(self, features: Mapping[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        c = self.candidate_model(features, training=training)
        if self.generator is None:
            return self.loss_from_representations(features, self.query_model(features, training=training), c)
        behaviours, ids = self.query_model.behaviour(features)
        target = self.candidate_model.embedding(features)  # x_{n+1}, in the behaviours' space
        diffusion, intent = self.generator.loss(behaviours, ids, target)
        q = self.query_model(features, training=training, intent=intent)
        self.diffusion_loss.update_state(diffusion)
        # The retrieval loss is summed over the batch (TFRS's convention); the diffusion loss is a mean.
        batch = tf.cast(tf.shape(c)[0], tf.float32)
        return self.loss_from_representations(features, q, c) + self.hparams["diffusion_weight"] * diffusion * batch
