"""Pairwise debiasing: Unbiased LambdaMART's objective with a neural ranker (Hu, Wang, Peng, Li,
"Unbiased LambdaMART: An Unbiased Pairwise Learning-to-Rank Algorithm", WWW 2019).

Position biases t+_k (of clicked items) and t-_k (of unclicked ones) divide a pairwise logistic
loss; they are re-estimated in closed form from the same pairs (their eq. with p = 0):
  t+_k = S+_k / S+_1,  S+_k = sum_{pairs, clicked at k} l_ij / t-_{k_j},
  t-_k = S-_k / S-_1,  S-_k = sum_{pairs, unclicked at k} l_ij / t+_{k_i}.
The paper recomputes the sums over the whole log at each boosting round; with minibatches the sums
are exponential moving averages of the batch sums (a window of about 1 / (1 - momentum) batches),
and the ratio of the averaged sums is taken, not an average of per-batch ratios.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class PairwiseOut(NamedTuple):
    loss: jax.Array
    plus: jax.Array  # this batch's closed-form sums for t+ per position [K] (Hu et al., eq. with p = 0)
    minus: jax.Array  # and for t-


def bias_ratios(sums: jax.Array) -> jax.Array:
    """t_k = S_k / S_1 from accumulated per-position sums; 1 where there is no evidence yet."""
    ok = (sums > 0) & (sums[0] > 0)
    return jnp.where(ok, sums / jnp.where(ok, sums[0], 1.0), 1.0)


def pairwise_debiasing_loss(scores: jax.Array, clicks: jax.Array, position: jax.Array, mask: jax.Array,
                            t_plus_sums: jax.Array, t_minus_sums: jax.Array) -> PairwiseOut:
    """Loss over all (clicked i, unclicked j) pairs of each list, weighted by 1 / (t+_{k_i} t-_{k_j}),
    with t+ and t- read from the accumulated sums (`bias_ratios`), plus this batch's sums:
      S+_k = sum over pairs whose clicked item is at k of l_ij / t-_{k_j},
      S-_k = sum over pairs whose unclicked item is at k of l_ij / t+_{k_i}.
    Sums over pairs, not averages over items: how often position k is clicked is what carries its
    bias, and dividing by the number of clicked items there would cancel it."""
    K = t_plus_sums.shape[0]
    idx = jnp.clip(position - 1, 0, K - 1)
    pos_item = (clicks > 0) & mask
    neg_item = (clicks <= 0) & mask
    pair = pos_item[..., :, None] & neg_item[..., None, :]  # [..., i, j]
    diff = scores[..., :, None] - scores[..., None, :]
    l = jnp.where(pair, jax.nn.softplus(-diff), 0.0)
    tp = jax.lax.stop_gradient(bias_ratios(t_plus_sums))[idx]
    tm = jax.lax.stop_gradient(bias_ratios(t_minus_sums))[idx]
    w = 1.0 / (tp[..., :, None] * tm[..., None, :])
    n_pairs = jnp.maximum(jnp.sum(pair), 1)
    loss = jnp.sum(l * w) / n_pairs
    lc = jax.lax.stop_gradient(l)  # the bias update is a constant for the ranker
    plus = jnp.zeros(K).at[idx].add(jnp.sum(lc / tm[..., None, :], axis=-1))
    minus = jnp.zeros(K).at[idx].add(jnp.sum(lc / tp[..., :, None], axis=-2))
    return PairwiseOut(loss, plus, minus)
