"""Doubly-robust estimation for position (and trust) bias: Oosterhuis, "Doubly-Robust Estimation
for Correcting Position-Bias in Click Feedback for Unbiased Learning to Rank", ACM TOIS 2023.

With clicks following P(c=1 | d at k) = alpha_k R_d + beta_k (PBM: beta = 0, alpha = examination),
the DR relevance estimate of document d of a query with N logged sessions is

    R_DR(d) = R_hat(d) + (1/N) sum_i (c_i(d) - alpha_{k_i(d)} R_hat(d) - beta_{k_i(d)}) / rho_d,
    rho_d   = (1/N) sum_i alpha_{k_i(d)}        (alpha = 0 where d was not shown)

where R_hat is a regression model of relevance (the direct method, DM). Where a document was shown
the correction makes the estimate unbiased whatever R_hat is; where it never was (rho_d = 0, e.g.
below the top K of the logging policy) IPS has nothing to say and DR falls back to R_hat. This is
the estimator's advantage over IPS, which treats never-shown documents as irrelevant.

Everything is aggregated per (query, document) over the log: C = sum_i c_i, A = sum_i alpha,
B = sum_i beta, so the correction is (C - A R_hat - B) / A and 1/rho_d = N / A.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ultr.losses.listwise import softmax_cross_entropy


class DrLoss(NamedTuple):
    total: jax.Array
    rank: jax.Array
    dm: jax.Array
    targets: jax.Array


def dr_targets(relevance: jax.Array, clicks: jax.Array, exposure: jax.Array, bias: jax.Array, sessions: jax.Array,
               mask: jax.Array, *, max_weight: float | None = None, clip_negative: bool = True) -> jax.Array:
    """Per-document DR relevance estimates. All arguments [..., L]: `relevance` the DM's R_hat in
    [0, 1]; `clicks` C, `exposure` A = sum of alpha over the query's sessions, `bias` B = sum of beta,
    `sessions` N of the document's query. `max_weight` clips 1/rho = N/A.

    `clip_negative` (default) floors the estimates at 0: under trust bias C < B gives negative
    estimates, and since a document's aggregated estimate is the same at every step, a persistently
    negative softmax target would push its score to -inf without bound (a small bias traded for a
    bounded loss; with beta = 0 no estimate is ever negative and nothing changes)."""
    shown = mask & (exposure > 0)
    inv_rho = jnp.where(shown, sessions / jnp.where(shown, exposure, 1.0), 0.0)
    if max_weight is not None:
        inv_rho = jnp.minimum(inv_rho, max_weight)
    residual = (clicks - exposure * relevance - bias) / jnp.maximum(sessions, 1.0)
    t = jnp.where(mask, relevance + residual * inv_rho, 0.0)
    return jnp.maximum(t, 0.0) if clip_negative else t


def dm_loss(dm_logits: jax.Array, clicks: jax.Array, exposure: jax.Array, bias: jax.Array, sessions: jax.Array,
            mask: jax.Array) -> jax.Array:
    """Fit of the direct method R_hat = sigmoid(dm_logits) to the clicks through the click model:
    per query session d is clicked with mean probability p = (A R_hat + B) / N, so the log-likelihood
    is C log p + (N - C) log(1 - p) (exact when d's position is the same in every session, as under
    one deterministic logging policy). Normalised per logged session."""
    r = jax.nn.sigmoid(dm_logits)
    n = jnp.maximum(sessions, 1.0)
    p = jnp.clip((exposure * r + bias) / n, 1e-6, 1 - 1e-6)
    ll = clicks * jnp.log(p) + (sessions - clicks) * jnp.log1p(-p)
    ll = jnp.where(mask & (exposure > 0), ll, 0.0)
    return -jnp.sum(ll) / jnp.maximum(jnp.sum(jnp.where(mask & (exposure > 0), sessions, 0.0)), 1.0)


def dr_loss(scores: jax.Array, dm_logits: jax.Array, clicks: jax.Array, exposure: jax.Array, bias: jax.Array,
            sessions: jax.Array, mask: jax.Array, *, max_weight: float | None = None, clip_negative: bool = True,
            direct: bool = True) -> DrLoss:
    """Ranker: listwise softmax loss over whole candidate lists with the DR estimates as targets
    (the DM's prediction enters under stop-gradient). DM: the click-model likelihood above.
    Shapes [..., L] (one row per query)."""
    relevance = jax.lax.stop_gradient(jax.nn.sigmoid(dm_logits))
    if not direct:
        relevance = jnp.zeros_like(relevance)
        mask = mask & (exposure > 0)
    targets = dr_targets(relevance, clicks, exposure, bias, sessions, mask, max_weight=max_weight, clip_negative=clip_negative)
    rank = softmax_cross_entropy(scores, targets, mask)
    dm = dm_loss(dm_logits, clicks, exposure, bias, sessions, mask)
    return DrLoss(rank + dm, rank, dm, targets)
