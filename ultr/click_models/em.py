"""Closed-form EM for the models whose click is one examination times one attraction with the
examination fixed by observed quantities: PBM (rank) and UBM (rank, distance to the last click).
The E-step needs only counts per (pair row, examination key): impressions n and clicks c.

  E-step  for the n - c skips of a cell: P(E=1 | C=0) = e (1 - a) / (1 - e a), P(A=1 | C=0) = a (1 - e) / (1 - e a)
  M-step  e_key = (c + skips P(E=1 | C=0)) summed over rows / n;  a_row likewise over keys
(Chuklin et al. 2015, sec. 4.2). `fit=em` runs this instead of gradient descent, for comparison."""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import ClickModel
from ultr.click_models.data import SessionLog
from ultr.click_models.fit import FitSettings, Fitted, init_params
from ultr.errors import DataError
from ultr.estimation.propensity import exam_attraction_em


def _cells(model: ClickModel, log: SessionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, key, impressions, clicks) per distinct cell, reduced chunk by chunk."""
    K = model.positions
    parts = []
    for rows, click, mask in log.chunks():
        key = model.em_keys(click)
        cell = rows[mask].astype(np.int64) * (K * K) + key[mask]
        uniq, inv = np.unique(cell, return_inverse=True)
        parts.append((uniq, np.bincount(inv).astype(np.float64), np.bincount(inv, weights=click[mask]).astype(np.float64)))
    cell = np.concatenate([p[0] for p in parts])
    uniq, inv = np.unique(cell, return_inverse=True)
    n = np.bincount(inv, weights=np.concatenate([p[1] for p in parts]))
    c = np.bincount(inv, weights=np.concatenate([p[2] for p in parts]))
    return uniq // (K * K), uniq % (K * K), n, c


def _logit(p: np.ndarray) -> jnp.ndarray:
    p = np.clip(np.nan_to_num(p, nan=0.5), 1e-6, 1 - 1e-6)
    return jnp.asarray(np.log(p / (1 - p)), jnp.float32)


def fit_em(model: ClickModel, train: SessionLog, s: FitSettings, name: str, iterations: int = 200) -> Fitted:
    if model.em_keys(np.zeros((1, model.positions), np.int8)) is None:
        raise DataError(f"click model {name}: fit.method=em has no closed form for it (pbm, ubm have one); use fit.method=gradient")
    start = time.perf_counter()
    row, key, n, c = _cells(model, train)
    K = model.positions
    e, a = exam_attraction_em(row, key, n, c, model.rows, K * K, iterations)
    params = init_params(model, 1, s.seed)
    # EM has no shared baseline: it is the impression-weighted mean logit, so unseen pairs read the typical pair.
    logit = np.asarray(_logit(a))
    weights = np.bincount(row, weights=n, minlength=model.rows)
    baseline = float((weights * logit).sum() / max(weights.sum(), 1.0))
    params["params"]["attraction"]["baseline"] = jnp.asarray(baseline, jnp.float32)
    params["params"]["attraction"]["offsets"] = jnp.asarray(logit - baseline, jnp.float32)
    params["params"]["examination"] = _logit(model.em_examination(e, K))
    seconds = time.perf_counter() - start
    return Fitted(params, iterations, iterations, seconds, len(train) / max(seconds, 1e-9))
