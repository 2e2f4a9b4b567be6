"""The click models, one module per model, looked up by name (`key`). Each is the one definition
used to simulate, fit, replay and learn online (see `ultr.click_models.base`)."""

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
                if obj.key in found:
                    raise RuntimeError(f"click model {obj.key!r} is defined twice: {found[obj.key].__module__} and {module.__name__}")
                found[obj.key] = obj
    return found


MODELS = _discover()


def names(fittable: bool | None = None) -> list[str]:
    """Every model's key, or those `pipelines.click_models` fits (fittable=True)."""
    return sorted(k for k, m in MODELS.items() if fittable is None or m.fittable == fittable)


def get(name: str) -> type[ClickModel]:
    if name not in MODELS:
        raise DataError(f"click model {name!r} is unknown; known models: {', '.join(names())}")
    return MODELS[name]
