"""What a ranker shows: its top k by score, or a Plackett-Luce sample of k without replacement.

Plackett-Luce with temperature T picks rank 1 with softmax(s / T) over the candidates, rank 2 the
same over those left, and so on. Adding Gumbel noise to s / T and sorting draws exactly that
ranking (the Gumbel-top-k trick), in one sort instead of k sequential draws."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Scores of padding slots: below every real score, finite so that arithmetic on them stays finite.
EXCLUDED = -1e30
# The floor of a probability mass before a division or a log: float32's smallest normal number. XLA
# on CPU flushes subnormals such as 1e-38 to zero, and 0 / 0 then turns PDGD's weights into NaN once
# a ranker's scores spread over ~90.
TINY = float(jnp.finfo(jnp.float32).tiny)


def top_k(scores: jax.Array, mask: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """(slots [k] of the k best-scored valid candidates, best first; valid [k]). Ties keep slot order."""
    s = jnp.where(mask, scores, EXCLUDED)
    # k of k or fewer is a full sort, which XLA:CPU runs as a comparison sort, 6x slower on a batch
    # of 256 lists of 10 than counting each candidate's rank; otherwise a partial sort (lists up to 1000s)
    order = _order_by_counting(s, k) if s.shape[-1] <= k else jax.lax.top_k(s, k)[1]
    return order, mask[order]


def _order_by_counting(s: jax.Array, k: int) -> jax.Array:
    """The k best slots of a short list, best first, as jax.lax.top_k orders them (ties: lower slot
    first): a candidate's rank is the number of candidates placed before it."""
    slot = jnp.arange(s.shape[-1])
    before = (s[None, :] > s[:, None]) | ((s[None, :] == s[:, None]) & (slot[None, :] < slot[:, None]))  # [i, j]: j before i
    rank = jnp.sum(before, axis=-1)
    return jnp.sum(jnp.where(rank[None, :] == jnp.arange(k)[:, None], slot, 0), axis=-1)


def plackett_luce(key: jax.Array, scores: jax.Array, mask: jax.Array, k: int, temperature: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """A ranking of k drawn from Plackett-Luce over softmax(scores / temperature): (slots [k], valid [k])."""
    gumbel = jax.random.gumbel(key, scores.shape, jnp.float32)
    return top_k(scores / temperature + gumbel, mask, k)


def log_prob(scores: jax.Array, mask: jax.Array, ranking: jax.Array, valid: jax.Array) -> jax.Array:
    """log P(the first k ranks are `ranking` [..., k]) under Plackett-Luce on `scores` [W] (mask [W]):
    sum over ranks of s_r - log(sum of exp(s) over the candidates not yet placed). Invalid ranks
    (a list shorter than k) add nothing. Leading axes of `ranking` are alternative orders of the
    same shown documents (PDGD's swapped rankings), which share the sum over the documents not shown.

    The sum over the candidates left at rank r is that shared sum plus the shown documents from r
    on: no subtraction, so it stays exact when one document holds almost all of the mass (the
    total-minus-placed form lost it to float32 cancellation once scores differ by ~17)."""
    s = jnp.where(mask, scores, EXCLUDED)
    m = jnp.max(s)
    e = jnp.where(mask, jnp.exp(s - m), 0.0)
    shown = jnp.zeros(s.shape, bool).at[ranking.reshape(-1)].max(jnp.broadcast_to(valid, ranking.shape).reshape(-1))
    unshown = jnp.sum(jnp.where(shown, 0.0, e))
    placed = jnp.where(valid, e[ranking], 0.0)
    left = unshown + jnp.flip(jnp.cumsum(jnp.flip(placed, -1), -1), -1)  # the shown ones from rank r on
    return jnp.sum(jnp.where(valid, s[ranking] - m - jnp.log(jnp.maximum(left, TINY)), 0.0), axis=-1)
