"""Click models behind one interface: given graded labels [N, K], 1-based positions [N, K], a mask
and a NumPy PRNG, return clicks [N, K] (int8). Each also gives its closed-form click probability so
property tests can check the sampler, and its examination curve (the true propensities)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

from ultr.errors import DataError

# Eye-tracking examination probabilities of positions 1..10 (Joachims et al. 2005), used by the
# field's standard PBM simulation (Ai et al. 2018; ULTRA).
EYE_TRACKING_THETA = (0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06)


class ClickModel(Protocol):
    def examination(self, positions: np.ndarray) -> np.ndarray:
        """Position-only examination curve where the model has one (PBM-like); see examination_probability."""
        ...

    def examination_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """P(examined) per item [N, K] given the whole list (cascade-type models depend on items above)."""
        ...

    def click_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Closed-form marginal P(click) per item [N, K]."""
        ...

    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


def graded_relevance(labels: np.ndarray, y_max: int, eps_neg: float, eps_pos: float) -> np.ndarray:
    """P(click | examined, y) = eps_neg + (eps_pos - eps_neg) (2^y - 1) / (2^y_max - 1)."""
    y = np.clip(labels, 0, y_max).astype(np.float64)
    return eps_neg + (eps_pos - eps_neg) * (np.exp2(y) - 1.0) / (2.0**y_max - 1.0)


def _theta(positions: np.ndarray, curve: str, eta: float) -> np.ndarray:
    if curve == "inverse":
        return (1.0 / np.maximum(positions, 1)) ** eta
    theta = np.asarray(EYE_TRACKING_THETA)
    return theta[np.clip(positions, 1, len(theta)) - 1] ** eta


class _PositionOnly:
    """Examination depends on the position alone: P(click) = examination(k) * attraction(label)."""

    def examination_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.where(mask, self.examination(positions), 0.0)

    def click_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        p = self.examination(positions) * graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos)
        return p if mask is None else np.where(mask, p, 0.0)


@dataclass(frozen=True)
class PositionBasedModel(_PositionOnly):
    """PBM: click = examined(position) AND attracted(label), independent Bernoulli draws.

    examination(k) = theta_k ** eta with eye-tracking theta (positions past 10 reuse the last value),
    or (1/k) ** eta with curve="inverse".
    """

    y_max: int
    eta: float = 1.0
    eps_neg: float = 0.1
    eps_pos: float = 1.0
    curve: str = "eye_tracking"
    theta: tuple[float, ...] | None = None  # examination per position (fitted on a log), replaces `curve`

    def __post_init__(self) -> None:
        if self.curve not in ("eye_tracking", "inverse"):
            raise DataError(f"click_model.curve={self.curve!r}; use eye_tracking or inverse")
        if self.y_max < 1:
            raise DataError(f"y_max={self.y_max}: the data needs at least one relevant grade")

    def examination(self, positions: np.ndarray) -> np.ndarray:
        if self.theta is not None:
            t = np.asarray(self.theta)
            return t[np.clip(np.asarray(positions), 1, len(t)) - 1] ** self.eta
        return _theta(np.asarray(positions), self.curve, self.eta)

    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # One uniform per item: P(u < e * r) equals the product of two independent Bernoullis.
        p = self.click_probability(labels, positions)
        u = rng.random(p.shape)
        return ((u < p) & mask).astype(np.int8)


class _ExamineThenAttract:
    """P(click) = P(examined | list) * attraction(label): shared by the list-dependent models."""

    def click_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        mask = np.ones(labels.shape, bool) if mask is None else mask
        r = graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos)
        return self.examination_probability(labels, positions, mask) * np.where(mask, r, 0.0)


