"""How a registered name builds its model, with the hyperparameters read from the constructor.

A model's hyperparameters are declared once: as keyword arguments of its class's ``__init__``
(followed through ``**kwargs`` up to :class:`TwoTowerModel`). :class:`ModelBuilder` reads them
from there, so the registry, the command line (``python -m tfcs3 models``), the experiment runner
and the benchmarks accept exactly what the class takes, with its defaults, and a new
hyperparameter is added in one place: the constructor.

Example:
    >>> builder = ModelBuilder(DATModel, fixed={"tower": "dssm"})
    >>> builder.hparams["amm_weight"]
    0.5
    >>> model = builder(data, amm_weight=0.1)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tfcs3.data.prepared import PreparedData
from tfcs3.data.protocols import RETRIEVAL
from tfcs3.models.tower import item_attribute_table
from tfcs3.models.two_tower import TwoTowerModel

#: Constructor arguments the builder supplies from the data (never hyperparameters).
WIRING = frozenset({"spec", "mode", "item_probability", "item_attributes", "name"})
#: Builder-level hyperparameter of every two-tower name: correct the in-batch softmax by the items'
#: training frequencies (logQ; retrieval only).
BUILDER_HPARAMS: dict[str, Any] = {"logq": True}


def constructor_parameters(cls: type[TwoTowerModel]) -> dict[str, inspect.Parameter]:
    """The keyword parameters ``cls(...)`` takes, the most derived declaration of each first: its
    ``__init__``'s, then (while an ``__init__`` forwards ``**kwargs``) its bases' in method
    resolution order, down to :class:`TwoTowerModel` (not Keras' own arguments)."""
    found: dict[str, inspect.Parameter] = {}
    for klass in inspect.getmro(cls):
        init = vars(klass).get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        for p in params:
            if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                found.setdefault(p.name, p)
        if klass is TwoTowerModel or not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return found


def constructor_hparams(cls: type[TwoTowerModel]) -> dict[str, Any]:
    """Hyperparameter name -> default of ``cls``: its constructor's keyword parameters less the
    :data:`WIRING` and the class's :attr:`~TwoTowerModel.excluded_hparams`."""
    return {
        name: p.default
        for name, p in constructor_parameters(cls).items()
        if name not in WIRING and name not in cls.excluded_hparams
    }


@dataclass(frozen=True)
class ModelBuilder:
    """Builds ``model_cls`` for a :class:`PreparedData`.

    Args:
        model_cls: the model class.
        fixed: constructor arguments the registered name sets (``tower``, ``encoder``, ...); not
            hyperparameters of the name.
        per_epoch: ``{"<x>_epochs": ("<x>_examples", default)}``: a hyperparameter given in epochs
            of the training split, passed to the constructor as a number of examples.
        logq: whether the name takes ``logq`` (:data:`BUILDER_HPARAMS`; pre-ranking-only models
            have no in-batch softmax to correct).
    """

    model_cls: type[TwoTowerModel]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    per_epoch: Mapping[str, tuple[str, float]] = field(default_factory=dict)
    logq: bool = True

    @property
    def hparams(self) -> dict[str, Any]:
        """Every hyperparameter the name accepts -> its default."""
        converted = {target for target, _ in self.per_epoch.values()}
        out = {
            name: default
            for name, default in constructor_hparams(self.model_cls).items()
            if name not in self.fixed and name not in converted
        }
        out.update({name: default for name, (_, default) in self.per_epoch.items()})
        if self.logq:
            out.update(BUILDER_HPARAMS)
        return dict(sorted(out.items()))

    @property
    def needs_item_attributes(self) -> bool:
        """Whether the constructor requires the item attribute table (models that embed any item)."""
        p = constructor_parameters(self.model_cls).get("item_attributes")
        return p is not None and p.default is inspect.Parameter.empty

    def __call__(self, data: PreparedData, **hparams: Any) -> TwoTowerModel:
        accepted = self.hparams
        unknown = sorted(set(hparams) - set(accepted))
        if unknown:
            raise ValueError(
                f"{self.model_cls.__name__}: unknown hyperparameters {unknown}; accepted: {sorted(accepted)} "
                "(python -m tfcs3 models lists each model's with its default)"
            )
        logq = bool(hparams.pop("logq", BUILDER_HPARAMS["logq"]))
        for name, (target, default) in self.per_epoch.items():
            hparams[target] = int(round(float(hparams.pop(name, default)) * len(data.train)))
        probability = None
        if logq and data.protocol == RETRIEVAL:
            probability = item_probability_by_vocab(data)
        if self.needs_item_attributes or hparams.get("loss", "in_batch") != "in_batch":
            hparams["item_attributes"] = item_attribute_table(data)
        return self.model_cls(data.spec, mode=data.protocol, item_probability=probability, **{**self.fixed, **hparams})


def item_probability_by_vocab(data: PreparedData) -> np.ndarray:
    """Training frequency of each item-vocabulary index (for logQ)."""
    counts = data.train.id_counts(data.spec.item_id, len(data.spec.item_vocabulary)).astype(np.float64)
    return (counts / counts.sum()).astype(np.float32)
