"""The learning methods, looked up by name: each module of this package defines one `METHOD`
(a `ultr.methods.base.Method`) with its settings' defaults, so adding a method is adding a module."""

from __future__ import annotations

from typing import Any

from ultr.errors import DataError
from ultr.methods.base import LABELS, LISTS, SESSIONS, KnownSources, Method, Parts
from ultr.registry import discover

__all__ = ["LABELS", "LISTS", "SESSIONS", "KnownSources", "Method", "Parts", "default_settings", "get", "names"]


REGISTRY: dict[str, Method] = discover(__name__, __path__, lambda m: m.name)


def names() -> list[str]:
    return list(REGISTRY)


def default_settings() -> dict[str, dict[str, Any]]:
    """Every method's settings block, as the config's `algorithm` group gets it."""
    return {name: dict(m.defaults) for name, m in REGISTRY.items()}


def get(name: str) -> Method:
    if name not in REGISTRY:
        raise DataError(f"method {name!r} is unknown; available: {names()}")
    return REGISTRY[name]
