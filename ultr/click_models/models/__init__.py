"""The click models, one module per model, looked up by name (`key`)."""

from __future__ import annotations

import importlib
import pkgutil

from ultr.click_models.base import ClickModel
from ultr.errors import DataError

def _discover() -> dict[str, type[ClickModel]]:
    found: dict[str, type[ClickModel]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, ClickModel) and obj.__module__ == module.__name__ and obj.key:
                found[obj.key] = obj
    return found


MODELS = _discover()


def names() -> list[str]:
    return sorted(MODELS)


def get(name: str) -> type[ClickModel]:
    if name not in MODELS:
        raise DataError(f"click model {name!r} is unknown; known models: {', '.join(names())}")
    return MODELS[name]
