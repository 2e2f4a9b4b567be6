"""Click models behind one interface: given graded labels [N, K], 1-based positions [N, K], a mask
and a NumPy PRNG, return clicks [N, K] (int8). Each also gives its closed-form click probability so
property tests can check the sampler, and its examination curve (the true propensities)."""

from __future__ import annotations

from dataclasses import dataclass
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

    def __post_init__(self) -> None:
        if self.curve not in ("eye_tracking", "inverse"):
            raise DataError(f"click_model.curve={self.curve!r}; use eye_tracking or inverse")
        if self.y_max < 1:
            raise DataError(f"y_max={self.y_max}: the data needs at least one relevant grade")

    def examination(self, positions: np.ndarray) -> np.ndarray:
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
    its attraction probability and stops at the first click. P(click_k) = r_k prod_{j<k} (1 - r_j)."""

    y_max: int
    eps_neg: float = 0.1
    eps_pos: float = 1.0

    def _continue(self, r: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return 1.0 - r  # stop after a click, go on after a skip

    def examination(self, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError("cascade examination depends on the list; use examination_probability")

    def examination_probability(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray) -> np.ndarray:
        r = np.where(mask, graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos), 0.0)
        cont = np.where(mask, self._continue(r, positions), 1.0)
        before = np.cumprod(np.concatenate([np.ones_like(cont[..., :1]), cont[..., :-1]], axis=-1), axis=-1)
        return np.where(mask, before, 0.0)

    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        r = np.where(mask, graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos), 0.0)
        u_click, u_cont = rng.random(r.shape), rng.random(r.shape)
        clicks = np.zeros(r.shape, np.int8)
        examining = np.ones(r.shape[0], bool)
        for k in range(r.shape[1]):  # a loop over the K positions only; vectorised over sessions
            c = examining & (u_click[:, k] < r[:, k])
            clicks[:, k] = c
            keep_going = np.where(c, u_cont[:, k] < self._stay(positions[:, k]), True)
            examining &= keep_going
        return clicks

    def _stay(self, positions: np.ndarray) -> np.ndarray:
        return np.zeros(positions.shape)


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

    def _continue(self, r: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return 1.0 - r + r * self._lambda(positions)

    def _stay(self, positions: np.ndarray) -> np.ndarray:
        return self._lambda(positions)


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

    def examination(self, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError("UBM examination depends on earlier clicks; use examination_probability")

    def _gamma(self, k: np.ndarray, d: np.ndarray) -> np.ndarray:
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
    for key in ("eps_neg", "eps_pos", "decay", "lambdas", "matrix"):
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


def click_model_from_config(cm: Mapping[str, Any], features: Any) -> ClickModel:
    """The `click_model` config block on a features table (its largest label sets the grade scale)."""
    params = {k: v for k, v in cm.items() if k != "name"}
    y_max = int(features.labels[features.labels >= 0].max())
    return make_click_model(cm["name"], y_max=y_max, **params)
