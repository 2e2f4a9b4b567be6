"""Counterfactual evaluation of rankers from clicks (no relevance labels).

The unit is a query's candidate documents: the documents its held-out sessions showed (the logged
lists; one list per query under a deterministic logging policy, their union under a stochastic
one), optionally joined by the features table's other candidates of the query. A ranker re-ranks
them; an additive metric sums a gain per document times a weight of its new rank (DCG@k:
1/log2(1 + rank) for rank <= k; expected clicks: the examination of that rank). The estimators
differ only in the gain they plug in for each document, from its click evidence in the log
(Joachims et al., WSDM 2017; Oosterhuis, TOIS 2023). With c_s the click and alpha_s the examination
propensity of the position where session s showed d, over the S_d sessions that showed it:

    ips    g(d) = (1/S_d) sum_s (c_s - beta_s) / alpha_s  unbiased for gamma(d) under PBM (beta = 0)
                                                       and under trust bias (Vardasbi et al., 2020)
    snips  g(d) = (sum_s c_s - beta_s) / sum_s alpha_s  self-normalised: clicks over expected
                                                       examinations (one weight per document)
    dr     g(d) = R(d) + (sum_s c_s - alpha_s R(d) - beta_s) / sum_s alpha_s   where d was shown,
           g(d) = R(d)                                                     where it never was

gamma(d) is P(click | d examined) scaled like the propensities (relative ones give gamma times
position 1's examination). `R` is a direct model's relevance. Where d was shown, the DR correction
cancels R exactly, so on the logged lists DR equals SNIPS; it differs on candidates the log never
showed (`candidates="table"`), where IPS and SNIPS can only count them as irrelevant. IPS and SNIPS
coincide where each document always sits at one position (a deterministic logging policy).

nDCG@k divides by the ideal DCG@k of the same gains, so the normaliser is estimated from the same
clicks; a query whose estimated gains are all zero (no clicks) has no nDCG and is left out (counted).

Everything is NumPy over flat per-(query, document) arrays sorted by query: no padding to the
longest query, no Python loop over queries or sessions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np
import polars as pl

from ultr.errors import DataError

ESTIMATORS = ("ips", "snips", "dr")


@dataclass
class Evidence:
    """Click evidence per (query, candidate document), rows sorted by query index."""

    query: np.ndarray  # int64 [M]: query index 0..Q-1, non-decreasing
    doc: np.ndarray  # int64 [M]: features-table row (or id-vocabulary index) of the document
    clicks: np.ndarray  # float64 [M]: C = sum of clicks
    weighted: np.ndarray  # float64 [M]: W = sum of c / alpha
    exposure: np.ndarray  # float64 [M]: A = sum of alpha
    bias: np.ndarray  # float64 [M]: B = sum of beta (trust bias; 0 under PBM)
    shown: np.ndarray  # int64 [M]: S = sessions that showed the document (0: a candidate never shown)
    query_ids: np.ndarray  # object [Q]
    sessions: np.ndarray  # int64 [Q]: held-out sessions per query

    @property
    def num_queries(self) -> int:
        return len(self.query_ids)

    def __len__(self) -> int:
        return len(self.query)


def _impressions(query_id: np.ndarray, doc_index: np.ndarray, position: np.ndarray, click: np.ndarray, mask: np.ndarray,
                 alpha: np.ndarray, beta: np.ndarray | None) -> pl.DataFrame:
    """One row per shown slot of these sessions, with its click and the propensity of its position."""
    pos = position[mask].astype(np.int64)
    if pos.size and (pos.min() < 1 or pos.max() > len(alpha)):
        raise DataError(f"the log shows position {int(pos.max())} but the propensity curve has {len(alpha)} positions; "
                        "use a curve estimated for this log's list size (etl.list_size)")
    a = alpha[pos - 1]
    b = np.zeros_like(a) if beta is None else beta[pos - 1]
    c = click[mask].astype(np.float64)
    return pl.DataFrame({
        "query_id": np.repeat(query_id, mask.sum(axis=1)), "doc": doc_index[mask].astype(np.int64),
        "c": c, "w": (c - b) / a, "a": a, "b": b,
    })


def _sums(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.group_by("query_id", "doc").agg(pl.col("c").sum(), pl.col("w").sum(), pl.col("a").sum(),
                                                 pl.col("b").sum(), pl.len().alias("s"))


def aggregate(chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]], alpha: np.ndarray,
              beta: np.ndarray | None = None, candidates: pl.DataFrame | None = None) -> Evidence:
    """Evidence from sessions given in chunks of (query_id [S], doc_index [S, K], position [S, K],
    click [S, K], mask [S, K]): each chunk is reduced to its (query, document) sums before the next
    is read, so memory grows with the distinct pairs, not with the sessions. `alpha`/`beta` [K]:
    examination (and trust-bias offset) per position 1..K. `candidates` (query_id, doc) adds
    documents the log never showed, with zero evidence."""
    alpha = np.asarray(alpha, dtype=np.float64)
    if not (np.all(np.isfinite(alpha)) and np.all(alpha > 0)):
        raise DataError(f"propensities {alpha.round(4).tolist()} must be positive and finite at every position")
    beta = None if beta is None else np.asarray(beta, dtype=np.float64)
    parts, counts = [], []
    for query_id, doc_index, position, click, mask in chunks:
        parts.append(_sums(_impressions(np.asarray(query_id, dtype=object), doc_index, position, click, mask, alpha, beta)))
        counts.append(pl.DataFrame({"query_id": np.asarray(query_id, dtype=object)}).group_by("query_id").len())
    if not parts:
        raise DataError("the held-out log has no sessions to evaluate on")
    pairs = pl.concat(parts).group_by("query_id", "doc").agg(pl.col("c", "w", "a", "b", "s").sum())
    if candidates is not None:
        pairs = _with_candidates(pairs, candidates)
    sessions = pl.concat(counts).group_by("query_id").agg(pl.col("len").sum()).sort("query_id")
    pairs = pairs.join(sessions.with_row_index("qi").select("query_id", "qi"), on="query_id", how="inner").sort("qi", "doc")
    col = lambda name, dtype=np.float64: pairs[name].to_numpy().astype(dtype)  # noqa: E731
    return Evidence(col("qi", np.int64), col("doc", np.int64), col("c"), col("w"), col("a"), col("b"), col("s", np.int64),
                    sessions["query_id"].to_numpy().astype(object), sessions["len"].to_numpy().astype(np.int64))


def _with_candidates(pairs: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """The features table's other candidates of the logged queries, with zero evidence."""
    logged = pairs.select("query_id").unique()
    extra = (candidates.select(pl.col("query_id").cast(pl.String), pl.col("doc").cast(pl.Int64))
             .join(logged, on="query_id", how="semi").join(pairs.select("query_id", "doc"), on=["query_id", "doc"], how="anti"))
    zeros = extra.with_columns(c=pl.lit(0.0), w=pl.lit(0.0), a=pl.lit(0.0), b=pl.lit(0.0), s=pl.lit(0, dtype=pl.UInt32))
    return pl.concat([pairs, zeros.select(pairs.columns).cast(pairs.schema)])


