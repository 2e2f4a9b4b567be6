"""Logging policies: a linear ranker fitted on a small random share of training queries (Joachims
et al. 2017; Ai et al. 2018) whose top-K is what users see (deterministic, the standard protocol),
or a Plackett-Luce sample from the same ranker's scores per session (stochastic; the setting of
Oosterhuis's doubly-robust experiments), under which a document appears at several positions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ultr.errors import DataError


@dataclass
class LinearPolicy:
    weights: np.ndarray  # float64 [F]
    bias: float
    train_queries: list[str]  # the queries it was fitted on, recorded for reproducibility

    def score(self, features: np.ndarray, rows: np.ndarray | None = None, block: int = 1 << 16) -> np.ndarray:
        """Scores of `features[rows]` (all rows by default), in blocks: float64 copies of a
        block, never of the whole table."""
        rows = np.arange(len(features)) if rows is None else rows
        out = np.empty(len(rows))
        for lo in range(0, len(rows), block):
            out[lo : lo + block] = features[rows[lo : lo + block]].astype(np.float64) @ self.weights + self.bias
        return out


def fit_linear_policy(
    features: np.ndarray,
    labels: np.ndarray,
    query_ids: np.ndarray,
    *,
    fraction: float = 0.01,
    min_queries: int = 5,
    ridge: float = 1.0,
    rng: np.random.Generator,
    rows: np.ndarray | None = None,
) -> LinearPolicy:
    """Ridge regression on the labels of a seeded random `fraction` of queries (at least
    `min_queries`) among `rows` of the arrays (all rows by default).

    Closed form, so the policy is exact and deterministic; a weak ranker is the point (it leaves
    bias for the click model to inject and for the learner to undo).
    """
    rows = np.arange(len(query_ids)) if rows is None else rows
    uq = np.unique(query_ids[rows])
    n = min(len(uq), max(min_queries, int(round(fraction * len(uq)))))
    chosen = np.sort(rng.choice(uq, size=n, replace=False))
    picked = rows[np.isin(query_ids[rows], chosen)]
    x = features[picked].astype(np.float64)
    y = labels[picked].astype(np.float64)
    xm, ym = x.mean(axis=0), y.mean()
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y - ym))
    return LinearPolicy(weights=w, bias=float(ym - xm @ w), train_queries=[str(q) for q in chosen])


@dataclass
class Candidates:
    """Every query's documents in policy order, flat: query q holds slots starts[q]..+lengths[q]."""

    query_ids: np.ndarray  # [Q]
    rows: np.ndarray  # int64 [D]: features-table rows (positions in the given arrays), sorted
    scores: np.ndarray  # float64 [D]
    starts: np.ndarray  # int64 [Q]
    lengths: np.ndarray  # int64 [Q]

    def top_k(self, k: int) -> np.ndarray:
        """Rows [Q, k] of each query's k best documents, -1 past the end of short lists."""
        slot = np.arange(k)
        flat = np.minimum(self.starts[:, None] + slot, len(self.rows) - 1)
        return np.where(slot < self.lengths[:, None], self.rows[flat], -1).astype(np.int32)


def rank_candidates(query_ids: np.ndarray, scores: np.ndarray) -> Candidates:
    """Sort each query's documents by score (ties by row order). One lexsort, no loop over queries."""
    uq, qidx = np.unique(query_ids, return_inverse=True)
    rows = np.arange(len(query_ids))
    order = np.lexsort((rows, -scores, qidx))
    starts = np.searchsorted(qidx[order], np.arange(len(uq)))
    lengths = np.diff(np.append(starts, len(order)))
    return Candidates(uq, order, scores[order].astype(np.float64), starts, lengths)


def top_k_lists(query_ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top k of each query's ranking: (query ids [Q], doc rows [Q, k] with -1 padding, mask [Q, k])."""
    c = rank_candidates(query_ids, scores)
    docs = c.top_k(k)
    return c.query_ids, docs, docs >= 0


class PlackettLuce:
    """Sampling top-k lists without replacement from softmax(score / (temperature * std(score))).

    Scores are standardised over all candidates, so the temperature is scale-free: near 0 the
    policy approaches the deterministic ranking, large values approach a uniform shuffle. Exact
    and vectorised over sessions: position j draws u in the mass left after the j-1 chosen
    documents, steps it past them in CDF order, and inverts the query's cumulative weights."""

    def __init__(self, c: Candidates, temperature: float):
        if not temperature > 0:
            raise DataError(f"simulation.temperature={temperature} must be > 0")
        std = c.scores.std() or 1.0
        logits = c.scores / (temperature * std)
        self.c = c
        # Per-query max first (the lists are sorted): weights in (0, 1], no overflow.
        self.w = np.exp(logits - np.repeat(logits[c.starts], c.lengths))
        self.cum = np.cumsum(self.w)

    def sample(self, q: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """Feature rows [n, k] (-1 past the end of short lists) for sessions of queries `q`."""
        c, w, cum = self.c, self.w, self.cum
        start, length = c.starts[q], c.lengths[q]
        base = cum[start] - w[start]
        left = total = cum[start + length - 1] - base
        chosen = np.full((len(q), k), len(w), dtype=np.int64)  # len(w) = none (sorts last)
        for pos in range(k):
            exhausted = left <= 1e-12 * total  # the rest underflowed: no draw can tell the items apart
            u = rng.random(len(q)) * left
            for c_j in np.sort(chosen[:, :pos], axis=1).T:  # step past chosen items in CDF order
                hit = c_j < len(w)
                cj = np.where(hit, c_j, 0)
                u = np.where(hit & (u >= cum[cj] - w[cj] - base), u + w[cj], u)
            idx = np.clip(np.searchsorted(cum, base + u, side="right"), start, start + length - 1)
            live = length > pos
            idx = self._unchosen(idx, chosen[:, :pos], start, live, exhausted)
            chosen[live, pos] = idx[live]
            left = left - np.where(live, w[idx], 0.0)
        return np.where(chosen < len(w), c.rows[np.minimum(chosen, len(w) - 1)], -1).astype(np.int32)

    @staticmethod
    def _unchosen(idx: np.ndarray, chosen: np.ndarray, start: np.ndarray, live: np.ndarray, exhausted: np.ndarray) -> np.ndarray:
        """Where the remaining mass is below float64 resolution (very low temperatures: the
        weights left underflow, or sit under ~1e-9 of the cumulative sum) a draw can land on a
        chosen item or on no mass at all; take the best unchosen item instead, so the order
        falls back to the deterministic ranking, which such a policy approaches anyway."""
        dup = ((chosen == idx[:, None]).any(axis=1) | exhausted) & live
        if not dup.any():
            return idx
        first_free = np.zeros(int(dup.sum()), dtype=np.int64)
        for offset in np.sort(chosen[dup] - start[dup, None], axis=1).T:
            first_free = np.where(offset == first_free, first_free + 1, first_free)
        idx = idx.copy()
        idx[dup] = start[dup] + first_free
        return idx
