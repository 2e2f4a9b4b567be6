"""The configs as the command line composes them (Hydra, presets included), as plain dicts: for
tests, benchmarks and notebooks that want `+experiment=...` or sweeps' single settings."""

from __future__ import annotations

from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pipelines._entry import CONF


def default_config(overrides: list[str] | None = None, name: str = "experiment") -> dict[str, Any]:
    """`conf/<name>.yaml` with Hydra-style overrides, resolved."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(name, overrides=overrides or [])
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
