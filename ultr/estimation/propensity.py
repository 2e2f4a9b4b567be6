"""Position-bias (examination) estimators on session tables, all returning the curve relative to
position 1 (NaN where the log carries no evidence for a position).

- PBM by EM (Chuklin, Markov, de Rijke: Click Models for Web Search, 2015, ch. 4; the
  examination/attractiveness factorisation of Craswell et al. 2008), one attractiveness per
  (query, document) pair.
- Intervention harvesting (Agarwal et al., "Estimating Position Bias without Intrusive
  Interventions", WSDM 2019): the same (query, document) shown at two positions k, k' in
  different sessions gives, under PBM, E[ctr_k] / E[ctr_k'] = p_k / p_k'. Pairs are weighted by
  the harmonic mean of their impressions at the two positions. `adjacent` chains the ratios of
  neighbouring positions; `all_pairs` fits log p to every pair's log-ratio by weighted least squares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ultr.data.batching import Sessions


@dataclass
class ImpressionCounts:
    """Impressions n and clicks c per (item, position), position 0-based."""

    item: np.ndarray
    position: np.ndarray
    n: np.ndarray
    c: np.ndarray
    num_items: int
    list_size: int


def count_impressions(s: Sessions) -> ImpressionCounts:
    m = s.mask
    item = s.doc_index[m].astype(np.int64)
    pos = np.broadcast_to(np.arange(s.list_size), m.shape)[m]
    click = s.click[m].astype(np.int64)
    num_items = int(item.max()) + 1 if len(item) else 0
    key = item * s.list_size + pos
    uk, inv = np.unique(key, return_inverse=True)
    return ImpressionCounts(
        item=uk // s.list_size, position=uk % s.list_size,
        n=np.bincount(inv).astype(np.float64), c=np.bincount(inv, weights=click).astype(np.float64),
        num_items=num_items, list_size=s.list_size,
    )


def exam_attraction_em(row: np.ndarray, key: np.ndarray, n: np.ndarray, c: np.ndarray, rows: int, keys: int,
                       iterations: int = 200, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray]:
    """EM for P(click) = e[key] a[row] on aggregated cells; returns (e [keys], a [rows])."""
    e, a = np.full(keys, 0.5), np.full(rows, 0.5)
    n_key = np.bincount(key, weights=n, minlength=keys)
    n_row = np.bincount(row, weights=n, minlength=rows)
    skipped = n - c
    for _ in range(iterations):
        t, g = e[key], a[row]
        denom = np.maximum(1.0 - t * g, 1e-12)
        exam = c + skipped * t * (1.0 - g) / denom
        attr = c + skipped * (1.0 - t) * g / denom
        new_e = np.clip(np.bincount(key, weights=exam, minlength=keys) / np.maximum(n_key, 1e-12), 1e-6, 1.0)
        new_a = np.clip(np.bincount(row, weights=attr, minlength=rows) / np.maximum(n_row, 1e-12), 1e-6, 1.0)
        done = np.max(np.abs(new_e - e)) < tol
        e, a = new_e, new_a
        if done:
            break
    return np.where(n_key > 0, e, np.nan), a


def pbm_em(counts: ImpressionCounts, iterations: int = 200, tol: float = 1e-7) -> np.ndarray:
    """EM for P(click) = theta_position * gamma_item; returns theta / theta_1."""
    theta, _ = exam_attraction_em(counts.item, counts.position, counts.n, counts.c, counts.num_items,
                                  counts.list_size, iterations, tol)
    return theta / theta[0]


def pairwise_ratios(counts: ImpressionCounts) -> tuple[np.ndarray, np.ndarray]:
    """ratio[k, k'] = estimate of p_k / p_k' and its weight (0 where no item was shown at both)."""
    K = counts.list_size
    n = np.zeros((counts.num_items, K))
    c = np.zeros((counts.num_items, K))
    n[counts.item, counts.position] = counts.n
    c[counts.item, counts.position] = counts.c
    ctr = np.divide(c, n, out=np.zeros_like(c), where=n > 0)
    ratio = np.full((K, K), np.nan)
    weight = np.zeros((K, K))
    for k in range(K):
        for j in range(K):
            if k == j:
                continue
            both = (n[:, k] > 0) & (n[:, j] > 0)
            if not both.any():
                continue
            w = n[both, k] * n[both, j] / (n[both, k] + n[both, j])
            num, den = np.sum(w * ctr[both, k]), np.sum(w * ctr[both, j])
            if num > 0 and den > 0:
                ratio[k, j] = num / den
                weight[k, j] = np.sum(w)
    return ratio, weight


def adjacent_chain(ratio: np.ndarray) -> np.ndarray:
    """p_1 = 1, p_{k+1} = p_k * ratio[k+1, k]: one swap distance at a time."""
    K = ratio.shape[0]
    p = np.ones(K)
    for k in range(1, K):
        p[k] = p[k - 1] * ratio[k, k - 1]
    return p


def all_pairs(ratio: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Weighted least squares of log p_k - log p_j = log ratio[k, j] over all pairs, log p_1 = 0."""
    K = ratio.shape[0]
    rows, rhs, w = [], [], []
    for k in range(K):
        for j in range(k + 1, K):
            for a, b in ((k, j), (j, k)):
                if weight[a, b] > 0:
                    row = np.zeros(K)
                    row[a], row[b] = 1.0, -1.0
                    rows.append(row)
                    rhs.append(np.log(ratio[a, b]))
                    w.append(weight[a, b])
    if not rows:
        return np.full(K, np.nan)
    A, y, sw = np.asarray(rows)[:, 1:], np.asarray(rhs), np.sqrt(np.asarray(w))
    seen = np.zeros(K, bool)
    seen[0] = True
    for r in rows:
        seen |= r != 0
    x, *_ = np.linalg.lstsq(A * sw[:, None], y * sw, rcond=None)
    p = np.exp(np.concatenate([[0.0], x]))
    return np.where(seen, p, np.nan)