def _ips(ev: Evidence, relevance: np.ndarray | None) -> np.ndarray:
    return np.where(ev.shown > 0, ev.weighted / np.maximum(ev.shown, 1), 0.0)


def _snips(ev: Evidence, relevance: np.ndarray | None) -> np.ndarray:
    shown = ev.shown > 0
    return np.where(shown, (ev.clicks - ev.bias) / np.where(shown, ev.exposure, 1.0), 0.0)


def _dr(ev: Evidence, relevance: np.ndarray | None) -> np.ndarray:
    shown = ev.shown > 0
    r = query_prior(ev, _snips(ev, None)) if relevance is None else np.asarray(relevance, dtype=np.float64)
    exposure = np.where(shown, ev.exposure, 1.0)
    return np.where(shown, r + (ev.clicks - ev.exposure * r - ev.bias) / exposure, r)


# Looked up by name, like the learning methods: each estimator is one function of the evidence.
GAINS: dict[str, Callable[[Evidence, np.ndarray | None], np.ndarray]] = {"ips": _ips, "snips": _snips, "dr": _dr}


def gains(ev: Evidence, estimator: str, relevance: np.ndarray | None = None) -> np.ndarray:
    """Each candidate's estimated gain [M] under `estimator` (see the module docstring).
    `relevance` [M]: the direct model R of DR (default: each query's mean SNIPS gain of its shown
    documents, a constant prior per query)."""
    if estimator not in GAINS:
        raise DataError(f"estimator {estimator!r} unknown; choose from {list(ESTIMATORS)}")
    return GAINS[estimator](ev, relevance)


