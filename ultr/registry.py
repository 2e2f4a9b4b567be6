"""Module discovery for the method registries (offline `ultr.methods`, online `ultr.online.methods`):
every module of a package that defines `METHOD` adds it under its key, so adding a method is adding
a module. Modules named `base` or starting with `_` hold shared code and are skipped."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Iterable


def discover(package: str, path: Iterable[str], key: Callable[[Any], str]) -> dict[str, Any]:
    """{key(METHOD): METHOD} over the package's modules, sorted by key."""
    found = {}
    for info in pkgutil.iter_modules(path):
        if info.name == "base" or info.name.startswith("_"):
            continue
        method = getattr(importlib.import_module(f"{package}.{info.name}"), "METHOD", None)
        if method is not None:
            found[key(method)] = method
    return dict(sorted(found.items()))
