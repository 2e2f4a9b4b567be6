"""Propensities for counterfactual estimates, read from any ultr output that holds a curve: the
simulator's truth (`propensities.json` of `pipelines.simulate`), a fitted click model
(`pipelines.click_models` DIR/<model>), `pipelines.estimate_bias` (one of its estimators), or an
experiment run (`propensity.json`, key = a method's label or `true`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ultr.errors import DataError
from ultr.paths import existing


@dataclass
class Propensities:
    alpha: np.ndarray  # examination per position (absolute, or relative to position 1)
    beta: np.ndarray | None  # trust-bias offset per position, where the source has one
    source: str  # what they are, for the report


def read_propensities(source: str | Path, key: str | None = None) -> Propensities:
    """Propensities from any ultr output that holds a curve (see the module docstring)."""
    path = existing(source, "propensity.source")
    if path.is_dir():
        # An experiment run holds both: its learned curves (propensity.json, picked by key) and the
        # log's sidecar (propensities.json: the simulator's truth, empty for a given log).
        names = ("propensity.json", "propensities.json") if key else ("propensities.json", "propensity.json")
        found = [path / n for n in names if (path / n).is_file() and _has_curve(path / n)]
        if not found:
            raise DataError(f"propensity.source={source}: no propensities.json or propensity.json in that folder; point at "
                            "a pipelines.simulate, estimate_bias, click_models DIR/<model> or experiment output")
        path = found[0]
    data = json.loads(path.read_text())
    if "estimators" in data:  # pipelines.estimate_bias
        return _pick(data["estimators"], key, path, "estimate_bias")
    if "estimated" in data:  # pipelines.experiment: learned curves per method (+ the simulator's)
        curves = {**data["estimated"], **({"true": data["true"]} if data.get("true") else {})}
        return _pick(curves, key, path, "experiment run")
    if "examination" in data:
        what = f"fitted click model {data['model']}" if data.get("model") else "simulator truth"
        affine = data.get("affine")
        if affine:
            return Propensities(np.asarray(affine["alpha"], float), np.asarray(affine["beta"], float), f"{what} (affine) ({path})")
        return Propensities(np.asarray(data["examination"], float), None, f"{what} ({path})")
    raise DataError(f"{path}: holds no propensity curve (no 'estimators', 'estimated' or 'examination')")


def _has_curve(path: Path) -> bool:
    return bool({"estimators", "estimated", "examination"} & set(json.loads(path.read_text())))


def _pick(curves: Mapping[str, Any], key: str | None, path: Path, what: str) -> Propensities:
    if key is None and len(curves) == 1:
        key = next(iter(curves))
    if key not in curves or curves[key] is None or any(v is None for v in curves[key]):
        raise DataError(f"{path}: choose a curve with propensity.key=<one of {sorted(curves)}> (complete curves only)")
    return Propensities(np.asarray(curves[key], float), None, f"{what} {key} ({path})")
