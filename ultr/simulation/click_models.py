"""Click models behind one interface: given graded labels [N, K], 1-based positions [N, K], a mask
and a NumPy PRNG, return clicks [N, K] (int8). Each also gives its closed-form click probability so
property tests can check the sampler, and its examination curve (the true propensities)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# Eye-tracking examination probabilities of positions 1..10 (Joachims et al. 2005), used by the
# field's standard PBM simulation (Ai et al. 2018; ULTRA).
EYE_TRACKING_THETA = (0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06)


class ClickModel(Protocol):
    def examination(self, positions: np.ndarray) -> np.ndarray: ...

    def click_probability(self, labels: np.ndarray, positions: np.ndarray) -> np.ndarray: ...

    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


def graded_relevance(labels: np.ndarray, y_max: int, eps_neg: float, eps_pos: float) -> np.ndarray:
    """P(click | examined, y) = eps_neg + (eps_pos - eps_neg) (2^y - 1) / (2^y_max - 1)."""
    y = np.clip(labels, 0, y_max).astype(np.float64)
    return eps_neg + (eps_pos - eps_neg) * (np.exp2(y) - 1.0) / (2.0**y_max - 1.0)


@dataclass(frozen=True)
class PositionBasedModel:
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
            raise ValueError(f"click_model.curve={self.curve!r}; use eye_tracking or inverse")
        if self.y_max < 1:
            raise ValueError(f"y_max={self.y_max}: the data needs at least one relevant grade")

    def examination(self, positions: np.ndarray) -> np.ndarray:
        positions = np.asarray(positions)
        if self.curve == "inverse":
            base = 1.0 / np.maximum(positions, 1)
        else:
            theta = np.asarray(EYE_TRACKING_THETA)
            base = theta[np.clip(positions, 1, len(theta)) - 1]
        return base**self.eta

    def click_probability(self, labels: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return self.examination(positions) * graded_relevance(labels, self.y_max, self.eps_neg, self.eps_pos)

    def sample(self, labels: np.ndarray, positions: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # One uniform per item: P(u < e * r) equals the product of two independent Bernoullis.
        p = self.click_probability(labels, positions)
        u = rng.random(p.shape)
        return ((u < p) & mask).astype(np.int8)


def make_click_model(name: str, *, y_max: int, **params: float | str) -> ClickModel:
    models = {"pbm": PositionBasedModel}
    if name not in models:
        raise ValueError(f"click_model.name={name!r} is unknown; available: {sorted(models)}")
    return models[name](y_max=y_max, **params)
