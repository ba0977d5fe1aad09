"""CS3 in one place: Cycle-Adaptive Structure, Cross-Tower Synchronization and Cascade-Model
Sharing on any dot-product backbone (Wang et al., arXiv 2604.19269, 2026).

Where each part lives:

* ``cycle_adaptive.py``: CAS, the gated self-revising dense block (:class:`CycleAdaptiveDense`,
  :class:`CycleAdaptiveMLP`) that replaces a tower's dense layers.
* ``cross_tower_sync.py``: CTS's memory of the other tower's outputs (:class:`CrossTowerMemory`),
  a per-id EMA table read before it is written (:class:`tfcs3.layers.EMAMemory`, the generic
  memory any tower may own).
* ``cascade_sharing.py``: CMS's memory of the ranker's penultimate activations
  (:class:`CascadeMemory`).
* ``ranker.py``: the downstream ranker CMS reads (:class:`Ranker`, DCN-v2 by default) and its
  time-ordered predict-then-learn pass.
* ``replay.py``: the replay's arithmetic (each row's final memory less its own write).
* ``model.py``: :class:`CS3Mixin`, which joins a backbone with the above (memory reads and writes,
  the per-epoch replay, the ranker's fit before training, the memories frozen into an export), the
  backbones it is registered on (:class:`CS3TwoTower`, :class:`CS3DAT`, :class:`CS3IntTower`),
  and :func:`cs3_class` for a user's own two-tower class.
* ``sequential.py``: :class:`CS3Sequential`, CS3 on SASRec (memories read per position).

The memories are held by the towers as generic per-id side inputs
(:class:`tfcs3.models.tower.MemoryTower` builds whatever memory layers the model's
``tower_options`` hands it) and written by the model's hooks.

The package's names load on first use, so the layers here can be imported by lower-level modules
(the Transformer encoder builds CAS blocks) without loading the models.

Example:
    >>> from tfcs3.cs3 import cs3_class
    >>> MyCS3 = cs3_class(MyTwoTower)
    >>> model = MyCS3(data.spec, cas="user", cms=False)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tfcs3.cs3.cascade_sharing import CascadeMemory
    from tfcs3.cs3.cross_tower_sync import CrossTowerMemory
    from tfcs3.cs3.cycle_adaptive import CycleAdaptiveDense, CycleAdaptiveMLP
    from tfcs3.cs3.model import BACKBONES, CS3, CS3DAT, CS3IntTower, CS3Mixin, CS3TwoTower, cs3_class
    from tfcs3.cs3.ranker import Ranker
    from tfcs3.cs3.sequential import CS3Sequential

#: Public name -> the module of this package that defines it.
_MODULES = {
    "CycleAdaptiveDense": "cycle_adaptive",
    "CycleAdaptiveMLP": "cycle_adaptive",
    "CrossTowerMemory": "cross_tower_sync",
    "CascadeMemory": "cascade_sharing",
    "Ranker": "ranker",
    "BACKBONES": "model",
    "CS3": "model",
    "CS3Mixin": "model",
    "CS3TwoTower": "model",
    "CS3DAT": "model",
    "CS3IntTower": "model",
    "cs3_class": "model",
    "CS3Sequential": "sequential",
}

__all__ = [
    "BACKBONES", "CS3", "CS3DAT", "CS3IntTower", "CS3Mixin", "CS3Sequential", "CS3TwoTower", "CascadeMemory",
    "CrossTowerMemory", "CycleAdaptiveDense", "CycleAdaptiveMLP", "Ranker", "cs3_class",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)


def __dir__() -> list[str]:
    return list(__all__)
