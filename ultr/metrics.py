"""Ranking metrics on expert labels, per query, and propensity-recovery error.

nDCG@k (gain 2^y - 1, discount 1/log2(1 + rank), ideal DCG from the query's own candidates), MRR
and MAP come from rax's public API, whose defaults are exactly these definitions. rax has no ERR,
so ERR@k (Chapelle et al., CIKM 2009) is written here. Queries with no relevant document have an
undefined nDCG and are left out of every mean; the caller reports how many.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import rax

NDCG_CUTOFFS = (1, 3, 5, 10)


def err_metric(scores: jax.Array, labels: jax.Array, *, where: jax.Array, topn: int = 10, max_label: float) -> jax.Array:
    """Expected reciprocal rank per list: sum_r 1/r R_r prod_{j<r} (1 - R_j), R = (2^y - 1) / 2^y_max."""
    scores, labels = jnp.asarray(scores, jnp.float32), jnp.asarray(labels, jnp.float32)
    neg = jnp.finfo(scores.dtype).min
    order = jnp.argsort(-jnp.where(where, scores, neg), axis=-1, stable=True)
    y = jnp.take_along_axis(jnp.where(where, labels, 0.0), order, axis=-1)[..., :topn]
    r = (jnp.exp2(y) - 1.0) / jnp.exp2(max_label)
    not_stopped = jnp.cumprod(1.0 - r, axis=-1)
    before = jnp.concatenate([jnp.ones_like(r[..., :1]), not_stopped[..., :-1]], axis=-1)
    ranks = jnp.arange(1, r.shape[-1] + 1, dtype=r.dtype)
    return jnp.sum(before * r / ranks, axis=-1)


def _per_query_impl(scores: jax.Array, labels: jax.Array, mask: jax.Array, max_label: float) -> dict[str, jax.Array]:
    out = {f"ndcg@{k}": rax.ndcg_metric(scores, labels, where=mask, topn=k, reduce_fn=None) for k in NDCG_CUTOFFS}
    out["err@10"] = err_metric(scores, labels, where=mask, topn=10, max_label=max_label)
    out["mrr"] = rax.mrr_metric(scores, labels, where=mask, reduce_fn=None)
    out["map"] = rax.ap_metric(scores, labels, where=mask, reduce_fn=None)
    return out


per_query_metrics = jax.jit(_per_query_impl, static_argnames="max_label")


def evaluate_scores(scores: np.ndarray, labels: np.ndarray, mask: np.ndarray, max_label: float) -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray]:
    """Mean metrics over queries with at least one relevant document.

    Returns (means, per-query values for every query, bool [Q] of queries that count).
    """
    per = {k: np.asarray(v) for k, v in per_query_metrics(jnp.asarray(scores), jnp.asarray(labels), jnp.asarray(mask), float(max_label)).items()}
    valid = ((labels > 0) & mask).any(axis=-1)
    means = {k: float(v[valid].mean()) if valid.any() else float("nan") for k, v in per.items()}
    return means, per, valid


def propensity_error(estimated: np.ndarray, true: np.ndarray) -> float:
    """Mean relative error over positions 2..K of curves normalised to position 1."""
    est = np.asarray(estimated, dtype=np.float64)
    tru = np.asarray(true, dtype=np.float64)
    est, tru = est / est[0], tru / tru[0]
    return float(np.mean(np.abs(est[1:] - tru[1:]) / tru[1:]))


def propensity_warning(estimated: np.ndarray, limit: float = 1.5) -> str | None:
    """A message when a learned examination curve puts a lower position above `limit` x position
    1, else None. Position bias in a ranked list is a decline from the top, with bumps of a few
    percent at most (the measured curves of the Yandex sample); a curve far above position 1 is the
    signature of DLA's runaway in which the ranker absorbs position (one deterministic ranking per
    query, severe bias), and then estimates nothing."""
    est = np.asarray(estimated, dtype=np.float64)
    rel = est / est[0]
    worst = int(np.argmax(rel[1:])) + 1
    if np.isfinite(rel[worst]) and rel[worst] <= limit:  # argmax returns a NaN's index, so NaN warns
        return None
    return (f"the learned curve puts position {worst + 1} at {rel[worst]:.3g}x position 1: the propensity "
            "estimate diverged. Under one ranking per query the ranker can absorb position; "
            "under severe bias try +experiment=severe_bias, or a log with several rankings per query (README, 'Severe bias and one ranking per query')")
