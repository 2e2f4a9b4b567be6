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

from ultr.online.display import log_prob, plackett_luce
from ultr.online.methods.base import Feed, OnlineMethod


def observed(clicks: jax.Array, valid: jax.Array) -> jax.Array:
    """The ranks the user is inferred to have seen [k]: down to the last click, and one more."""
    pos = jnp.arange(clicks.shape[0])
    last = jnp.max(jnp.where((clicks > 0) & valid, pos, -1))
    return valid & (pos <= last + 1)


def pair_weights(scores: jax.Array, mask: jax.Array, slots: jax.Array, valid: jax.Array, clicks: jax.Array) -> jax.Array:
    """[k, k]: rho c for each inferred preference (rank i clicked over rank j observed and not
    clicked), 0 elsewhere; c = e^f_i e^f_j / (e^f_i + e^f_j)^2 is d P(d_i > d_j) / d (f_i - f_j)."""
    k = slots.shape[0]
    clicked = (clicks > 0) & valid
    prefer = clicked[:, None] & (observed(clicks, valid) & ~clicked)[None, :]
    i, j = jnp.meshgrid(jnp.arange(k), jnp.arange(k), indexing="ij")
    swapped = jnp.broadcast_to(slots, (k, k, k))
    swapped = jnp.where(jnp.arange(k) == i[..., None], slots[j][..., None], swapped)
    swapped = jnp.where(jnp.arange(k) == j[..., None], slots[i][..., None], swapped)
    rho = jax.nn.sigmoid(log_prob(scores, mask, swapped, valid) - log_prob(scores, mask, slots, valid))
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
