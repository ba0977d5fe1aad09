"""Model registry: name -> builder, plus saving and restoring trained models.

Every builder takes the :class:`PreparedData` (for the feature spec, the protocol and training
statistics) and keyword hyperparameters. Registered names:

* ``popularity``: :class:`PopularityRecommender` (nothing to train);
* ``dssm``: :class:`TwoTowerModel` with DSSM towers (no history);
* ``youtubednn``: :class:`TwoTowerModel` with the masked mean of the history in the query tower;
* ``dat`` / ``dat_youtubednn``: :class:`DATModel` (adaptive-mimic vectors, category alignment) on
  the DSSM / YouTubeDNN backbone;
* ``inttower`` / ``inttower_youtubednn``: :class:`IntTowerModel` with the FE-Block sum-max scorer
  on the DSSM / YouTubeDNN feature sets; ``inttower_dot``: its dot-product variant (a CS3 backbone);
* ``cs3_<backbone>`` for every dot backbone above (``cs3_dssm``, ``cs3_youtubednn``, ``cs3_dat``,
  ``cs3_dat_youtubednn``, ``cs3_inttower_dot``): :mod:`tfcs3.models.cs3`, with switches ``cas``,
  ``cts``, ``cms`` (all on by default) and ``alpha``, ``beta``, ``cycles``, ``ranker``;
* ``sparcode`` / ``sparcode_dssm``: :class:`SparCodeModel` (all-to-all interaction over product-
  quantized query tokens, indexable by :class:`~tfcs3.retrieval.SparseCodeIndex`) with a
  YouTubeDNN / DSSM query encoder; ``all_to_all``: the same scorer on continuous tokens (the
  unrestricted upper bound), retrieval only;
* ``t2diff``: :class:`T2DiffModel` (diffusion next intent + mixed attention in the user tower),
  retrieval only; ``use_diffusion`` / ``drift`` switch its mechanisms off for the ablation;
* ``sasrec`` / ``gru4rec``: :class:`SequentialModel`, a causal self-attention or GRU query tower
  over the history, item tables tied with the candidate tower, dense next-item supervision;
  retrieval only;
* ``dat_sasrec``, ``inttower_sasrec``, ``cs3_sasrec``: DAT (:class:`DATSequentialModel`),
  IntTower's CIR (:class:`IntTowerSequentialModel`) and CS3 (:class:`CS3Sequential`) on SASRec;
  retrieval only;
* every dot-product retrieval model takes ``loss`` (``in_batch``, ``full_softmax``,
  ``sampled_softmax``; see :mod:`tfcs3.models.retrieval_loss`) with ``num_negatives``,
  ``negative_sampler``, ``mixed_negatives`` and ``max_full_softmax_items``;
* ``fit``: :class:`FITModel` (Meta Query Module + Lightweight Similarity Scorer), pre-ranking
  only; ``use_mqm`` / ``use_lss`` switch its mechanisms off for the ablation.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfcs3.data.features import FeatureSpec
from tfcs3.data.protocols import PreparedData
from tfcs3.models.cs3 import BACKBONES as CS3_BACKBONES
from tfcs3.models.cs3 import CS3Sequential
from tfcs3.models.dat import DATModel, DATSequentialModel
from tfcs3.models.fit import FITModel
from tfcs3.models.inttower import IntTowerModel, IntTowerSequentialModel
from tfcs3.models.popularity import PopularityRecommender
from tfcs3.models.sequential import SequentialModel
from tfcs3.models.sparcode import SparCodeModel
from tfcs3.models.t2diff import T2DiffModel
from tfcs3.models.tower import item_attribute_table
from tfcs3.models.two_tower import TwoTowerModel

Builder = Callable[..., Any]
_BUILDERS: dict[str, Builder] = {}
# Hyperparameters each name accepts (anything else is an error, not silently ignored).
_TWO_TOWER_HPARAMS = (
    "embedding_dim", "hidden_units", "temperature", "remove_accidental_hits", "l2_normalize",
    "dropout", "embeddings_regularizer", "logq", "loss", "num_negatives", "negative_sampler", "mixed_negatives",
    "max_full_softmax_items",
)  # fmt: skip


def register(name: str) -> Callable[[Builder], Builder]:
    """Decorator adding a builder under ``name``."""

    def wrap(fn: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = fn
        return fn

    return wrap


def model_names() -> list[str]:
    return sorted(_BUILDERS)


def item_probability_by_vocab(data: PreparedData) -> np.ndarray:
    """Training frequency of each item-vocabulary index (for logQ)."""
    ids = data.train.features[data.spec.item_id]
    counts = np.bincount(ids, minlength=len(data.spec.item_vocabulary)).astype(np.float64)
    return (counts / counts.sum()).astype(np.float32)


def check_model_name(name: str) -> None:
    """A ``ValueError`` naming the registered models when ``name`` is not one of them."""
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model {name!r}; registered models: {model_names()}")


def build_model(name: str, data: PreparedData, **hparams: Any) -> Any:
    """Builds registered model ``name`` for ``data``."""
    check_model_name(name)
    if name in KEYED_BY_USER_ID and data.spec.user_id not in {f.name for f in data.spec.query}:
        raise ValueError(
            f"{name} keeps per-user state keyed by the user id feature {data.spec.user_id!r}, which this data "
            "does not have (the user split leaves it out: its test users are new)"
        )
    protocols = protocols_of(name)
    if data.protocol not in protocols:
        kind = " / ".join("pre-ranking" if p == "preranking" else p for p in protocols)
        raise ValueError(
            f"{name} is a {kind} model; got data prepared for the {data.protocol!r} protocol (prepare it with "
            f"protocol={protocols[0]!r}; command line: --protocol={protocols[0]})"
        )
    return _BUILDERS[name](data, **hparams)


def _dot_model(model_cls: Callable[..., TwoTowerModel], tower: str, extra_hparams: tuple[str, ...] = ()) -> Builder:
    accepted = _TWO_TOWER_HPARAMS + extra_hparams

    def build(data: PreparedData, logq: bool = True, **hparams: Any) -> TwoTowerModel:
        unknown = set(hparams) - set(accepted)
        if unknown:
            raise ValueError(f"{tower}: unknown hyperparameters {sorted(unknown)}; accepted: {accepted}")
        probability = item_probability_by_vocab(data) if logq and data.protocol == "retrieval" else None
        if hparams.get("loss", "in_batch") != "in_batch" and "item_attributes" not in hparams:
            hparams["item_attributes"] = item_attribute_table(data)
        return model_cls(data.spec, tower=tower, mode=data.protocol, item_probability=probability, **hparams)

    return build


# Models whose towers keep per-user state (DAT's augmented vectors, CS3's memories).
KEYED_BY_USER_ID: set[str] = {"dat", "dat_youtubednn", *(f"cs3_{b}" for b in CS3_BACKBONES)}
register("dssm")(_dot_model(TwoTowerModel, "dssm"))
register("youtubednn")(_dot_model(TwoTowerModel, "youtubednn"))
_DAT_HPARAMS = ("amm_weight", "cal_weight", "category_feature")
register("dat")(_dot_model(DATModel, "dssm", _DAT_HPARAMS))
register("dat_youtubednn")(_dot_model(DATModel, "youtubednn", _DAT_HPARAMS))
_INTTOWER_HPARAMS = ("num_heads", "head_dim", "cir_weight", "cir_temperature")
register("inttower")(_dot_model(IntTowerModel, "dssm", _INTTOWER_HPARAMS))
register("inttower_youtubednn")(_dot_model(IntTowerModel, "youtubednn", _INTTOWER_HPARAMS))
register("inttower_dot")(_dot_model(partial(IntTowerModel, scorer="dot"), "youtubednn", _INTTOWER_HPARAMS))
_CS3_HPARAMS = (
    "cas", "cts", "cms", "alpha", "beta", "cycles", "ranker", "ranker_hidden_units", "drop_known_positives",
)  # fmt: skip
_BACKBONE_HPARAMS = {"dat": _DAT_HPARAMS, "dat_youtubednn": _DAT_HPARAMS, "inttower_dot": _INTTOWER_HPARAMS}
for _backbone, (_cls, _tower) in CS3_BACKBONES.items():
    _extra = _CS3_HPARAMS + _BACKBONE_HPARAMS.get(_backbone, ())
    register(f"cs3_{_backbone}")(_dot_model(_cls, _tower, _extra))


_FIT_HPARAMS = (
    "embedding_dim", "hidden_units", "dropout", "embeddings_regularizer", "num_meta", "num_heads", "head_dim",
    "lss_units", "attention_units", "min_temperature", "anneal_epochs", "use_mqm", "use_lss",
)  # fmt: skip
_SPARCODE_HPARAMS = (
    "num_query_tokens", "num_item_tokens", "token_dim", "num_codebooks", "codebook_size", "interaction_units",
    "scorer", "sparsity_bias", "commitment_weight", "num_negatives", "codebook_decay", "restart_threshold", "relu_leak",
)  # fmt: skip


def _sparcode(tower: str, quantize: bool) -> Builder:
    extra = (*_SPARCODE_HPARAMS, "warmup_examples", "bias_anneal_examples")
    build_dot = _dot_model(partial(SparCodeModel, quantize=quantize), tower, extra)

    def build(
        data: PreparedData, warmup_epochs: float = 0.0, bias_anneal_epochs: float = 1.0, **hparams: Any
    ) -> SparCodeModel:
        n = len(data.train)
        anneal = int(round(float(bias_anneal_epochs) * n))
        if quantize:
            hparams["warmup_examples"] = int(round(float(warmup_epochs) * n))
        return build_dot(data, bias_anneal_examples=anneal, **hparams)

    return build


register("sparcode")(_sparcode("youtubednn", True))
register("sparcode_dssm")(_sparcode("dssm", True))
register("all_to_all")(_sparcode("youtubednn", False))

_T2DIFF_HPARAMS = (
    "session_length", "diffusion_steps", "diffusion_weight", "diffusion_width", "use_diffusion", "drift",
    "deterministic", "diffusion_serving_steps", "num_heads", "ffn_units", "attention_units",
)  # fmt: skip


@register("t2diff")
def _t2diff(data: PreparedData, **hparams: Any) -> T2DiffModel:
    build = _dot_model(partial(T2DiffModel, item_attributes=item_attribute_table(data)), "youtubednn", _T2DIFF_HPARAMS)
    return build(data, **hparams)


_SEQUENCE_HPARAMS = ("num_blocks", "num_heads", "attention_dropout", "profile", "dense")


def _sequential(encoder: str, cls: type[SequentialModel] = SequentialModel, extra: tuple[str, ...] = ()) -> Builder:
    def build(data: PreparedData, **hparams: Any) -> SequentialModel:
        model = partial(cls, item_attributes=item_attribute_table(data), encoder=encoder)
        return _dot_model(model, "youtubednn", _SEQUENCE_HPARAMS + extra)(data, **hparams)

    return build


register("sasrec")(_sequential("sasrec"))
register("gru4rec")(_sequential("gru4rec"))
# The mechanisms on the strongest backbone (issue "Every mechanism on the strongest backbone").
register("dat_sasrec")(_sequential("sasrec", DATSequentialModel, _DAT_HPARAMS))
register("inttower_sasrec")(_sequential("sasrec", IntTowerSequentialModel, ("cir_weight", "cir_temperature")))
register("cs3_sasrec")(_sequential("sasrec", CS3Sequential, _CS3_HPARAMS))
KEYED_BY_USER_ID |= {"dat_sasrec", "cs3_sasrec"}

#: Registered models that train on one protocol only (the others take both).
PROTOCOLS = {
    "fit": ("preranking",),
    "sparcode": ("retrieval",),
    "sparcode_dssm": ("retrieval",),
    "all_to_all": ("retrieval",),
    "t2diff": ("retrieval",),
    "sasrec": ("retrieval",),
    "gru4rec": ("retrieval",),
    "dat_sasrec": ("retrieval",),
    "inttower_sasrec": ("retrieval",),
    "cs3_sasrec": ("retrieval",),
}


@register("fit")
def _fit(data: PreparedData, anneal_epochs: float = 1.0, **hparams: Any) -> FITModel:
    unknown = set(hparams) - set(_FIT_HPARAMS)
    if unknown:
        raise ValueError(f"fit: unknown hyperparameters {sorted(unknown)}; accepted: {_FIT_HPARAMS}")
    anneal = int(round(float(anneal_epochs) * len(data.train)))
    return FITModel(data.spec, item_attribute_table(data), anneal_examples=anneal, **hparams)


def protocols_of(name: str) -> tuple[str, ...]:
    """The protocols registered model ``name`` trains under."""
    return PROTOCOLS.get(name, ("retrieval", "preranking"))


@register("popularity")
def _popularity(data: PreparedData, **hparams: Any) -> PopularityRecommender:
    if hparams:
        raise ValueError(f"popularity takes no hyperparameters, got {sorted(hparams)}")
    return PopularityRecommender.from_training(data.train.target, data.num_items, data.train.labels)


def is_trainable(model: Any) -> bool:
    """Whether ``model`` is trained (a :class:`TwoTowerModel`; popularity is counted, not trained)."""
    return isinstance(model, TwoTowerModel)


CONFIG_FILE = "model_config.json"
WEIGHTS = "weights"


def save_model(model: Any, directory: str | Path, name: str, hparams: dict[str, Any]) -> Path:
    """Writes ``model_config.json`` (name, hyperparameters, feature spec) and the weights."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"name": name, "hparams": hparams, "spec": json.loads(model.spec.to_json())}
    model.save_weights(str(directory / WEIGHTS))
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return directory


def build_variables(model: Any, data: PreparedData) -> None:
    """Creates ``model``'s variables by calling it on one training example, so that restoring
    saved weights into it is immediate and complete."""
    example = {k: tf.constant(v[:1]) for k, v in data.train.features.items()}
    model(example, training=False)
    if isinstance(model, TwoTowerModel):
        model.build_extras(example)


def load_model(directory: str | Path, data: PreparedData) -> Any:
    """Rebuilds a model saved by :func:`save_model` and restores its weights.

    The saved feature spec must equal ``data``'s, otherwise ids would be silently misread.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: not a saved tfcs3 model directory")
    config = json.loads(config_path.read_text())
    saved_spec = FeatureSpec.from_json(json.dumps(config["spec"]))
    if saved_spec.to_json() != data.spec.to_json():
        raise ValueError(
            f"{directory} was trained on a different feature spec (dataset, protocol or vocabulary) than the data given"
        )
    model = build_model(config["name"], data, **config["hparams"])
    build_variables(model, data)
    model.load_weights(str(directory / WEIGHTS)).assert_existing_objects_matched().expect_partial()
    return model
