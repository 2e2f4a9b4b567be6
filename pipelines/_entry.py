"""Shared glue for the Hydra entry points: plain-dict config, run dir, clean errors."""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf

from ultr.config import CODE_OPTIONS, override_problem
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


# Libraries that log at INFO through the root logger Hydra sets up: JAX's backend probe ("Unable to
# initialize backend 'tpu'"), orbax's and absl's checkpoint notes, tensorboardX. Their warnings stay.
QUIET_LOGGERS = ("jax", "absl", "orbax", "tensorboardX")


def quiet_libraries() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def run(fn: Callable[[dict[str, Any], str], Any], cfg: DictConfig) -> Any:
    """Call a library workflow; bad input exits non-zero with its message on stderr, no traceback."""
    quiet_libraries()  # here, after Hydra configured logging (in every job of a multirun too)
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


def _is_group(key: str) -> bool:
    return "/" in key or (CONF_DIR / key).is_dir()


# Maps whose entries a user adds with `+`: every entry is read (online.runs: a labelled run, run
# when online.methods names it; online.click_model: the settings of a click-model user).
ADDABLE = ("online.runs.", "online.click_model.")


def _override_problems(config_name: str, overrides: list[Any]) -> str | None:
    """The first override that would fail or be silently ignored, explained: a `+` on a key (it
    adds a key nothing reads), a key the config lacks (the nearest real key), a bare value where a
    list is expected. Checked against the config composed with the group choices alone."""
    groups = [o.input_line for o in overrides if _is_group(o.key_or_group) and not o.is_sweep_override()]
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        base = OmegaConf.to_container(compose(config_name, overrides=groups), resolve=False)
    for o in overrides:
        key = o.key_or_group
        if _is_group(key) or key.startswith("hydra.") or o.is_delete() or (o.is_add() and key.startswith(ADDABLE)):
            continue
        if o.is_add() or o.is_force_add():
            found = override_problem(base, key, None) is None
            return (f"{o.input_line}: {key} exists; set it without + ({key}=...)" if found else
                    f"{o.input_line}: + adds a key that nothing reads ({override_problem(base, key, None)}); "
                    "set existing keys without +")
        if problem := override_problem(base, key, None if o.is_sweep_override() else o.value()):
            return f"{o.input_line}: {problem}"
    return None


def _launcher_hint(error: BaseException) -> str | None:
    """A launcher whose plugin is not installed names the extra that installs it."""
    if "submitit" in str(error) and importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        return "the SLURM launchers need hydra-submitit-launcher: pip install 'ultr[slurm]' (pip install -e '.[slurm]' in a checkout)"
    return None


def check_overrides(config_name: str, argv: list[str]) -> None:
    """Compose the config once before Hydra runs, so that a bad override (an unknown
    `hydra/launcher`, a key the config lacks, a typo in a group option, a list given as a bare
    value) is a one-line error with exit status 2, as bad input is everywhere else, instead of
    Hydra's several lines and status 1, or a run with the setting silently ignored. Sweep overrides
    (`-m a=1,2`) are checked for their keys; their values are left to the sweeper."""
    if any(a.split("=")[0] in _HYDRA_FLAGS for a in argv):
        return
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
        if problem := _override_problems(config_name, overrides):
            print(f"error: {problem}", file=sys.stderr)
            sys.exit(2)
        single = [o.input_line for o in overrides if not o.is_sweep_override()]
        with initialize_config_dir(config_dir=CONF, version_base="1.3"):
            cfg = compose(config_name, overrides=single)
        if missing := sorted(k for k in OmegaConf.missing_keys(cfg) if not any(k == o.key_or_group for o in overrides)):
            print(f"error: {', '.join(missing)} must be set: pass {missing[0]}=... (see conf/{config_name}.yaml)", file=sys.stderr)
            sys.exit(2)
    except HydraException as e:
        print(f"error: {_launcher_hint(e) or _one_line(e)}", file=sys.stderr)
        sys.exit(2)


_TRUE = ("true", "yes", "1", "on")
# Overrides a resumed run may change: they touch the console and logging, not what is trained.
_RESUME_SAFE = ("trainer.progress", "hydra.")


def _value(argv: list[str], key: str) -> str | None:
    return next((a.split("=", 1)[1] for a in argv if a.split("=", 1)[0] == key), None)


def resume_arguments(argv: list[str]) -> list[str]:
    """`trainer.resume=true hydra.run.dir=DIR`: the arguments that continue DIR's run as it was
    started. Its saved overrides (DIR/.hydra/overrides.yaml) are reloaded; an override that would
    change what is trained is refused, naming it; Hydra is told not to rewrite DIR/.hydra."""
    if (_value(argv, "trainer.resume") or "false").lower() not in _TRUE:
        return argv
    if any(a in ("-m", "--multirun") for a in argv):
        raise DataError("trainer.resume=true resumes one run directory: run it once per job directory, without -m")
    run_dir = _value(argv, "hydra.run.dir")
    if run_dir is None:
        raise DataError("trainer.resume=true needs hydra.run.dir=<the interrupted run's directory>")
    saved_file = Path(run_dir) / ".hydra" / "overrides.yaml"
    if not saved_file.is_file():
        raise DataError(f"{run_dir}: trainer.resume=true, but this directory holds no training checkpoint and no "
                        f"{saved_file.relative_to(run_dir)} of a pipelines.experiment run; set hydra.run.dir to the "
                        "interrupted run's directory, or drop trainer.resume")
    saved = [str(o) for o in OmegaConf.load(saved_file)]
    given = [a for a in argv if a.split("=", 1)[0] not in ("hydra.run.dir", "trainer.resume")]
    safe = [a for a in given if a.startswith(_RESUME_SAFE)]
    if changed := [a for a in given if a not in saved and a not in safe]:
        raise DataError(f"trainer.resume=true: {changed} would change the run being resumed, which started with "
                        f"{saved or 'no overrides'}; drop them (the saved ones are reloaded), or start a new run directory")
    keep = [o for o in saved if o.split("=", 1)[0] not in {a.split("=", 1)[0] for a in safe}]
    return [*keep, *safe, "trainer.resume=true", f"hydra.run.dir={run_dir}", "hydra.output_subdir=null"]


def launch(main: Callable[[], Any], config_name: str, resumable: bool = False) -> None:
    if resumable:
        try:
            sys.argv[1:] = resume_arguments(sys.argv[1:])
        except DataError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    check_overrides(config_name, sys.argv[1:])
    main()
