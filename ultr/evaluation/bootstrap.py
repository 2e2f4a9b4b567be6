"""Bootstrap over queries: the mean of per-query values, its percentile interval, and paired
differences between rankers from the same resamples (so "B beats A" has its own interval, narrower
than the two rankers' intervals suggest when their per-query values move together).

A replicate draws Q queries with replacement; its value is the mean over the drawn queries where
the metric is defined (`valid`: nDCG needs a click). The resample counts are a [b, Q] matrix and a
replicate's means for all rankers are one matrix product, in chunks of replicates so memory stays
bounded whatever the number of replicates."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 1 << 24  # resample counts held at once (replicates x queries)


@dataclass
class Interval:
    estimate: np.ndarray  # [R]: mean over valid queries
    low: np.ndarray  # [R]
    high: np.ndarray  # [R]
    replicates: np.ndarray  # [B, R]: each replicate's mean (NaN where it drew no valid query)


def resample_counts(num_queries: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """[replicates, Q] how often each query is drawn in each replicate (each row sums to Q)."""
    draws = rng.integers(0, num_queries, size=(replicates, num_queries))
    offset = (np.arange(replicates) * num_queries)[:, None]
    return np.bincount((draws + offset).ravel(), minlength=replicates * num_queries).reshape(replicates, num_queries)


def replicate_means(items: list[tuple[np.ndarray, np.ndarray]], replicates: int, seed: int) -> list[np.ndarray]:
    """For each (values [R, Q], valid [Q]) of `items` (all over the same Q queries): [B, R] bootstrap
    means over the valid queries. Every item sees the same resamples, drawn once: the counts are
    the costly part, and shared draws make the estimates' intervals comparable."""
    q = items[0][0].shape[1]
    prepared = [(np.where(valid[None, :], values, 0.0).astype(np.float64), valid.astype(np.float64)) for values, valid in items]
    rng = np.random.default_rng(seed)
    outs = [np.empty((replicates, v.shape[0])) for v, _ in prepared]
    step = max(1, CHUNK // max(q, 1))
    for lo in range(0, replicates, step):
        n = min(step, replicates - lo)
        counts = resample_counts(q, n, rng).astype(np.float64)
        for out, (values, valid) in zip(outs, prepared):
            with np.errstate(invalid="ignore", divide="ignore"):
                out[lo:lo + n] = (counts @ values.T) / (counts @ valid)[:, None]
    return outs


def intervals(items: list[tuple[np.ndarray, np.ndarray]], replicates: int = 1000, level: float = 0.95, seed: int = 0
              ) -> list[Interval]:
    """Percentile intervals of the mean over valid queries, for each ranker (row of each item's values)."""
    out = []
    for (values, valid), reps in zip(items, replicate_means(items, replicates, seed)):
        point = np.where(valid[None, :], values, 0.0).sum(axis=1) / max(int(valid.sum()), 1)
        low, high = percentile_bounds(reps, level)
        out.append(Interval(point, low, high, reps))
    return out


def interval(values: np.ndarray, valid: np.ndarray, replicates: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile interval of the mean over valid queries, for each ranker (row of `values`)."""
    return intervals([(values, valid)], replicates, level, seed)[0]


def percentile_bounds(reps: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    tail = 100 * (1 - level) / 2
    return np.nanpercentile(reps, tail, axis=0), np.nanpercentile(reps, 100 - tail, axis=0)


def paired(iv: Interval, a: int, b: int, level: float = 0.95) -> dict[str, float]:
    """Ranker b minus ranker a: the difference of the means, its interval from the same replicates,
    and the share of replicates where b is not above a (a one-sided bootstrap p-value)."""
    d = iv.replicates[:, b] - iv.replicates[:, a]
    low, high = percentile_bounds(d[:, None], level)
    return {"difference": float(iv.estimate[b] - iv.estimate[a]), "low": float(low[0]), "high": float(high[0]),
            "p_not_better": float(np.nanmean(d <= 0))}
