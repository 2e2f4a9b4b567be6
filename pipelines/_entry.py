"""Shared glue for the Hydra entry points: plain-dict config, run dir, clean errors."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from ultr.config import CODE_OPTIONS
from ultr.errors import DataError
from ultr.paths import CONF_DIR

# Absolute, so every entry point finds the configs however it is started (source tree or wheel).
CONF = str(CONF_DIR)
# Options written in code (each method's settings, from its module) join the YAML ones.
for (_group, _option), _content in CODE_OPTIONS.items():
    ConfigStore.instance().store(group=_group, name=_option, node=_content())


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


# Flags that change what is composed or only print; the pre-check leaves those runs to Hydra.
_HYDRA_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "-cp", "--config-path",
                "-cn", "--config-name", "-cd", "--config-dir", "-sc", "--shell-completion", "-p", "--package")


def _one_line(error: BaseException) -> str:
    """Hydra's multi-line composition message as one line (options listed, search path left out)."""
    parts: list[str] = []
    for line in str(error).splitlines():
        if line.startswith("Config search path") or "HYDRA_FULL_ERROR" in line:
            break
        if line.startswith("\t") and parts:
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line.strip()
        elif line.strip():
            parts.append(line.strip())
    return "; ".join(p.rstrip(".") for p in parts)


def check_overrides(config_name: str, argv: list[str]) -> None:
    """Compose the config once before Hydra runs, so that a bad override (an unknown
    `hydra/launcher`, a key the config lacks, a typo in a group option) is a one-line error with
    exit status 2, as bad input is everywhere else, instead of Hydra's several lines and status 1.
    Sweep overrides (`-m a=1,2`) are left to the sweeper."""
    if any(a.split("=")[0] in _HYDRA_FLAGS for a in argv):
        return
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
        single = [o.input_line for o in overrides if not o.is_sweep_override()]
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            compose(config_name, overrides=single, return_hydra_config=True)
    except HydraException as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(2)


def launch(main: Callable[[], Any], config_name: str) -> None:
    check_overrides(config_name, sys.argv[1:])
    main()
