"""Closed-form EM, which `fit.method=em` runs instead of gradient descent, for comparison.

PBM and UBM: the click is one examination times one attraction, the examination fixed by observed
quantities (rank; rank and distance to the last click). The E-step needs only counts per (pair
row, examination key): impressions n and clicks c (Chuklin et al. 2015, sec. 4.2).
  E-step  for the n - c skips of a cell: P(E=1 | C=0) = e (1 - a) / (1 - e a), P(A=1 | C=0) = a (1 - e) / (1 - e a)
  M-step  e_key = (c + skips P(E=1 | C=0)) summed over rows / n;  a_row likewise over keys

DBN and SDBN (the model's `em_posteriors`, em_dbn.py): each pass over the log computes the exact
posteriors per slot, then a_row = sum P(A=1 | clicks) / impressions, s_row = sum P(S=1 | clicks) /
clicks, gamma = expected continuations / expected chances to continue."""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np

from ultr.click_models.module import FitModule as ClickModel
from ultr.click_models.data import SessionLog
from ultr.click_models.fit import FitSettings, Fitted, init_params
from ultr.errors import DataError
from ultr.estimation.propensity import exam_attraction_em


def _cells(model: ClickModel, log: SessionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, key, impressions, clicks) per distinct cell, reduced chunk by chunk."""
    K = model.positions
    parts = []
    for rows, click, mask in log.chunks():
        key = model.model.em_keys(click)
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


def _pair_table(p: np.ndarray, weights: np.ndarray) -> dict[str, jnp.ndarray]:
    """EM has no shared baseline: it is the weighted mean logit of the rows with evidence, so
    unseen pairs read the typical pair; rows without evidence stay at it."""
    logit = np.asarray(_logit(p))
    baseline = float((weights * logit).sum() / max(weights.sum(), 1.0))
    return {"baseline": jnp.asarray(baseline, jnp.float32),
            "offsets": jnp.asarray(np.where(weights > 0, logit - baseline, 0.0), jnp.float32)}


def _examination_em(model: ClickModel, train: SessionLog, params: dict, iterations: int) -> tuple[int, int]:
    """(iterations, passes over the log): the counts are read once, EM iterates on them."""
    row, key, n, c = _cells(model, train)
    K = model.positions
    e, a = exam_attraction_em(row, key, n, c, model.rows, K * K, iterations)
    params["attraction"] = _pair_table(a, np.bincount(row, weights=n, minlength=model.rows))
    params["examination"] = _logit(model.model.em_examination(e, K))
    return iterations, 1


def _satisfaction_em(model: ClickModel, train: SessionLog, params: dict, iterations: int,
                     tol: float = 1e-6) -> tuple[int, int]:
    """DBN/SDBN: E-step per chunk from the model's posteriors, M-step by counts; the continuation
    stays 1 where the model fixes it (SDBN)."""
    sig = lambda x: 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))  # noqa: E731
    learns_gamma = "continuation" in params
    a = np.full(model.rows, sig(params["attraction"]["baseline"]))
    s = np.full(model.rows, sig(params["satisfaction"]["baseline"]))
    gamma = float(sig(params["continuation"])) if learns_gamma else 1.0
    for it in range(1, iterations + 1):
        sums = np.zeros((4, model.rows))
        num = den = 0.0
        for rows, click, mask in train.chunks():
            post_a, post_s, go_on, chances = model.model.em_posteriors(a[rows], s[rows], gamma, click, mask)
            r = rows[mask]
            for i, w in enumerate((post_a[mask], post_s[mask], np.ones(r.size), click[mask].astype(np.float64))):
                sums[i] += np.bincount(r, weights=w, minlength=model.rows)
            num, den = num + go_on.sum(), den + chances.sum()
        new_a = np.where(sums[2] > 0, sums[0] / np.maximum(sums[2], 1.0), a)
        new_s = np.where(sums[3] > 0, sums[1] / np.maximum(sums[3], 1.0), s)
        new_gamma = num / max(den, 1e-12) if learns_gamma else 1.0
        change = max(np.abs(new_a - a).max(), np.abs(new_s - s).max(), abs(new_gamma - gamma))
        a, s, gamma = new_a, new_s, new_gamma
        if change < tol:
            break
    params["attraction"] = _pair_table(a, sums[2])
    params["satisfaction"] = _pair_table(s, sums[3])
    if learns_gamma:
        params["continuation"] = _logit(np.asarray(gamma))
    return it, it


def has_closed_form(model: ClickModel) -> bool:
    return model.model.em_keys(np.zeros((1, model.positions), np.int8)) is not None or model.model.em_posteriors is not None


def check_em(model: ClickModel, name: str) -> None:
    if not has_closed_form(model):
        raise DataError(f"click model {name}: fit.method=em has no closed form for it (pbm, ubm, dbn, sdbn have one); "
                        "use fit.method=gradient, or drop it from models")


def fit_em(model: ClickModel, train: SessionLog, s: FitSettings, name: str, iterations: int = 200) -> Fitted:
    check_em(model, name)
    closed = model.model.em_keys(np.zeros((1, model.positions), np.int8)) is not None
    start = time.perf_counter()
    params = init_params(model, 1, s.seed)
    done, passes = (_examination_em if closed else _satisfaction_em)(model, train, params["params"], iterations)
    seconds = time.perf_counter() - start
    return Fitted(params, done, done, seconds, len(train) * passes / max(seconds, 1e-9))
