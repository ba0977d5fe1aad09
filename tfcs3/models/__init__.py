"""``tfrs.Model`` subclasses composing tfcs3 layers, and the model registry."""

from tfcs3.cs3.model import CS3, CS3DAT, CS3IntTower, CS3Mixin, CS3TwoTower, cs3_class
from tfcs3.cs3.ranker import Ranker
from tfcs3.cs3.sequential import CS3Sequential
from tfcs3.models.dat import AugmentedTower, DATModel, DATSequentialModel
from tfcs3.models.fit import FITItemTower, FITModel, FITUserTower
from tfcs3.models.inttower import InteractionTower, IntTowerModel, IntTowerSequentialModel
from tfcs3.models.popularity import PopularityRecommender
from tfcs3.models.registry import (
    build_model,
    is_trainable,
    load_model,
    model_names,
    protocols_of,
    register,
    save_model,
)
from tfcs3.models.retriever import Retriever, TowerRetriever
from tfcs3.models.sequential import ItemEmbeddingTower, SequenceQueryTower, SequentialModel, SideVectors
from tfcs3.models.sparcode import CodeTower, SparCodeModel
from tfcs3.models.t2diff import T2DiffModel, T2DiffUserTower
from tfcs3.models.tower import Tower, item_attribute_table
from tfcs3.models.two_tower import TwoTowerModel

__all__ = [
    "AugmentedTower", "DATModel", "DATSequentialModel", "IntTowerSequentialModel", "CS3Sequential", "SideVectors",
    "FITItemTower", "FITModel", "FITUserTower", "item_attribute_table",
    "InteractionTower", "IntTowerModel", "PopularityRecommender", "Tower", "TwoTowerModel",
    "ItemEmbeddingTower", "SequenceQueryTower", "SequentialModel", "CS3", "CS3DAT", "CS3IntTower", "CS3Mixin",
    "CS3TwoTower", "cs3_class", "Ranker", "CodeTower", "SparCodeModel", "T2DiffModel", "T2DiffUserTower",
    "Retriever", "TowerRetriever",
    "build_model", "is_trainable", "load_model", "model_names", "protocols_of", "register", "save_model",
]  # fmt: skip
