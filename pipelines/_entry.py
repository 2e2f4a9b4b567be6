"""Shared glue for the Hydra entry points: plain-dict config, run dir, clean errors."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from ultr.errors import DataError

# Absolute, so every entry point finds the configs however it is started.
CONF = str(Path(__file__).resolve().parent.parent / "conf")


def _cpu_device_flags() -> None:
    """With several forced host devices, XLA:CPU's all-reduce blocks worker threads of the same
    Eigen pool the devices' matmuls need; on a few cores the devices then never all reach the
    collective (a 40 s rendezvous abort). Single-threaded Eigen per device avoids the starvation.
    Runs before JAX starts its backend, which reads XLA_FLAGS once."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" in flags and "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false"


_cpu_device_flags()


def run(fn: Callable[[dict[str, Any], str], Any], cfg: DictConfig) -> Any:
    """Call a library workflow; bad input exits non-zero with its message on stderr, no traceback."""
    run_dir = HydraConfig.get().runtime.output_dir
    plain = OmegaConf.to_container(cfg, resolve=True)
    try:
        return fn(plain, run_dir)
    except (DataError, FloatingPointError) as e:  # bad input, or a diverged run: the message says what to do
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
