"""What an online method is: a frozen dataclass of its settings (hashable, so jit specialises on
it) with pure functions over its state.

  init(key, num_features)                                    the starting state (a pytree)
  score(state, x [..., F])                                   the current ranker's scores
  interact(state, key, x [W, F], mask [W], label [W], feed)  one interaction: rank, show k, get
        clicks from the feed's user, update -> (state, slots [k], shown [k], clicks [k])
  interact_batch(state, keys [B], features [N, F], doc [B, W], mask, label, feed)  B interactions
        shown by the same ranker; the state moves by the sum of their updates (ULTRA's batched form)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ultr.online.display import plackett_luce, top_k
from ultr.online.feed import User
from ultr.online.rankers import make_ranker, zero_output_layer


class Feed(NamedTuple):
    """What one interaction needs besides the query: the user, its parameter tables, list size k."""

    user: User
    tables: Any
    k: int


@dataclass(frozen=True)
class OnlineMethod:
    key: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    # Seeds side by side (vmap) or one after another (lax.map): whichever is faster on CPU, measured
    # in benchmarks/bench_online.py; the results are the same.
    vmap_seeds: ClassVar[bool] = False
    ranker: str = "linear"
    hidden: tuple[int, ...] = (32,)
    # start the MLP's output layer at zero (rankers.zero_output_layer): uniform first lists
    zero_output: bool = False

    @property
    def model(self):
        return make_ranker(self.ranker, self.hidden)

    def init(self, key: jax.Array, num_features: int) -> Any:
        state = self.model.init(key, jnp.zeros((2, num_features), jnp.float32))
        return zero_output_layer(state) if self.zero_output else state

    def params(self, state: Any) -> Any:
        return state

    def score(self, state: Any, x: jax.Array) -> jax.Array:
        return self.model.apply(self.params(state), x)

    def interact(self, state: Any, key: jax.Array, x: jax.Array, mask: jax.Array, label: jax.Array,
                 feed: Feed) -> tuple[Any, jax.Array, jax.Array, jax.Array]:
        raise NotImplementedError

    def interact_batch(self, state: Any, keys: jax.Array, features: jax.Array, doc: jax.Array, mask: jax.Array,
                       label: jax.Array, feed: Feed) -> tuple[Any, jax.Array, jax.Array, jax.Array]:
        after, slots, shown, clicks = jax.vmap(lambda kk, d, m, y: self.interact(state, kk, features[d], m, y, feed))(keys, doc, mask, label)
        return jax.tree.map(lambda s, a: s + jnp.sum(a - s, axis=0), state, after), slots, shown, clicks


def ranker_order(key: jax.Array, scores: jax.Array, mask: jax.Array, k: int, temperature: float) -> tuple[jax.Array, jax.Array]:
    """A ranker's top k of the candidates (slots, valid): by score, or Plackett-Luce sampled with
    this temperature (> 0) as the feed's stochastic display."""
    k = min(k, scores.shape[-1])
    return top_k(scores, mask, k) if temperature == 0 else plackett_luce(key, scores, mask, k, temperature)


def directions(key: jax.Array, params: Any, n: int) -> tuple[jax.Array, jax.Array, Any]:
    """(flat parameters [P], n uniformly random unit vectors in their space [n, P], unravel)."""
    flat, unravel = ravel_pytree(params)
    u = jax.random.normal(key, (n, flat.shape[0]), flat.dtype)
    return flat, u / jnp.linalg.norm(u, axis=1, keepdims=True), unravel
