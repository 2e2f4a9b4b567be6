"""The online methods, looked up by name: each module defines one `METHOD` class (a frozen
dataclass of its settings; `base.OnlineMethod`), so adding a method is adding a module."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from ultr.errors import DataError
from ultr.online.methods.base import OnlineMethod
from ultr.registry import discover

REGISTRY: dict[str, type[OnlineMethod]] = discover(__name__, __path__, lambda m: m.key)


def names() -> list[str]:
    return list(REGISTRY)


def make(name: str, settings: Mapping[str, Any] | None = None) -> OnlineMethod:
    """Method `name` with these settings (unknown ones are an error that lists the known ones)."""
    if name not in REGISTRY:
        raise DataError(f"online method {name!r} is unknown; available: {names()}")
    cls = REGISTRY[name]
    known = {f.name for f in dataclasses.fields(cls)}
    given = dict(settings or {})
    unknown = sorted(set(given) - known)
    if unknown:
        raise DataError(f"online.settings.{name}.{unknown[0]} is not a setting of {name}; its settings: {sorted(known)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})
