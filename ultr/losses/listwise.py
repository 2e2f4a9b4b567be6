"""The listwise softmax cross-entropy every method here shares (Cao et al. 2007; Ai et al. 2018)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_log_softmax(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """log softmax over the valid items of each list (last axis); padded items get 0, not -inf,
    so that 0 * value stays 0 and gradients stay finite."""
    neg = jnp.finfo(logits.dtype).min
    z = jnp.where(mask, logits, neg)
    z = z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True))
    lse = jnp.log(jnp.sum(jnp.where(mask, jnp.exp(z), 0.0), axis=-1, keepdims=True))
    return jnp.where(mask, z - lse, 0.0)


def softmax_cross_entropy(
    scores: jax.Array, targets: jax.Array, mask: jax.Array, weights: jax.Array | None = None,
    *, per_list: bool = False,
) -> jax.Array:
    """-sum_lists sum_i t_i w_i log softmax(s)_i / sum_lists sum_i |t_i w_i|.

    Normalised over the whole batch (ALGORITHMS.md), not per list as `rax.softmax_loss` does:
    a session with two clicks weighs twice one with one. Lists with no positive target add
    nothing; an all-empty batch gives 0 with zero gradients.

    `per_list=True` is a variant: each list's weighted targets become a distribution (sum 1), the
    lists' cross-entropies are summed and divided by the batch's total weighted targets, so every
    session counts once whatever its weight (a single-click session's inverse weight no longer
    matters). ULTRA's softmax loss, despite normalising each list, multiplies the list's
    cross-entropy back by its total weight: that is the batch form above.

    The normaliser sums |t w|: for the usual non-negative targets that is the sum of the targets,
    and for signed ones (DR or the affine correction without `clip_negative`) it cannot reach 0
    while a list carries evidence, so the loss neither vanishes nor explodes when the positive and
    negative targets cancel.

    Args:
      scores: [..., K] model scores. targets: [..., K] clicks or graded labels (>= 0).
      mask: [..., K] bool, False for padding. weights: [..., K] per-item weights (default 1).
    """
    t = jnp.where(mask, targets, 0.0)
    if weights is not None:
        t = t * weights
    den = jnp.sum(jnp.abs(t))
    if per_list:
        per = jnp.sum(jnp.abs(t), axis=-1, keepdims=True)
        dist = jnp.where(per > 0, t / jnp.maximum(per, 1e-30), 0.0)
        num = -jnp.sum(dist * masked_log_softmax(scores, mask))
    else:
        num = -jnp.sum(t * masked_log_softmax(scores, mask))
    return jnp.where(den > 0, num / jnp.maximum(den, 1e-12), 0.0)
