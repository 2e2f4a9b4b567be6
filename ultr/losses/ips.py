"""Inverse propensity scoring with known (or separately estimated) position bias
(Joachims, Swaminathan, Schnabel, WSDM 2017; Wang et al., SIGIR 2016)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ultr.losses.listwise import masked_log_softmax, softmax_cross_entropy


def ips_weights(position: jax.Array, propensity: jax.Array, mask: jax.Array, max_weight: float | None = None) -> jax.Array:
    """w = p_1 / p_k for the item at 1-based `position`; `propensity` [P] is relative to position 1."""
    p = propensity[jnp.clip(position - 1, 0, propensity.shape[0] - 1)]
    w = jnp.where(mask, propensity[0] / jnp.maximum(p, 1e-8), 0.0)
    return w if max_weight is None else jnp.minimum(w, max_weight)


def ips_loss(scores: jax.Array, clicks: jax.Array, position: jax.Array, mask: jax.Array, propensity: jax.Array,
             *, max_weight: float | None = None) -> jax.Array:
    """Listwise softmax loss on clicks reweighted by inverse propensities. Shapes [..., K]."""
    return softmax_cross_entropy(scores, clicks, mask, ips_weights(position, propensity, mask, max_weight))


def affine_loss(scores: jax.Array, clicks: jax.Array, position: jax.Array, mask: jax.Array,
                alpha: jax.Array, beta: jax.Array) -> jax.Array:
    """Affine correction for trust bias (Vardasbi, Oosterhuis, de Rijke, CIKM 2020).

    With P(click | k, d) = alpha_k P(R=1 | d) + beta_k, the target (c - beta_k) / alpha_k is an
    unbiased relevance estimate; the softmax loss is linear in its targets, so it stays unbiased.
    Targets can be negative, so the loss is normalised by the number of clicks, not their sum.
    """
    idx = jnp.clip(position - 1, 0, alpha.shape[0] - 1)
    targets = jnp.where(mask, (clicks - beta[idx]) / jnp.maximum(alpha[idx], 1e-8), 0.0)
    num = -jnp.sum(targets * masked_log_softmax(scores, mask))
    n = jnp.sum(jnp.where(mask, clicks, 0.0))
    return jnp.where(n > 0, num / jnp.maximum(n, 1.0), 0.0)


def affine_log_loss(scores: jax.Array, clicks: jax.Array, exposure: jax.Array, bias: jax.Array, mask: jax.Array,
                    *, clip_negative: bool = True) -> jax.Array:
    """Affine correction aggregated over the log (Vardasbi et al., CIKM 2020, summed per document).

    Per (query, document) of a candidate list: C clicks, A = sum of alpha_k and B = sum of beta_k
    over the logged sessions that showed it. R = (C - B) / A estimates P(R=1) (the ratio form of
    the per-click targets; equal to their mean when a document keeps its position, as under one
    deterministic logging policy). Each document then has one fixed target instead of a noisy
    -beta/alpha or (1-beta)/alpha per session, which is what makes the per-click form's gradient
    so noisy. Documents never shown carry no evidence and leave the softmax. Estimates below 0
    are floored (`clip_negative`), as in DR: a fixed negative softmax target is unbounded.
    Shapes [..., L] (one row per query's candidate list).
    """
    shown = mask & (exposure > 0)
    t = jnp.where(shown, (clicks - bias) / jnp.where(shown, exposure, 1.0), 0.0)
    if clip_negative:
        t = jnp.maximum(t, 0.0)
    return softmax_cross_entropy(scores, t, shown)
