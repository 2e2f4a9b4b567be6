"""The learning methods, looked up by name: each module of this package defines one `METHOD`
(a `ultr.methods.base.Method`) with its settings' defaults, so adding a method is adding a module."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ultr.errors import DataError
from ultr.methods.base import LABELS, LISTS, SESSIONS, KnownSources, Method, Parts

__all__ = ["LABELS", "LISTS", "SESSIONS", "KnownSources", "Method", "Parts", "default_settings", "get", "names"]


def _discover() -> dict[str, Method]:
    found: dict[str, Method] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base" or info.name.startswith("_"):
            continue
        method = getattr(importlib.import_module(f"{__name__}.{info.name}"), "METHOD", None)
        if method is not None:
            found[method.name] = method
    return dict(sorted(found.items()))


REGISTRY = _discover()


def names() -> list[str]:
    return list(REGISTRY)


def default_settings() -> dict[str, dict[str, Any]]:
    """Every method's settings block, as the config's `algorithm` group gets it."""
    return {name: dict(m.defaults) for name, m in REGISTRY.items()}


def get(name: str) -> Method:
    if name not in REGISTRY:
        raise DataError(f"method {name!r} is unknown; available: {names()}")
    return REGISTRY[name]
