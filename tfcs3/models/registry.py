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
  ``cs3_dat_youtubednn``, ``cs3_inttower_dot``): :mod:`tfcs3.cs3.model`, with switches ``cas``,
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
from pathlib import Path
from typing import Any

import tensorflow as tf

from tfcs3.cs3.model import BACKBONES as CS3_BACKBONES
from tfcs3.cs3.sequential import CS3Sequential
from tfcs3.data.features import FeatureSpec
from tfcs3.data.prepared import PreparedData
from tfcs3.models.builder import ModelBuilder
from tfcs3.models.dat import DATModel, DATSequentialModel
from tfcs3.models.fit import FITModel
from tfcs3.models.inttower import IntTowerModel, IntTowerSequentialModel
from tfcs3.models.popularity import PopularityRecommender
from tfcs3.models.sequential import SequentialModel
from tfcs3.models.sparcode import SparCodeModel
from tfcs3.models.t2diff import T2DiffModel
from tfcs3.models.two_tower import TwoTowerModel

Builder = Callable[..., Any]
_BUILDERS: dict[str, Builder] = {}
#: Hyperparameter name -> default of each registered name (read from its class's constructor by
#: :class:`ModelBuilder`; a builder registered as a plain function declares its own).
_HPARAMS: dict[str, Callable[[], dict[str, Any]]] = {}


def register(name: str, hparams: Callable[[], dict[str, Any]] | None = None) -> Callable[[Builder], Builder]:
    """Decorator adding a builder under ``name``. A :class:`ModelBuilder` reports its own
    hyperparameters; another callable declares them with ``hparams`` (name -> default)."""

    def wrap(fn: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = fn
        if isinstance(fn, ModelBuilder):
            _HPARAMS[name] = lambda: fn.hparams
        else:
            _HPARAMS[name] = hparams or dict
        return fn

    return wrap


def model_names() -> list[str]:
    return sorted(_BUILDERS)


def model_hparams(name: str) -> dict[str, Any]:
    """The hyperparameters registered model ``name`` accepts -> their defaults."""
    check_model_name(name)
    return _HPARAMS[name]()


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


# Models whose towers keep per-user state (DAT's augmented vectors, CS3's memories).
KEYED_BY_USER_ID: set[str] = {"dat", "dat_youtubednn", *(f"cs3_{b}" for b in CS3_BACKBONES)}
for _tower in ("dssm", "youtubednn"):
    _suffix = "" if _tower == "dssm" else "_youtubednn"
    register(_tower)(ModelBuilder(TwoTowerModel, {"tower": _tower}))
    register(f"dat{_suffix}")(ModelBuilder(DATModel, {"tower": _tower}))
    register(f"inttower{_suffix}")(ModelBuilder(IntTowerModel, {"tower": _tower, "scorer": "sum_max"}))
register("inttower_dot")(ModelBuilder(IntTowerModel, {"tower": "youtubednn", "scorer": "dot"}))
for _backbone, (_cls, _tower) in CS3_BACKBONES.items():
    register(f"cs3_{_backbone}")(ModelBuilder(_cls, {"tower": _tower}))
# SparCode: its warm-up and bias annealing are given in epochs of the training split.
_SPARCODE_EPOCHS = {"bias_anneal_epochs": ("bias_anneal_examples", 1.0)}
for _name, _tower in (("sparcode", "youtubednn"), ("sparcode_dssm", "dssm")):
    _epochs = {"warmup_epochs": ("warmup_examples", 0.0), **_SPARCODE_EPOCHS}
    register(_name)(ModelBuilder(SparCodeModel, {"tower": _tower, "quantize": True}, _epochs))
register("all_to_all")(
    ModelBuilder(SparCodeModel, {"tower": "youtubednn", "quantize": False, "warmup_examples": 0}, _SPARCODE_EPOCHS)
)
register("t2diff")(ModelBuilder(T2DiffModel, {"tower": "youtubednn"}))
for _encoder in ("sasrec", "gru4rec"):
    register(_encoder)(ModelBuilder(SequentialModel, {"encoder": _encoder}))
# The mechanisms on the strongest backbone (issue "Every mechanism on the strongest backbone").
_SASREC = {"encoder": "sasrec"}
register("dat_sasrec")(ModelBuilder(DATSequentialModel, _SASREC))
register("inttower_sasrec")(ModelBuilder(IntTowerSequentialModel, _SASREC))
register("cs3_sasrec")(ModelBuilder(CS3Sequential, _SASREC))
KEYED_BY_USER_ID |= {"dat_sasrec", "cs3_sasrec"}
# FIT: the temperature schedule's length is given in epochs of the training split.
register("fit")(ModelBuilder(FITModel, per_epoch={"anneal_epochs": ("anneal_examples", 1.0)}, logq=False))

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


def protocols_of(name: str) -> tuple[str, ...]:
    """The protocols registered model ``name`` trains under."""
    return PROTOCOLS.get(name, ("retrieval", "preranking"))


@register("popularity", hparams=dict)
def _popularity(data: PreparedData, **hparams: Any) -> PopularityRecommender:
    if hparams:
        raise ValueError(f"popularity takes no hyperparameters, got {sorted(hparams)}")
    return PopularityRecommender.from_training(data.train.target, data.num_items, data.train.labels)


def is_trainable(model: Any) -> bool:
    """Whether ``model`` is trained (a :class:`TwoTowerModel`; popularity is counted, not trained)."""
    return isinstance(model, TwoTowerModel)


CONFIG_FILE = "model_config.json"
WEIGHTS = "weights"


def save_model(model: TwoTowerModel, directory: str | Path, name: str, hparams: dict[str, Any]) -> Path:
    """Writes ``model_config.json`` (name, hyperparameters, feature spec) and the weights."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {"name": name, "hparams": hparams, "spec": json.loads(model.spec.to_json())}
    model.save_weights(str(directory / WEIGHTS))
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2))
    return directory


def build_variables(model: TwoTowerModel, data: PreparedData) -> None:
    """Creates ``model``'s variables by calling it on one training example, so that restoring
    saved weights into it is immediate and complete."""
    example = {k: tf.constant(v) for k, v in data.train.head(1).features.items()}
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
