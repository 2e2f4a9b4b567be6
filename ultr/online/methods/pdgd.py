"""Pairwise Differentiable Gradient Descent (Oosterhuis and de Rijke, CIKM 2018).

The ranker's scores define a Plackett-Luce policy; each interaction shows a ranking R sampled from
it. A clicked document is inferred preferred over every unclicked one the user observed: those
above the last click and the one just below it. Each such pair d_i > d_j adds
    rho(d_i, d_j) grad P(d_i > d_j),   P(d_i > d_j) = e^f_i / (e^f_i + e^f_j),
    rho(d_i, d_j) = P(R*) / (P(R) + P(R*)),
R* being R with d_i and d_j swapped: the weight that makes the expected gradient unbiased under
position bias (the paper's Theorem 1). The update is gradient ascent with the learning rate.
Any differentiable ranker works: the pair terms are per-document coefficients on grad f_d, one
vector-Jacobian product of the ranker."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ultr.online.display import EXCLUDED, plackett_luce
from ultr.online.methods.base import Feed, OnlineMethod


def observed(clicks: jax.Array, valid: jax.Array) -> jax.Array:
    """The ranks the user is inferred to have seen [k]: down to the last click, and one more."""
    pos = jnp.arange(clicks.shape[0])
    last = jnp.max(jnp.where((clicks > 0) & valid, pos, -1))
    return valid & (pos <= last + 1)


def swap_weights(scores: jax.Array, mask: jax.Array, slots: jax.Array, valid: jax.Array) -> jax.Array:
    """[k, k]: rho = P(R*) / (P(R) + P(R*)) under the Plackett-Luce policy, R* the shown ranking R
    with ranks i and j swapped. The numerators are the same documents in both; for i < j only the
    denominators of ranks i+1..j change, where document j's mass is replaced by document i's:
        P(R) / P(R*) = prod_{r=i+1..j} (A_rj + e_i) / (A_rj + e_j),
    A_rj the mass left at rank r without document j (the unshown candidates, shown ranks r..j-1 and
    those below j), summed without subtraction so that a peaked policy stays exact. The ratio as a
    product of k^3 factors, not a sum of logs, is ~4x faster on CPU; factors are kept in
    [1e-38, inf) so an over- or underflowing product means rho 0 or 1, as it should."""
    k = slots.shape[0]
    s = jnp.where(mask, scores, EXCLUDED)
    e_all = jnp.where(mask, jnp.exp(s - jnp.max(s)), 0.0)
    # a compare, not a scatter: scatters inside vmap are slow on CPU
    shown = jnp.any((slots[:, None] == jnp.arange(s.shape[0])[None, :]) & valid[:, None], axis=0)
    unshown = jnp.sum(jnp.where(shown, 0.0, e_all))
    e = jnp.where(valid, e_all[slots], 0.0)  # [k] by rank
    t = jnp.arange(k)
    between = ((t[:, None, None] <= t[None, None, :]) & (t[None, None, :] < t[None, :, None])).astype(e.dtype)  # [r, j, t]: r <= t < j
    below = (t[None, :] > t[:, None]).astype(e.dtype)  # [j, t]: t > j
    a = (unshown + between @ e + (below @ e)[None, :]).T  # [j, r]
    i, j, r = t[:, None, None], t[None, :, None], t[None, None, :]
    factor = jnp.maximum(a[None] + e[:, None, None], 1e-38) / jnp.maximum(a[None] + e[None, :, None], 1e-38)
    ratio = jnp.prod(jnp.where((i < r) & (r <= j), factor, 1.0), -1)  # P(R) / P(R*) for i < j
    ratio = jnp.where(t[:, None] < t[None, :], ratio, ratio.T)  # the swap of (j, i) is the swap of (i, j)
    return 1.0 / (1.0 + ratio)


def pair_weights(scores: jax.Array, mask: jax.Array, slots: jax.Array, valid: jax.Array, clicks: jax.Array) -> jax.Array:
    """[k, k]: rho c for each inferred preference (rank i clicked over rank j observed and not
    clicked), 0 elsewhere; c = e^f_i e^f_j / (e^f_i + e^f_j)^2 is d P(d_i > d_j) / d (f_i - f_j)."""
    clicked = (clicks > 0) & valid
    prefer = clicked[:, None] & (observed(clicks, valid) & ~clicked)[None, :]
    rho = swap_weights(scores, mask, slots, valid)
    f = scores[slots]
    c = jax.nn.sigmoid(f[:, None] - f[None, :]) * jax.nn.sigmoid(f[None, :] - f[:, None])
    return jnp.where(prefer, rho * c, 0.0)


def score_coefficients(scores: jax.Array, mask: jax.Array, slots: jax.Array, valid: jax.Array, clicks: jax.Array) -> jax.Array:
    """The gradient as coefficients on each candidate's grad f [W]: + for the preferred document of
    a pair, - for the other."""
    w = pair_weights(scores, mask, slots, valid, clicks)
    return jnp.zeros(scores.shape, scores.dtype).at[slots].add(w.sum(axis=1) - w.sum(axis=0))


@dataclass(frozen=True)
class PDGD(OnlineMethod):
    key = "pdgd"
    paper = "Oosterhuis and de Rijke, CIKM 2018"
    vmap_seeds = True
    learning_rate: float = 0.1
    temperature: float = 1.0  # the policy is Plackett-Luce over scores / temperature

    def interact(self, state, key, x, mask, label, feed: Feed):
        k_show, k_click = jax.random.split(key)
        f, pull = jax.vjp(lambda p: self.model.apply(p, x) / self.temperature, state)
        slots, valid = plackett_luce(k_show, f, mask, feed.k)
        clicks = feed.user.clicks(feed.tables, label[slots], valid, k_click)
        (grad,) = pull(score_coefficients(f, mask, slots, valid, clicks))
        state = jax.tree.map(lambda p, g: p + self.learning_rate * g, state, grad)
        return state, slots, valid, clicks


METHOD = PDGD
