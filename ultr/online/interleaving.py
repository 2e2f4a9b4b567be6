"""Team-draft multileaving (Radlinski et al., CIKM 2008, for two rankers; Schuth et al., CIKM
2014, for many): in each round the rankers take turns in a random order, each adding its
highest-ranked document not yet shown; a click credits the team that added the document.
With two rankers it is team-draft interleaving, which DBGD uses."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def team_draft(key: jax.Array, orders: jax.Array, valid: jax.Array, k: int, width: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Multileave R rankings of `width` candidate slots. orders [R, L >= k]: each ranker's best L
    slots, best first (its top k suffice: fewer than k are taken before its last turn); valid [R, L]:
    whether that candidate exists (padding sorts last).
    Returns (slots [k], team [k] int32: the ranker that added each, shown [k] bool)."""
    R, L = orders.shape
    rounds = -(-k // R)
    turns = jax.vmap(lambda kk: jax.random.permutation(kk, R))(jax.random.split(key, rounds)).reshape(-1)[:k]
    taken = jnp.zeros((width,), bool)
    slots, shown = [], []
    for t in range(k):
        team = turns[t]
        order, ok = orders[team], valid[team]
        free = ok & ~taken[order]
        first = jnp.argmax(free)  # the team's best candidate not yet shown
        slot, any_free = order[first], free[first]
        taken = taken.at[slot].set(taken[slot] | any_free)
        slots.append(slot)
        shown.append(any_free)
    return jnp.stack(slots), turns.astype(jnp.int32), jnp.stack(shown)


def credit(team: jax.Array, clicks: jax.Array, num_teams: int) -> jax.Array:
    """Clicks per team [R]."""
    return jnp.zeros(num_teams, clicks.dtype).at[team].add(clicks)