def query_prior(ev: Evidence, g: np.ndarray) -> np.ndarray:
    """Per candidate, the mean of `g` over its query's shown documents."""
    shown = ev.shown > 0
    total = np.bincount(ev.query, weights=np.where(shown, g, 0.0), minlength=ev.num_queries)
    n = np.bincount(ev.query, weights=shown.astype(np.float64), minlength=ev.num_queries)
    return (total / np.maximum(n, 1))[ev.query]


def ranks(query: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """1-based rank of each candidate within its query by descending score, for each row of
    `scores` [R, M] (ties: the earlier candidate first, so every ranker and the truth break ties alike)."""
    query = np.asarray(query)
    starts = np.searchsorted(query, query)  # first row of each candidate's query (rows sorted by query)
    out = np.empty(scores.shape, dtype=np.int64)
    for r, s in enumerate(np.atleast_2d(scores)):  # one sort per ranker, each over all M candidates
        order = np.lexsort((-s, query))
        out[r, order] = np.arange(len(query)) - starts[order] + 1
    return out


Weight = Callable[[np.ndarray], np.ndarray]


def dcg_weight(k: int) -> Weight:
    return lambda rank: np.where(rank <= k, 1.0 / np.log2(1.0 + rank), 0.0)


def click_weight(alpha: np.ndarray) -> Weight:
    """Expected clicks of the re-ranked list: position r is examined with alpha[r] (none below the curve)."""
    a = np.concatenate([[0.0], np.asarray(alpha, dtype=np.float64)])
    return lambda rank: np.where(rank <= len(alpha), a[np.minimum(rank, len(alpha))], 0.0)


def per_query(query: np.ndarray, num_queries: int, rank: np.ndarray, g: np.ndarray, weight: Weight) -> np.ndarray:
    """sum over each query's candidates of gain x weight(rank): [R, Q] for ranks [R, M]."""
    contrib = g[None, :] * weight(rank)
    idx = query[None, :] + num_queries * np.arange(len(rank))[:, None]
    return np.bincount(idx.ravel(), weights=contrib.ravel(), minlength=len(rank) * num_queries).reshape(len(rank), -1)


@dataclass
class MetricSpec:
    name: str
    weight: Weight
    normalised: bool  # divide by the ideal value of the same gains (nDCG)


def metric_specs(names: list[str], alpha: np.ndarray) -> list[MetricSpec]:
    """`dcg@k`, `ndcg@k`, `clicks` (expected clicks under the propensities)."""
    out = []
    for name in names:
        kind, _, k = str(name).partition("@")
        if kind in ("dcg", "ndcg") and k.isdigit() and int(k) > 0:
            out.append(MetricSpec(name, dcg_weight(int(k)), kind == "ndcg"))
        elif name == "clicks":
            out.append(MetricSpec(name, click_weight(alpha), False))
        else:
            raise DataError(f"metric {name!r} unknown; use dcg@k, ndcg@k (k a positive integer) or clicks")
    return out


def query_values(ev: Evidence, scores: np.ndarray, g: np.ndarray, spec: MetricSpec, rank: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(values [R, Q], valid [Q]) of one metric for rankers' `scores` [R, M] and gains `g` [M]:
    a normalised metric is undefined (invalid) where the ideal value is 0."""
    rank = ranks(ev.query, scores) if rank is None else rank
    v = per_query(ev.query, ev.num_queries, rank, g, spec.weight)
    if not spec.normalised:
        return v, np.ones(ev.num_queries, dtype=bool)
    ideal = per_query(ev.query, ev.num_queries, ranks(ev.query, g[None, :]), g, spec.weight)[0]
    valid = ideal > 0
    return np.where(valid, v / np.where(valid, ideal, 1.0), 0.0), valid


def estimates(ev: Evidence, scores: np.ndarray, metrics: list[MetricSpec], estimators: list[str],
              true_gains: np.ndarray | None = None, relevance: np.ndarray | None = None
              ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """{(estimator, metric): (values [R, Q], valid [Q])}; with `true_gains` also ("true", metric):
    the same metric on the same candidates with the true gains (simulation)."""
    rank = ranks(ev.query, scores)
    gs: Mapping[str, np.ndarray] = {e: gains(ev, e, relevance) for e in estimators}
    if true_gains is not None:
        gs = {**gs, "true": np.asarray(true_gains, dtype=np.float64)}
    return {(e, m.name): query_values(ev, scores, g, m, rank) for e, g in gs.items() for m in metrics}

