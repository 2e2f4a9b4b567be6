"""The learning methods, looked up by name: each module of this package defines one `METHOD`
(a `ultr.methods.base.Method`), so adding a method is adding a module (plus its config block in
conf/algorithm/default.yaml)."""

from __future__ import annotations

import importlib
import pkgutil

from ultr.errors import DataError
from ultr.methods.base import LABELS, LISTS, SESSIONS, KnownSources, Method, Parts

__all__ = ["LABELS", "LISTS", "SESSIONS", "KnownSources", "Method", "Parts", "get", "names"]


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


def get(name: str) -> Method:
    if name not in REGISTRY:
        raise DataError(f"method {name!r} is unknown; available: {names()}")
    return REGISTRY[name]
