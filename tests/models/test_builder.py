"""The hyperparameters of a registered name come from its class's constructor (one source)."""

import pytest

from tfcs3.models import TwoTowerModel, build_model, model_names
from tfcs3.models.builder import ModelBuilder, constructor_hparams
from tfcs3.models.registry import model_hparams, protocols_of


class _Weighted(TwoTowerModel):
    """A user's subclass declaring one hyperparameter of its own."""

    def __init__(self, spec, extra_weight: float = 0.3, **kwargs):
        super().__init__(spec, **kwargs)
        self.hparams.update(extra_weight=float(extra_weight))


def test_a_new_hyperparameter_is_declared_once_in_the_constructor(synthetic_retrieval):
    builder = ModelBuilder(_Weighted, {"tower": "dssm"})
    assert builder.hparams["extra_weight"] == 0.3
    assert builder.hparams["embedding_dim"] == 64  # the base class's, through **kwargs
    assert "tower" not in builder.hparams and "spec" not in builder.hparams
    model = builder(synthetic_retrieval, extra_weight=0.7, embedding_dim=8)
    assert model.hparams["extra_weight"] == 0.7 and model.tower == "dssm"
    with pytest.raises(ValueError, match=r"unknown hyperparameters \['extra_wieght'\].*extra_weight"):
        builder(synthetic_retrieval, extra_wieght=0.7)


def test_the_most_derived_default_wins_and_exclusions_hold():
    dat = model_hparams("dat_sasrec")
    assert (dat["l2_normalize"], dat["temperature"], dat["loss"]) == (False, 1.0, "full_softmax")
    assert model_hparams("dat")["l2_normalize"] is True  # DATModel's own default
    assert not {"scorer", "head_dim", "tower"} & set(model_hparams("inttower_sasrec"))
    assert not {"loss", "temperature", "logq"} & set(model_hparams("fit"))
    assert "anneal_examples" not in model_hparams("fit") and model_hparams("fit")["anneal_epochs"] == 1.0
    assert constructor_hparams(TwoTowerModel)["tower"] == "youtubednn"


@pytest.mark.parametrize("name", [n for n in model_names() if n != "popularity"])
def test_listed_defaults_are_what_the_model_records(name, synthetic_retrieval, synthetic_preranking):
    data = synthetic_retrieval if "retrieval" in protocols_of(name) else synthetic_preranking
    model = build_model(name, data)
    listed = model_hparams(name)
    for key, value in model.hparams.items():
        if key in listed and listed[key] is not None:
            expected = list(listed[key]) if isinstance(listed[key], tuple) else listed[key]
            assert value == expected, (name, key)
    assert set(model_hparams("popularity")) == set()
