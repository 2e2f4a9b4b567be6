"""Objectives that fit a click model with neural towers: Regression-EM and the two-tower model.
Pointwise (sigmoid) losses over [..., K] arrays with a mask; means over valid items."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from ultr.errors import DataError


class TowerLosses(NamedTuple):
    total: jax.Array
    rank: jax.Array
    propensity: jax.Array


def _masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sum(jnp.where(mask, x, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def rem_position_posteriors(scores: jax.Array, propensity_logits: jax.Array, clicks: jax.Array, position: jax.Array,
                            mask: jax.Array, list_size: int) -> tuple[jax.Array, jax.Array]:
    """Per position k: the sum of P(E=1 | c) over the batch's items shown at k, and their count.
    Wang et al.'s M-step for a per-position examination is their ratio (the mean posterior)."""
    gamma, theta = jax.nn.sigmoid(scores), jax.nn.sigmoid(propensity_logits)
    post_e = clicks + (1 - clicks) * theta * (1 - gamma) / jnp.maximum(1.0 - theta * gamma, 1e-6)
    idx = jnp.clip(position - 1, 0, list_size - 1)
    sums = jnp.zeros(list_size).at[idx].add(jnp.where(mask, post_e, 0.0))
    counts = jnp.zeros(list_size).at[idx].add(mask.astype(jnp.float32))
    return jax.lax.stop_gradient(sums), counts


def rem_loss(scores: jax.Array, propensity_logits: jax.Array, clicks: jax.Array, mask: jax.Array) -> TowerLosses:
    """Regression-EM (Wang, Golbandi, Bendersky, Metzler, Najork, WSDM 2018).

    Relevance gamma = sigmoid(s), examination theta = sigmoid(e). E-step (constants):
      P(R=1 | c) = c + (1 - c) (1 - theta) gamma / (1 - theta gamma)
      P(E=1 | c) = c + (1 - c) theta (1 - gamma) / (1 - theta gamma)
    M-step by regression: each tower fits its posterior with sigmoid cross-entropy.
    """
    gamma, theta = jax.nn.sigmoid(scores), jax.nn.sigmoid(propensity_logits)
    denom = jnp.maximum(1.0 - theta * gamma, 1e-6)
    post_r = jax.lax.stop_gradient(clicks + (1 - clicks) * (1 - theta) * gamma / denom)
    post_e = jax.lax.stop_gradient(clicks + (1 - clicks) * theta * (1 - gamma) / denom)
    l_rank = _masked_mean(optax.sigmoid_binary_cross_entropy(scores, post_r), mask)
    l_prop = _masked_mean(optax.sigmoid_binary_cross_entropy(propensity_logits, post_e), mask)
    return TowerLosses(l_rank + l_prop, l_rank, l_prop)


def tower_click_probability(scores: jax.Array, propensity_logits: jax.Array, combine: str) -> jax.Array:
    """P(click) of the click model the towers were fitted as: additive sigmoid(s + e), or
    multiplicative sigmoid(s) sigmoid(e) (PBM: the two-tower model's PAL form, and REM)."""
    if combine == "additive":
        return jax.nn.sigmoid(scores + propensity_logits)
    return jax.nn.sigmoid(scores) * jax.nn.sigmoid(propensity_logits)


def two_tower_loss(scores: jax.Array, propensity_logits: jax.Array, clicks: jax.Array, mask: jax.Array,
                   *, combine: str = "additive") -> TowerLosses:
    """Two-tower click model trained on clicks; only the relevance tower ranks at test time.

    additive:       P(click) = sigmoid(s + e)            (e.g. Zhuang et al., WWW 2021; Yan et al., WSDM 2022)
    multiplicative: P(click) = sigmoid(s) * sigmoid(e)   (PAL, Guo et al., RecSys 2019: the PBM factorisation)
    """
    if combine == "additive":
        loss = optax.sigmoid_binary_cross_entropy(scores + propensity_logits, clicks)
    elif combine == "multiplicative":
        log_p = jax.nn.log_sigmoid(scores) + jax.nn.log_sigmoid(propensity_logits)
        log_not_p = jnp.log1p(-jnp.minimum(jnp.exp(log_p), 1 - 1e-6))
        loss = -(clicks * log_p + (1 - clicks) * log_not_p)
    else:
        raise DataError(f"two_tower combine={combine!r}; use additive or multiplicative")
    total = _masked_mean(loss, mask)
    return TowerLosses(total, total, total)
