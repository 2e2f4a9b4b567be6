"""Shared glue for the Hydra entry points: plain-dict config, run dir, clean errors."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ultr.errors import DataError

# Absolute, so every entry point finds the configs however it is started.
CONF = str(Path(__file__).resolve().parent.parent / "conf")


def run(fn: Callable[[dict[str, Any], str], Any], cfg: DictConfig) -> Any:
    """Call a library workflow; bad input exits non-zero with its message on stderr, no traceback."""
    run_dir = HydraConfig.get().runtime.output_dir
    plain = OmegaConf.to_container(cfg, resolve=True)
    try:
        return fn(plain, run_dir)
    except (DataError, FloatingPointError) as e:  # bad input, or a diverged run: the message says what to do
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
