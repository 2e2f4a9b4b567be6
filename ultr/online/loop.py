"""The interaction loop, compiled: for a block of interactions, one `lax.scan` samples a query,
lets the method rank and show k documents, simulates the clicks and updates, all in JAX; seeds
run side by side (vmapped). Between blocks the loop records the learning curves:
  offline  nDCG@10 of the current ranker on a held-out split (queries with a relevant document)
  online   nDCG@k of the lists actually shown, the user experience while learning; summed with the
           discount 0.9995^t over interactions t (Oosterhuis and de Rijke, 2018) as the cumulative
           online performance"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import rax

from ultr.online.feed import Lists
from ultr.online.methods.base import Feed, OnlineMethod

ONLINE_DISCOUNT = 0.9995


def shown_ndcg(label: jax.Array, mask: jax.Array, slots: jax.Array, shown: jax.Array) -> jax.Array:
    """nDCG@k of a displayed list against the query's best k candidates (NaN: no relevant one)."""
    gain = lambda y: jnp.exp2(y.astype(jnp.float32)) - 1.0  # noqa: E731
    disc = 1.0 / jnp.log2(jnp.arange(2, slots.shape[0] + 2))
    dcg = jnp.sum(jnp.where(shown, gain(label[slots]), 0.0) * disc)
    ideal = jnp.sum(gain(jnp.sort(jnp.where(mask, label, 0))[::-1][: slots.shape[0]]) * disc)
    return jnp.where(ideal > 0, dcg / jnp.maximum(ideal, 1e-9), jnp.nan)


def _interaction(method: OnlineMethod, feed: Feed, features: jax.Array, lists: Lists, state: Any, key: jax.Array):
    k_query, k_act = jax.random.split(key)
    q = jax.random.randint(k_query, (), 0, lists.doc.shape[0])
    doc, mask, label = lists.doc[q], lists.mask[q], lists.label[q]
    state, slots, shown, clicks = method.interact(state, k_act, features[doc], mask, label, feed)
    return state, (shown_ndcg(label, mask, slots, shown), jnp.sum(clicks))


@partial(jax.jit, static_argnames=("method", "user", "k", "n"))
def run_block(method: OnlineMethod, user: Any, k: int, n: int, tables: Any, features: jax.Array, lists: Lists,
              states: Any, keys: jax.Array) -> tuple[Any, jax.Array, jax.Array]:
    """n interactions for each seed: states and keys [S, ...] -> (states, online nDCG [S, n], clicks [S, n]).
    Seeds run vmapped, or one after another where the method says vmapping is slower on CPU."""
    feed = Feed(user, tables, k)

    def one_seed(state, key):
        step = lambda s, kk: _interaction(method, feed, features, lists, s, kk)  # noqa: E731
        state, (ndcg, clicks) = jax.lax.scan(step, state, jax.random.split(key, n))
        return state, ndcg, clicks
    if method.vmap_seeds:
        return jax.vmap(one_seed)(states, keys)
    return jax.lax.map(lambda a: one_seed(*a), (states, keys))


@dataclass
class Evaluation:
    """A split's lists for offline evaluation: scores on its documents only, read into [Q, W]."""

    rows: jax.Array  # [N] feature rows of the split's documents
    where: jax.Array  # [Q, W] position of each candidate in `rows`
    label: jax.Array
    mask: jax.Array
    counted: jax.Array  # [Q] bool: queries with a relevant document

    @classmethod
    def of(cls, lists: Lists) -> "Evaluation":
        doc, mask = np.asarray(lists.doc), np.asarray(lists.mask)
        rows, where = np.unique(np.where(mask, doc, doc[mask].min() if mask.any() else 0), return_inverse=True)
        label = np.asarray(lists.label)
        return cls(jnp.asarray(rows), jnp.asarray(where.reshape(doc.shape)), jnp.asarray(label), jnp.asarray(mask),
                   jnp.asarray(((label > 0) & mask).any(axis=1)))


jax.tree_util.register_dataclass(Evaluation, data_fields=["rows", "where", "label", "mask", "counted"], meta_fields=[])


@partial(jax.jit, static_argnames=("method",))
def offline_ndcg(method: OnlineMethod, states: Any, features: jax.Array, ev: Evaluation) -> jax.Array:
    """Mean nDCG@10 per seed [S] over the queries that count."""
    def one(state):
        scores = method.score(state, features[ev.rows])[ev.where]
        per = rax.ndcg_metric(scores, ev.label.astype(jnp.float32), where=ev.mask, topn=10, reduce_fn=None)
        return jnp.sum(jnp.where(ev.counted, per, 0.0)) / jnp.maximum(jnp.sum(ev.counted), 1)
    return jax.vmap(one)(states)


@dataclass
class Curves:
    interactions: list[int] = field(default_factory=list)
    offline: list[np.ndarray] = field(default_factory=list)  # [S] per point
    online: list[np.ndarray] = field(default_factory=list)  # discounted cumulative online nDCG [S] per point
    online_mean: list[np.ndarray] = field(default_factory=list)  # mean online nDCG of the block [S]


def learn(method: OnlineMethod, user: Any, tables: Any, k: int, features: jax.Array, train: Lists, test: Evaluation,
          *, seeds: list[int], interactions: int, every: int, also_at: tuple[int, ...] = ()) -> tuple[Any, Curves]:
    """Run `interactions` interactions per seed, recording the curves every `every` interactions and
    at each count in `also_at`. Returns the final states [S, ...] and the curves."""
    init = jax.vmap(lambda kk: method.init(kk, features.shape[1]))
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    init_keys, keys = jax.vmap(lambda kk: jax.random.split(kk, 2), out_axes=1)(keys)
    states = init(init_keys)
    points = sorted({*range(every, interactions + 1, every), *(c for c in also_at if 0 < c <= interactions), interactions})
    curves, done, cumulative = Curves(), 0, np.zeros(len(seeds))
    curves.interactions.append(0)
    curves.offline.append(np.asarray(offline_ndcg(method, states, features, test)))
    curves.online.append(cumulative.copy())
    curves.online_mean.append(np.full(len(seeds), np.nan))
    for point in points:
        n = point - done
        block_keys = jax.vmap(lambda kk: jax.random.fold_in(kk, done))(keys)
        states, ndcg, _ = run_block(method, user, k, n, tables, features, train, states, block_keys)
        ndcg = np.asarray(ndcg, np.float64)
        discount = ONLINE_DISCOUNT ** np.arange(done, point)
        cumulative += np.nansum(ndcg * discount, axis=1)
        done = point
        curves.interactions.append(done)
        curves.offline.append(np.asarray(offline_ndcg(method, states, features, test)))
        curves.online.append(cumulative.copy())
        curves.online_mean.append(np.nanmean(ndcg, axis=1))
    return states, curves
