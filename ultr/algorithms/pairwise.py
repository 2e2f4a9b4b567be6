"""Pairwise debiasing: Unbiased LambdaMART's objective with a neural ranker (Hu, Wang, Peng, Li,
"Unbiased LambdaMART: An Unbiased Pairwise Learning-to-Rank Algorithm", WWW 2019).

Position biases t+_k (of clicked items) and t-_k (of unclicked ones) divide a pairwise logistic
loss; they are re-estimated in closed form from the same pairs (their eq. with p = 0):
  t+_k ∝ sum_{pairs, clicked at k} l_ij / t-_{k_j},   t-_k ∝ sum_{pairs, unclicked at k} l_ij / t+_{k_i},
normalised so that t_1 = 1 (where they are used and read out).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class PairwiseOut(NamedTuple):
    loss: jax.Array
    log_t_plus: jax.Array  # batch estimate of log t+ per position [K], up to a constant
    log_t_minus: jax.Array
    has_plus: jax.Array  # positions with evidence in this batch
    has_minus: jax.Array


def pairwise_debiasing_loss(scores: jax.Array, clicks: jax.Array, position: jax.Array, mask: jax.Array,
                            log_t_plus: jax.Array, log_t_minus: jax.Array) -> PairwiseOut:
    """Loss over all (clicked i, unclicked j) pairs of each list, weighted by 1 / (t+_{k_i} t-_{k_j})."""
    K = log_t_plus.shape[0]
    idx = jnp.clip(position - 1, 0, K - 1)
    pos_item = (clicks > 0) & mask
    neg_item = (clicks <= 0) & mask
    pair = pos_item[..., :, None] & neg_item[..., None, :]  # [..., i, j]
    diff = scores[..., :, None] - scores[..., None, :]
    l = jnp.where(pair, jax.nn.softplus(-diff), 0.0)
    # Only ratios to position 1 matter; normalising here keeps the loss scale independent of the
    # running estimates' absolute level.
    tp = jnp.exp(jax.lax.stop_gradient(log_t_plus - log_t_plus[0]))[idx]
    tm = jnp.exp(jax.lax.stop_gradient(log_t_minus - log_t_minus[0]))[idx]
    w = 1.0 / (tp[..., :, None] * tm[..., None, :])
    n_pairs = jnp.maximum(jnp.sum(pair), 1)
    loss = jnp.sum(l * w) / n_pairs
    # Closed-form bias update from this batch's pairs (constants for the ranker).
    lc = jax.lax.stop_gradient(l)
    plus = jnp.zeros(K).at[idx].add(jnp.sum(lc / tm[..., None, :], axis=-1))
    minus = jnp.zeros(K).at[idx].add(jnp.sum(lc / tp[..., :, None], axis=-2))
    # Per-item averages, so the estimates do not depend on how many pairs a batch happens to hold.
    n_plus = jnp.zeros(K).at[idx].add(jnp.where(pos_item, 1.0, 0.0))
    n_minus = jnp.zeros(K).at[idx].add(jnp.where(neg_item, 1.0, 0.0))
    log_plus = jnp.log(jnp.maximum(plus, 1e-30)) - jnp.log(jnp.maximum(n_plus, 1.0))
    log_minus = jnp.log(jnp.maximum(minus, 1e-30)) - jnp.log(jnp.maximum(n_minus, 1.0))
    return PairwiseOut(loss, log_plus, log_minus, plus > 0, minus > 0)
