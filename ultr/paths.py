"""Resolve user paths: relative paths work from the current directory or from the project root,
so `make run` and `python -m pipelines.x` behave the same wherever the Hydra run dir is."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = PROJECT_ROOT / p
    return candidate if candidate.exists() else p
