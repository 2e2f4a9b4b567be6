"""The logging policy of the standard protocol: a linear ranker fitted on a small random share of
training queries (Joachims et al. 2017; Ai et al. 2018), whose top-K lists are what users see."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LinearPolicy:
    weights: np.ndarray  # float64 [F]
    bias: float
    train_queries: list[str]  # the queries it was fitted on, recorded for reproducibility

    def score(self, features: np.ndarray) -> np.ndarray:
        return features.astype(np.float64) @ self.weights + self.bias


def fit_linear_policy(
    features: np.ndarray,
    labels: np.ndarray,
    query_ids: np.ndarray,
    *,
    fraction: float = 0.01,
    min_queries: int = 5,
    ridge: float = 1.0,
    rng: np.random.Generator,
) -> LinearPolicy:
    """Ridge regression on the labels of a seeded random `fraction` of queries (at least `min_queries`).

    Closed form, so the policy is exact and deterministic; a weak ranker is the point (it leaves
    bias for the click model to inject and for the learner to undo).
    """
    uq = np.unique(query_ids)
    n = min(len(uq), max(min_queries, int(round(fraction * len(uq)))))
    chosen = np.sort(rng.choice(uq, size=n, replace=False))
    rows = np.isin(query_ids, chosen)
    x = features[rows].astype(np.float64)
    y = labels[rows].astype(np.float64)
    xm, ym = x.mean(axis=0), y.mean()
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + ridge * np.eye(x.shape[1]), xc.T @ (y - ym))
    return LinearPolicy(weights=w, bias=float(ym - xm @ w), train_queries=[str(q) for q in chosen])


def top_k_lists(query_ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort each query's documents by score (ties by row order) and keep the top k.

    Returns (query ids in order [Q], doc rows [Q, k] with -1 padding, mask [Q, k]).
    Vectorised: one lexsort, no loop over queries.
    """
    uq, qidx = np.unique(query_ids, return_inverse=True)
    rows = np.arange(len(query_ids))
    order = np.lexsort((rows, -scores, qidx))
    q_sorted = qidx[order]
    starts = np.searchsorted(q_sorted, np.arange(len(uq)))
    rank = np.arange(len(order)) - starts[q_sorted]
    keep = rank < k
    docs = np.full((len(uq), k), -1, dtype=np.int32)
    docs[q_sorted[keep], rank[keep]] = order[keep]
    return uq, docs, docs >= 0
