"""`ultr.config.compose` (OmegaConf alone, for the library) gives what Hydra composes for the command line."""

from __future__ import annotations

import pytest

from pipelines.config import default_config
from ultr.config import compose
from ultr.errors import DataError


@pytest.mark.parametrize("name,overrides", [
    ("experiment", []),
    ("experiment", ["click_model=trust", "model.hidden=[64]", "algorithm.methods=[dla,pairwise]", "propensity=context"]),
    ("experiment", ["data=mslr30k", "data.root=/nowhere", "trainer=debug", "propensity_optim.learning_rate=1.0"]),
    ("simulate", ["simulation.sessions=1000"]),
    ("estimate_bias", ["log.format=pyclick"]),
])
def test_compose_equals_hydra(name, overrides):
    assert compose(name, overrides) == default_config(overrides, name=name)


def test_compose_rejects_what_it_cannot_compose():
    with pytest.raises(DataError, match="presets need the pipelines' command line"):
        compose("experiment", ["+experiment=severe_bias"])
    with pytest.raises(DataError, match="config override"):
        compose("experiment", ["trainer.no_such_key=1"])
    with pytest.raises(DataError, match="no such config file"):
        compose("experiment", ["click_model=nope"])


def test_the_propensity_optimiser_follows_optim_unless_set():
    from ultr.methods.base import tower_optim

    cfg = compose("experiment", ["optim.clip_norm=2.0"])
    assert tower_optim(cfg) == {**cfg["optim"], "learning_rate": 0.2}
    assert tower_optim(compose("experiment", ["propensity_optim.clip_norm=9.0"]))["clip_norm"] == 9.0


def test_every_method_brings_its_settings_from_its_module():
    """conf/algorithm/ lists methods only: a method module's `defaults` are its settings block, so a
    new method needs no YAML."""
    from ultr import methods

    for name in methods.names():
        assert compose("experiment")["algorithm"][name] == methods.get(name).defaults
        assert default_config()["algorithm"][name] == methods.get(name).defaults
