"""The run configs of `conf/`, composed with OmegaConf alone (the library does not depend on
Hydra, which drives the command lines in `pipelines/`): a primary config's defaults list of
`group: option` entries and `_self_`, group files' own defaults, then `group=option` choices and
`key=value` overrides. Presets (`+experiment=...`) and sweeps need the Hydra command line."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ultr import methods
from ultr.errors import DataError
from ultr.paths import CONF_DIR

# Config options written in code, not YAML: (group, option) -> its content. The Hydra entry points
# register the same ones in Hydra's ConfigStore (pipelines/_entry.py).
CODE_OPTIONS = {("algorithm", "_methods"): methods.default_settings}


def _load(path: Path) -> DictConfig:
    if not path.exists():
        raise DataError(f"{path}: no such config file; see the options under {path.parent}")
    return OmegaConf.load(path)  # type: ignore[return-value]


def _with_defaults(body: DictConfig, merge_option: Any) -> DictConfig:
    """Merge a config's defaults list and its own body in order (`_self_` last unless placed)."""
    defaults = list(body.pop("defaults", []) or [])
    if "_self_" not in defaults:
        defaults.append("_self_")
    out = OmegaConf.create({})
    for entry in defaults:
        out = OmegaConf.merge(out, body if entry == "_self_" else merge_option(entry))
    return out  # type: ignore[return-value]


def _group(group: str, option: str) -> DictConfig:
    if (group, option) in CODE_OPTIONS:
        return OmegaConf.create(CODE_OPTIONS[group, option]())  # type: ignore[return-value]
    body = _load(CONF_DIR / group / f"{option}.yaml")
    return _with_defaults(body, lambda entry: _group(group, str(entry)))


def flat_keys(cfg: Any, prefix: str = "") -> list[str]:
    """Every key of a nested config as a dotted path, branches included."""
    out: list[str] = []
    if isinstance(cfg, (Mapping, DictConfig)):
        for k in cfg.keys():
            missing = isinstance(cfg, DictConfig) and OmegaConf.is_missing(cfg, k)
            out += [f"{prefix}{k}", *([] if missing else flat_keys(cfg[k], f"{prefix}{k}."))]
    return out


def _lookup(cfg: Any, key: str) -> tuple[bool, Any]:
    node = cfg
    for part in key.split("."):
        if isinstance(node, DictConfig):
            if part not in node.keys():  # `in` alone says False for a mandatory value (`???`)
                return False, None
            if OmegaConf.is_missing(node, part):
                return True, None  # a mandatory value the overrides are about to set
        elif not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def override_problem(cfg: Any, key: str, value: Any) -> str | None:
    """Why `key=value` cannot set `cfg` (composed without it), with the fix; None if it can. A key
    the config lacks gets the nearest real key; a bare value where a list is expected gets `[...]`."""
    found, current = _lookup(cfg, key)
    if not found:
        near = difflib.get_close_matches(key, flat_keys(cfg), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]}?" if near else "; `--cfg job` prints every key"
        return f"the config has no key {key}{hint}"
    if isinstance(current, (list, tuple, ListConfig)) and not isinstance(value, (list, tuple, ListConfig)) and value is not None:
        return f"{key} is a list; use {key}=[{value}]"
    return None


def compose(name: str = "experiment", overrides: list[str] | None = None) -> dict[str, Any]:
    """The config `conf/<name>.yaml` as a plain dict, with `group=option` and `key=value` overrides."""
    overrides = [str(o) for o in overrides or []]
    if bad := [o for o in overrides if "=" not in o or o.startswith(("+", "~"))]:
        raise DataError(f"override {bad[0]!r}: use key=value or group=option (presets need the pipelines' command line)")
    primary = _load(CONF_DIR / f"{name}.yaml")
    primary.pop("hydra", None)
    groups = {k: v for d in primary.get("defaults", []) if isinstance(d, DictConfig) for k, v in d.items()}
    choices = dict(o.split("=", 1) for o in overrides if o.split("=", 1)[0] in groups)
    values = [o for o in overrides if o.split("=", 1)[0] not in groups]
    cfg = _with_defaults(primary, lambda d: OmegaConf.create({g: _group(g, choices.get(g, o)) for g, o in d.items()}))
    OmegaConf.set_struct(cfg, True)
    try:
        given = OmegaConf.from_dotlist(values)
        for v in values:
            key = v.split("=", 1)[0]
            if problem := override_problem(cfg, key, OmegaConf.select(given, key)):
                raise DataError(f"config override {v}: {problem}")
        cfg = OmegaConf.merge(cfg, given)
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise DataError(f"config override in {values}: {str(e).splitlines()[0]}") from e
