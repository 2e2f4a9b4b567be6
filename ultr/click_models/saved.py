"""A fitted click model on disk: DIR/<model>/ holds model.json (what it is, its global parameters
and scores), propensities.json (its examination curve, in the shape the ips_* methods and
experiment sidecars read) and params/ (every parameter, written by orbax)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

from ultr.click_models.models import get
from ultr.click_models.module import FitModule as ClickModel, module
from ultr.click_models.fit import init_params
from ultr.data.io import write_json
from ultr.errors import DataError

logging.getLogger("absl").setLevel(logging.WARNING)


def _lists(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str) else np.asarray(v).tolist() for k, v in tree.items()}


def save(model: ClickModel, params: Any, out: Path, info: Mapping[str, Any], curve: np.ndarray) -> None:
    """Write DIR/<model>/; orbax renames its directory into place when complete, the JSON files are atomic."""
    out.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save((out / "params").absolute(), params, force=True)
        ckpt.wait_until_finished()
    relative = curve / curve[0]
    write_json({"model": model.key, "positions": list(range(1, len(curve) + 1)), "examination": curve.tolist(),
                "relative": relative.tolist(), "source": info.get("source")}, out / "propensities.json")
    write_json({"model": model.key, "rows": model.rows, "positions": model.positions,
                "simulator": _lists(model.model.replay(params["params"])), **info}, out / "model.json")


def model_dir(path: str | Path) -> Path:
    """DIR/<model> holding model.json; a one-line error naming the path otherwise."""
    p = Path(path)
    if not (p / "model.json").is_file():
        raise DataError(f"{p}: holds no fitted click model (no model.json); point at DIR/<model> of a "
                        "`python -m pipelines.click_models` run, e.g. click_model.path=DIR/ubm")
    return p


def load_info(path: str | Path) -> dict[str, Any]:
    return json.loads((model_dir(path) / "model.json").read_text())


def load(path: str | Path) -> tuple[ClickModel, Any]:
    """The fitted model and all its parameters (orbax restore into a freshly initialised tree)."""
    info = load_info(path)
    model = module(get(info["model"]), int(info["rows"]), int(info["positions"]))
    like = init_params(model, 1, 0)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with ocp.StandardCheckpointer() as ckpt:
        return model, ckpt.restore((Path(path) / "params").absolute(), abstract)