@dataclass(frozen=True)
class CascadeModel(_ExamineThenAttract):
    """Cascade model (Craswell et al., WSDM 2008): the user scans top-down, clicks an item with
    its attraction probability and stops at the first click. P(click_k) = r_k prod_{j<k} (1 - r_j).
    The chain models below differ only in how likely the user goes on after a click and after a skip."""

    y_max: int
    eps_neg: float = 0.1
    eps_pos: float = 1.0

    def _after_click(self, labels: np.ndarray, r: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return np.zeros(r.shape)

    def _after_skip(self, labels: np.ndarray, r: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return np.ones(r.shape)

    def examination(self, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError("cascade examination depends on the list; use examination_probability")

    def examination_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        r = np.where(mask, graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos), 0.0)
        step = (1.0 - r) * self._after_skip(labels, r, positions) + r * self._after_click(labels, r, positions)
        cont = np.where(mask, step, 1.0)
        before = np.cumprod(np.concatenate([np.ones_like(cont[..., :1]), cont[..., :-1]], axis=-1), axis=-1)
        return np.where(mask, before, 0.0)

    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        r = np.where(mask, graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos), 0.0)
        u_click, u_cont = rng.random(r.shape), rng.random(r.shape)
        after_click, after_skip = self._after_click(labels, r, positions), self._after_skip(labels, r, positions)
        clicks = np.zeros(r.shape, np.int8)
        examining = np.ones(r.shape[0], bool)
        for k in range(r.shape[1]):  # a loop over the K positions only; vectorised over sessions
            c = examining & (u_click[:, k] < r[:, k])
            clicks[:, k] = c
            # one uniform per slot decides whether the user goes on, after a click or after a skip
            examining &= np.where(c, u_cont[:, k] < after_click[:, k], u_cont[:, k] < after_skip[:, k])
        return clicks


@dataclass(frozen=True)
class DependentClickModel(CascadeModel):
    """DCM (Guo, Liu, Wang, WSDM 2009): like cascade, but after a click at position k the user
    goes on with probability lambda_k (default 1 - 0.1 k, floor 0.1)."""

    lambdas: tuple[float, ...] | None = None

    def _lambda(self, positions: np.ndarray) -> np.ndarray:
        if self.lambdas is None:
            return np.clip(1.0 - 0.1 * positions, 0.1, 1.0)
        lam = np.asarray(self.lambdas)
        return lam[np.clip(positions, 1, len(lam)) - 1]

    def _after_click(self, labels, r, positions):
        return np.broadcast_to(self._lambda(positions), r.shape)


@dataclass(frozen=True)
class DynamicBayesianNetwork(CascadeModel):
    """DBN (Chapelle and Zhang, WWW 2009): a click satisfies the user with s(label), an
    unsatisfied user goes on with gamma. s(y) = sat_neg + (sat_pos - sat_neg) (2^y - 1) / (2^y_max - 1),
    the attraction mapping with its own end points."""

    gamma: float = 0.9
    sat_neg: float = 0.0
    sat_pos: float = 1.0

    def _after_click(self, labels, r, positions):
        return self.gamma * (1.0 - graded_relevance(labels, self.y_max, self.sat_neg, self.sat_pos))

    def _after_skip(self, labels, r, positions):
        return np.full(r.shape, self.gamma)


@dataclass(frozen=True)
class ClickChainModel(CascadeModel):
    """CCM (Guo et al., WWW 2009): after a skip the user goes on with tau_1, after a click on an
    item of attraction r with tau_2 (1 - r) + tau_3 r."""

    tau: tuple[float, float, float] = (0.9, 0.5, 0.1)

    def _after_click(self, labels, r, positions):
        return self.tau[1] * (1.0 - r) + self.tau[2] * r

    def _after_skip(self, labels, r, positions):
        return np.full(r.shape, self.tau[0])


@dataclass(frozen=True)
class UserBrowsingModel(_ExamineThenAttract):
    """UBM (Dupret & Piwowarski, SIGIR 2008): examination depends on the position k and the
    distance d to the previous click (d = k when none): gamma_{k,d} = theta_k^eta * decay^(d-1)."""

    y_max: int
    eta: float = 1.0
    decay: float = 0.9
    eps_neg: float = 0.1
    eps_pos: float = 1.0
    curve: str = "eye_tracking"
    table: tuple[tuple[float, ...], ...] | None = None  # gamma[k-1][d-1] (fitted on a log; ** eta), replaces theta and decay

    def examination(self, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError("UBM examination depends on earlier clicks; use examination_probability")

    def _gamma(self, k: np.ndarray, d: np.ndarray) -> np.ndarray:
        if self.table is not None:
            g = np.asarray(self.table)
            return g[np.clip(np.asarray(k, np.int64), 1, g.shape[0]) - 1, np.clip(np.asarray(d, np.int64), 1, g.shape[1]) - 1] ** self.eta
        return _theta(k, self.curve, self.eta) * self.decay ** (d - 1)

    def examination_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Exact marginal by dynamic programming over the position of the last click (K^2 work)."""
        r = np.where(mask, graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos), 0.0)
        n, K = r.shape
        last = np.zeros((n, K + 1))  # P(last click so far at slot j), j = 0 means no click yet
        last[:, 0] = 1.0
        exam = np.zeros((n, K))
        # position of the last click for each state j (0 = none yet: distance counts from the top)
        last_pos = np.concatenate([np.zeros((n, 1)), positions.astype(float)], axis=1)
        for k in range(K):
            pos = positions[:, k]
            g = self._gamma(pos[:, None], np.maximum(pos[:, None] - last_pos, 1))
            valid = np.arange(K + 1)[None, :] <= k
            e = np.sum(np.where(valid, last * g, 0.0), axis=1)
            exam[:, k] = e
            click_from = np.where(valid, last * g, 0.0) * r[:, k : k + 1]  # P(last=j and click at k)
            last = np.where(valid, last - click_from, last)
            last[:, k + 1] = click_from.sum(axis=1)
        return np.where(mask, exam, 0.0)

    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        r = np.where(mask, graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos), 0.0)
        u = rng.random(r.shape)
        clicks = np.zeros(r.shape, np.int8)
        last_pos = np.zeros(r.shape[0])
        for k in range(r.shape[1]):
            pos = positions[:, k]
            p = self._gamma(pos, np.maximum(pos - last_pos, 1)) * r[:, k]
            c = (u[:, k] < p) & mask[:, k]
            clicks[:, k] = c
            last_pos = np.where(c, pos, last_pos)
        return clicks


@dataclass(frozen=True)
class TrustBiasModel:
    """Trust bias (Agarwal et al., WWW 2019; Vardasbi et al., CIKM 2020): an examined item is
    clicked with eps+_k if relevant and eps-_k if not, both depending on the position:
    P(click) = theta_k (eps-_k + (eps+_k - eps-_k) P(R=1|y)) = alpha_k P(R=1|y) + beta_k,
    with P(R=1|y) = (2^y - 1) / (2^y_max - 1). Defaults eps+_k = 1 - (k+1)/100, eps-_k = 0.65/k."""

    y_max: int
    eta: float = 1.0
    curve: str = "eye_tracking"
    eps_pos: tuple[float, ...] | None = None
    eps_neg: tuple[float, ...] | None = None

    def _eps(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.maximum(positions, 1)
        pos = 1.0 - (k + 1) / 100.0 if self.eps_pos is None else np.asarray(self.eps_pos)[np.clip(k, 1, len(self.eps_pos)) - 1]
        neg = 0.65 / k if self.eps_neg is None else np.asarray(self.eps_neg)[np.clip(k, 1, len(self.eps_neg)) - 1]
        return pos, neg

    def examination(self, positions: np.ndarray) -> np.ndarray:
        return _theta(np.asarray(positions), self.curve, self.eta)

    def affine(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(alpha_k, beta_k) of P(click) = alpha_k P(R=1) + beta_k: what affine correction divides out."""
        theta = self.examination(positions)
        pos, neg = self._eps(np.asarray(positions))
        return theta * (pos - neg), theta * neg

    def examination_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.where(mask, self.examination(positions), 0.0)

    def click_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        alpha, beta = self.affine(positions)
        p = alpha * graded_relevance(labels, self.y_max, 0.0, 1.0) + beta
        return p if mask is None else np.where(mask, p, 0.0)

    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return ((rng.random(labels.shape) < self.click_probability(labels, positions)) & mask).astype(np.int8)


@dataclass(frozen=True)
class MixturePBM(_PositionOnly):
    """Users of different bias severity: each session draws eta from `etas` with `weights`."""

    y_max: int
    etas: tuple[float, ...] = (0.5, 1.0, 2.0)
    weights: tuple[float, ...] | None = None
    eps_neg: float = 0.1
    eps_pos: float = 1.0
    curve: str = "eye_tracking"

    def _w(self) -> np.ndarray:
        w = np.ones(len(self.etas)) if self.weights is None else np.asarray(self.weights, dtype=float)
        return w / w.sum()

    def examination(self, positions: np.ndarray) -> np.ndarray:
        return sum(w * _theta(np.asarray(positions), self.curve, e) for w, e in zip(self._w(), self.etas))


    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        eta = np.asarray(self.etas)[rng.choice(len(self.etas), size=labels.shape[0], p=self._w())]
        exam = _theta(positions, self.curve, 1.0) ** eta[:, None]
        p = exam * graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos)
        return ((rng.random(labels.shape) < p) & mask).astype(np.int8)


@dataclass(frozen=True)
class MatrixClickModel:
    """Click probability looked up by (label, position): matrix[y][k-1] (positions past the
    matrix reuse its last column). Examination is read as the column's ratio to column 1 at the
    top label, which is exact when the matrix factorises (PBM)."""

    y_max: int
    matrix: tuple[tuple[float, ...], ...] = ()

    def _m(self) -> np.ndarray:
        m = np.asarray(self.matrix, dtype=float)
        if m.ndim != 2 or m.shape[0] < self.y_max + 1:
            raise DataError(f"click_model.matrix needs {self.y_max + 1} rows (labels 0..{self.y_max}) of per-position click probabilities")
        return m

    def examination(self, positions: np.ndarray) -> np.ndarray:
        m = self._m()
        return m[-1, np.clip(np.asarray(positions), 1, m.shape[1]) - 1] / m[-1, 0]

    def examination_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.where(mask, self.examination(positions), 0.0)

    def click_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        m = self._m()
        p = m[np.clip(labels, 0, self.y_max), np.clip(positions, 1, m.shape[1]) - 1]
        return p if mask is None else np.where(mask, p, 0.0)

    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return ((rng.random(labels.shape) < self.click_probability(labels, positions)) & mask).astype(np.int8)


MODELS = {
    "pbm": PositionBasedModel, "cascade": CascadeModel, "dcm": DependentClickModel, "ubm": UserBrowsingModel,
    "dbn": DynamicBayesianNetwork, "ccm": ClickChainModel,
    "trust": TrustBiasModel, "mixture": MixturePBM, "matrix": MatrixClickModel,
}


def _values(v: Any) -> np.ndarray:
    return np.asarray([] if v is None else v, dtype=np.float64).reshape(-1)


def check_click_model_params(params: Mapping[str, Any]) -> None:
    """Severities are finite and >= 0; probabilities lie in [0, 1] with eps- <= eps+ (otherwise
    examination or click probabilities leave [0, 1] and the simulator samples nonsense)."""
    for key in ("eta", "etas"):
        v = _values(params.get(key))
        if v.size and not (np.isfinite(v).all() and (v >= 0).all()):
            raise DataError(f"click_model.{key}={params[key]}: the bias severity must be finite and >= 0 (0 = no position bias)")
    for key in ("eps_neg", "eps_pos", "decay", "lambdas", "matrix", "theta", "table", "gamma", "tau", "sat_neg", "sat_pos"):
        v = _values(params.get(key))
        if v.size and not (np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()):
            raise DataError(f"click_model.{key}={params[key]}: probabilities must lie in [0, 1]")
    neg, pos = _values(params.get("eps_neg")), _values(params.get("eps_pos"))
    if neg.size and pos.size and (neg.size == pos.size or 1 in (neg.size, pos.size)) and (neg > pos).any():
        raise DataError(f"click_model.eps_neg={params['eps_neg']} exceeds eps_pos={params['eps_pos']}: "
                        "a non-relevant document cannot be clicked more often than a relevant one; swap them")


def make_click_model(name: str, *, y_max: int, **params) -> ClickModel:
    if name not in MODELS:
        raise DataError(f"click_model.name={name!r} is unknown; available: {sorted(MODELS)}")
    check_click_model_params(params)
    params = {k: tuple(tuple(r) if isinstance(r, (list, tuple)) else r for r in v) if isinstance(v, list) else v for k, v in params.items()}
    return MODELS[name](y_max=y_max, **params)


def fitted_settings(cm: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """`click_model=fitted click_model.path=DIR/<model>`: the simulator and settings that replay the
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
    accepted = MODELS[name].__dataclass_fields__
    own = {k: v for k, v in cm.items() if k in accepted and k != "y_max" and v is not None}
    return name, {**own, **spec}


def click_model_inputs(cm: Mapping[str, Any]) -> list[Path]:
    """The files a click-model config reads (a fitted model's model.json): a cache key covers them."""
    if cm.get("name") != "fitted" or not cm.get("path"):
        return []
    path = Path(str(cm["path"])) / "model.json"
    return [path] if path.is_file() else []


def click_model_from_config(cm: Mapping[str, Any], features: Any) -> ClickModel:
    """The `click_model` config block on a features table (its largest label sets the grade scale)."""
    name, params = (fitted_settings(cm) if cm["name"] == "fitted" else
                    (cm["name"], {k: v for k, v in cm.items() if k != "name"}))
    y_max = int(features.labels[features.labels >= 0].max())
    return make_click_model(name, y_max=y_max, **params)
