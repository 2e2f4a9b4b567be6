"""What a ranker shows: its top k by score, or a Plackett-Luce sample of k without replacement.

Plackett-Luce with temperature T picks rank 1 with softmax(s / T) over the candidates, rank 2 the
same over those left, and so on. Adding Gumbel noise to s / T and sorting draws exactly that
ranking (the Gumbel-top-k trick), in one sort instead of k sequential draws."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Scores of padding slots: below every real score, finite so that arithmetic on them stays finite.
EXCLUDED = -1e30


def top_k(scores: jax.Array, mask: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """(slots [k] of the k best-scored valid candidates, best first; valid [k]). Ties keep slot order."""
    _, order = jax.lax.top_k(jnp.where(mask, scores, EXCLUDED), k)  # a partial sort: k is ~10, lists up to 1000s
    return order, mask[order]


def plackett_luce(key: jax.Array, scores: jax.Array, mask: jax.Array, k: int, temperature: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """A ranking of k drawn from Plackett-Luce over softmax(scores / temperature): (slots [k], valid [k])."""
    gumbel = jax.random.gumbel(key, scores.shape, jnp.float32)
    return top_k(scores / temperature + gumbel, mask, k)


def log_prob(scores: jax.Array, mask: jax.Array, ranking: jax.Array, valid: jax.Array) -> jax.Array:
    """log P(the first k ranks are `ranking` [..., k]) under Plackett-Luce on `scores` [W] (mask [W]):
    sum over ranks of s_r - log(sum of exp(s) over the candidates not yet placed). Invalid ranks
    (a list shorter than k) add nothing. Leading axes of `ranking` are alternative rankings."""
    s = jnp.where(mask, scores, EXCLUDED)
    m = jnp.max(s)
    total = jnp.sum(jnp.where(mask, jnp.exp(s - m), 0.0))
    placed = jnp.where(valid, jnp.exp(s[ranking] - m), 0.0)
    before = jnp.cumsum(placed, axis=-1) - placed
    left = jnp.maximum(total - before, 1e-30)
    return jnp.sum(jnp.where(valid, s[ranking] - m - jnp.log(left), 0.0), axis=-1)
