"""Dual Learning Algorithm (Ai, Bi, Luo, Guo, Croft: "Unbiased Learning to Rank with Unbiased
Propensity Estimation", SIGIR 2018).

The ranker and the propensity model are each other's dual: the propensity softmax gives inverse
propensity weights for the ranker's listwise loss, and the ranker softmax gives inverse relevance
weights for the propensity model's loss. Both weights are constants (stop-gradient), so the two
towers get separate gradients from one scalar.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ultr.losses.listwise import masked_log_softmax, softmax_cross_entropy
from ultr.errors import DataError


class DLALosses(NamedTuple):
    total: jax.Array  # L_prop + rank_weight * L_rank
    rank: jax.Array
    propensity: jax.Array


def _first_item(position: jax.Array, mask: jax.Array) -> jax.Array:
    """One-hot of the valid item displayed highest in each list (position 1 unless it was dropped)."""
    big = jnp.iinfo(jnp.int32).max
    p = jnp.where(mask, position.astype(jnp.int32), big)
    return (p == jnp.min(p, axis=-1, keepdims=True)) & mask


# Ratios are formed in log space and capped here so an underflowed softmax (p_i = 0 at extreme
# logits) gives a huge but finite weight instead of inf, which would turn 0 * inf into NaN.
_LOG_WEIGHT_CAP = 18.42  # ~1e8: far beyond any real position-bias ratio


def inverse_weights(logits: jax.Array, position: jax.Array, mask: jax.Array, max_weight: float | None = None,
                    normalization: str = "softmax") -> jax.Array:
    """p_first / p_i with p = softmax over the list (or sigmoid per item); 0 on padding;
    optionally clipped. Differentiable: the caller decides what is a constant."""
    logp = masked_log_softmax(logits, mask) if normalization == "softmax" else jax.nn.log_sigmoid(logits)
    first = jnp.sum(jnp.where(_first_item(position, mask), logp, 0.0), axis=-1, keepdims=True)
    w = jnp.where(mask, jnp.exp(jnp.minimum(first - logp, _LOG_WEIGHT_CAP)), 0.0)
    if max_weight is not None:
        w = jnp.minimum(w, max_weight)
    return w


def dla_loss(
    scores: jax.Array,
    propensity_logits: jax.Array,
    clicks: jax.Array,
    position: jax.Array,
    mask: jax.Array,
    *,
    rank_weight: float = 1.0,
    max_weight: float | None = None,
    normalization: str = "softmax",
    loss_normalization: str = "batch",
    max_relevance_weight: float | None = None,
) -> DLALosses:
    """DLA objective over [..., K] arrays.

        wE_i = sg(softmax(e)_first / softmax(e)_i)    wR_i = sg(softmax(s)_first / softmax(s)_i)
        L_rank = -sum c wE log softmax(s) / sum c wE
        L_prop = -sum c wR log softmax(e) / sum c wR
        L      = L_prop + rank_weight * L_rank

    Args:
      scores: ranker scores s. propensity_logits: propensity logits e. clicks: {0,1}.
      position: 1-based displayed positions (defines "first"). mask: False for padding.
      max_weight: optional clip of both inverse weights (variance control).
      normalization: "softmax" (reference) or "sigmoid": how logits become the probabilities
        whose ratios form the weights (sigmoid treats each item's examination independently).
      loss_normalization: "batch" (ALGORITHMS.md, and what ULTRA computes: its softmax loss
        multiplies each list's cross-entropy by the list's total weight) or "list" (a variant: each
        session's weighted clicks normalised to one distribution and counted once, so a
        single-click session's inverse weight no longer matters; see `softmax_cross_entropy`).
      max_relevance_weight: optional clip of wR alone (after `max_weight`), leaving wE free: the
        relevance ratios of a click model are bounded (1 / eps_neg for PBM clicks), the
        examination ratios at severe bias are not.
    """
    if normalization not in ("softmax", "sigmoid"):
        raise DataError(f"dla normalization={normalization!r}; use softmax or sigmoid")
    if loss_normalization not in ("batch", "list"):
        raise DataError(f"dla loss_normalization={loss_normalization!r}; use batch or list")
    per_list = loss_normalization == "list"
    # Each tower's weights are constants for the other tower's loss: without these two
    # stop-gradients the ranker would also be trained through the propensity loss and vice versa.
    w_exam = jax.lax.stop_gradient(inverse_weights(propensity_logits, position, mask, max_weight, normalization))
    w_rel = jax.lax.stop_gradient(inverse_weights(scores, position, mask, max_weight, normalization))
    if max_relevance_weight is not None:
        w_rel = jnp.minimum(w_rel, max_relevance_weight)
    l_rank = softmax_cross_entropy(scores, clicks, mask, w_exam, per_list=per_list)
    l_prop = softmax_cross_entropy(propensity_logits, clicks, mask, w_rel, per_list=per_list)
    return DLALosses(l_prop + rank_weight * l_rank, l_rank, l_prop)

