"""Simulated users: a click model's definition with parameters built from graded labels and the
`click_model` config (or a fitted model's globals, replayed), sampled and evaluated in JAX.
The random numbers are NumPy's (one uniform per slot from the simulation's own stream), so a seed
gives the same log on every backend."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import ClickModel
from ultr.click_models.models import MODELS, get
from ultr.errors import DataError


# Sessions per jitted sampling call: calls of any size reuse one compiled shape per list size (the
# last block is padded), and a block's arrays stay small enough for the CPU caches.
SAMPLE_BLOCK = 1 << 16


def gather_params(model: type[ClickModel], tables: dict[str, jax.Array], labels: jax.Array) -> dict[str, jax.Array]:
    """The parameter dict for lists of graded items: per-item tables read at [grade, rank]."""
    ranks = jnp.arange(labels.shape[1])[None, :]
    return {k: (v[labels, ranks] if k in model.pair_tables else v) for k, v in tables.items()}


@partial(jax.jit, static_argnums=0)
def _draw(model: type[ClickModel], tables: dict[str, jax.Array], labels: jax.Array, mask: jax.Array, u: jax.Array) -> jax.Array:
    return model.sample(gather_params(model, tables, labels), mask, u).astype(jnp.int8)


@partial(jax.jit, static_argnums=0)
def _marginal(model: type[ClickModel], p: dict[str, jax.Array], mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    click, exam = model.marginal(p, mask)
    return click * mask, exam * mask


@dataclass
class Simulator:
    """`model` with simulation settings (`model.settings` filled in, plus the grade scale y_max)."""

    model: type[ClickModel]
    settings: dict[str, Any] = field(default_factory=dict)
    _tables: dict[int, dict[str, jax.Array]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.model.key

    @property
    def y_max(self) -> int:
        return int(self.settings["y_max"])

    def tables(self, K: int) -> dict[str, jax.Array]:
        """The parameters for lists of K: per-item tables [grade, rank] (a simulated item's parameters
        depend on its grade and rank alone), the global ones as they are. Built once per K."""
        if K not in self._tables:
            grid = np.repeat(np.arange(self.y_max + 1)[:, None], K, axis=1)
            p = self.model.simulation_params(self.settings, grid, K)
            self._tables[K] = {k: jnp.asarray(v, jnp.float32) for k, v in p.items()}
        return self._tables[K]

    def params(self, labels: np.ndarray) -> dict[str, jax.Array]:
        labels = np.clip(labels, 0, self.y_max).astype(np.int32)
        return gather_params(self.model, self.tables(labels.shape[1]), jnp.asarray(labels))

    def sample(self, labels: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Clicks [N, K] int8 for lists with these labels; `rng` gives one uniform per slot."""
        u = rng.random(labels.shape)  # float64 draws: the same stream as before the JAX definitions
        n, K = labels.shape
        labels = np.clip(labels, 0, self.y_max).astype(np.int32)
        out = np.empty(labels.shape, np.int8)
        for lo in range(0, n, SAMPLE_BLOCK):
            hi = min(n, lo + SAMPLE_BLOCK)
            pad = ((0, SAMPLE_BLOCK - (hi - lo)), (0, 0))  # the last block's padding never clicks: mask False
            block = [np.pad(a[lo:hi], pad) for a in (labels, mask, u)]
            out[lo:hi] = np.asarray(_draw(self.model, self.tables(K), *map(jnp.asarray, block)))[: hi - lo]
        return out

    def click_probability(self, labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The closed-form marginal P(click) per slot [N, K] (float64), 0 on padding."""
        return np.asarray(_marginal(self.model, self.params(labels), jnp.asarray(mask))[0], np.float64)

    def examination_probability(self, labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """P(examined) per slot [N, K] given the whole list (the cascade family depends on items above)."""
        return np.asarray(_marginal(self.model, self.params(labels), jnp.asarray(mask))[1], np.float64)

    def affine(self, K: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Trust bias's (alpha_k, beta_k), ranks 1..K; None for a model without them."""
        if not hasattr(self.model, "affine"):
            return None
        p = self.model.simulation_params(self.settings, np.zeros((1, K), np.int64), K)
        return tuple(np.asarray(v, np.float64) for v in self.model.affine(p))


def _values(v: Any) -> np.ndarray:
    return np.asarray([] if v is None else v, dtype=np.float64).reshape(-1)


def check_click_model_params(params: Mapping[str, Any]) -> None:
    """Severities are finite and >= 0; probabilities lie in [0, 1] with eps- <= eps+ (otherwise
    examination or click probabilities leave [0, 1] and the simulator samples nonsense)."""
    for key in ("eta", "etas"):
        v = _values(params.get(key))
        if v.size and not (np.isfinite(v).all() and (v >= 0).all()):
            raise DataError(f"click_model.{key}={params[key]}: the bias severity must be finite and >= 0 (0 = no position bias)")
    for key in ("eps_neg", "eps_pos", "decay", "lambdas", "matrix", "theta", "table", "gamma", "tau", "sat_neg", "sat_pos",
                "attraction", "satisfaction"):
        v = _values(params.get(key))
        if v.size and not (np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()):
            raise DataError(f"click_model.{key}={params[key]}: probabilities must lie in [0, 1]")
    neg, pos = _values(params.get("eps_neg")), _values(params.get("eps_pos"))
    if neg.size and pos.size and (neg.size == pos.size or 1 in (neg.size, pos.size)) and (neg > pos).any():
        raise DataError(f"click_model.eps_neg={params['eps_neg']} exceeds eps_pos={params['eps_pos']}: "
                        "a non-relevant document cannot be clicked more often than a relevant one; swap them")


def make_click_model(name: str, *, y_max: int, **params: Any) -> Simulator:
    if name not in MODELS:
        raise DataError(f"click_model.name={name!r} is unknown; available: {sorted(MODELS)}")
    model = get(name)
    unknown = sorted(set(params) - set(model.settings))
    if unknown:
        raise DataError(f"click_model.{unknown[0]} is not a setting of click model {name}; its settings: {sorted(model.settings)}")
    if y_max < 1:
        raise DataError(f"y_max={y_max}: the data needs at least one relevant grade")
    check_click_model_params(params)
    given = {k: v for k, v in params.items() if v is not None}
    sim = Simulator(model, {**model.settings, **given, "y_max": int(y_max)})
    sim.params(np.zeros((1, 10), np.int64))  # settings that cannot build parameters fail here, before any data is read
    return sim


def fitted_settings(cm: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """`click_model=fitted click_model.path=DIR/<model>`: the model and settings that replay the
    global parameters a click model learned on a real log, as its model.json names them
    ("simulator": {"name": ..., settings}; written by `python -m pipelines.click_models`).
    Per-document attraction (and DBN's satisfaction) come from the labels as in every simulation;
    what the log taught is how users examine and go on."""
    path = Path(str(cm.get("path") or ""))
    if not cm.get("path") or not (path / "model.json").is_file():
        raise DataError(f"{cm.get('path')}: holds no fitted click model (no model.json); point click_model.path at "
                        "DIR/<model> of a `python -m pipelines.click_models` run, e.g. click_model.path=DIR/ubm")
    spec = dict(json.loads((path / "model.json").read_text())["simulator"])
    name = spec.pop("name")
    own = {k: v for k, v in cm.items() if k in get(name).settings and v is not None}
    return name, {**own, **spec}


def click_model_inputs(cm: Mapping[str, Any]) -> list[Path]:
    """The files a click-model config reads (a fitted model's model.json): a cache key covers them."""
    if cm.get("name") != "fitted" or not cm.get("path"):
        return []
    path = Path(str(cm["path"])) / "model.json"
    return [path] if path.is_file() else []


def click_model_from_config(cm: Mapping[str, Any], features: Any) -> Simulator:
    """The `click_model` config block on a features table (its largest label sets the grade scale)."""
    name, params = (fitted_settings(cm) if cm["name"] == "fitted" else
                    (cm["name"], {k: v for k, v in cm.items() if k != "name"}))
    y_max = int(features.labels[features.labels >= 0].max())
    return make_click_model(name, y_max=y_max, **params)
