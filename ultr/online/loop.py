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


def _gain(y: jax.Array) -> jax.Array:
    return jnp.exp2(y.astype(jnp.float32)) - 1.0


def ideal_dcg(lists: Lists, k: int) -> jax.Array:
    """[Q] DCG@k of each query's best k candidates: once per block, not a sort per interaction."""
    disc = 1.0 / jnp.log2(jnp.arange(2, k + 2))
    best = -jnp.sort(-jnp.where(lists.mask, lists.label, 0), axis=1)[:, :k]
    return jnp.sum(_gain(best) * disc[: best.shape[1]], axis=1)


def shown_ndcg(label: jax.Array, slots: jax.Array, shown: jax.Array, ideal: jax.Array) -> jax.Array:
    """nDCG@k of a displayed list against the query's best k candidates (NaN: no relevant one)."""
    disc = 1.0 / jnp.log2(jnp.arange(2, slots.shape[0] + 2))
    dcg = jnp.sum(jnp.where(shown, _gain(label[slots]), 0.0) * disc)
    return jnp.where(ideal > 0, dcg / jnp.maximum(ideal, 1e-9), jnp.nan)


def _interaction(method: OnlineMethod, feed: Feed, features: jax.Array, lists: Lists, ideal: jax.Array, state: Any,
                 key: jax.Array):
    k_query, k_act = jax.random.split(key)
    q = jax.random.randint(k_query, (), 0, lists.doc.shape[0])
    doc, mask, label = lists.doc[q], lists.mask[q], lists.label[q]
    state, slots, shown, clicks = method.interact(state, k_act, features[doc], mask, label, feed)
    return state, (shown_ndcg(label, slots, shown, ideal[q]), jnp.sum(clicks))


def _batched(method: OnlineMethod, feed: Feed, features: jax.Array, lists: Lists, ideal: jax.Array, batch: int,
             state: Any, key: jax.Array):
    """`batch` interactions shown by the same ranker, each updating from it; the state moves by the
    sum of their updates (for PDGD: the gradient summed over the batch, as ULTRA's batched PDGD).
    Each interaction draws its query and its action from its own key, as `_interaction` does."""
    if batch == 1:  # the papers' form: every interaction updates the ranker the next one uses
        return _interaction(method, feed, features, lists, ideal, state, key)
    k_query, k_act = jax.vmap(jax.random.split, out_axes=1)(jax.random.split(key, batch))
    q = jax.vmap(lambda kk: jax.random.randint(kk, (), 0, lists.doc.shape[0]))(k_query)
    label = lists.label[q]
    state, slots, shown, clicks = method.interact_batch(state, k_act, features, lists.doc[q], lists.mask[q], label, feed)
    return state, (jax.vmap(shown_ndcg)(label, slots, shown, ideal[q]), jnp.sum(clicks, axis=-1))


@partial(jax.jit, static_argnames=("method", "user", "k", "n", "batch"))
def run_block(method: OnlineMethod, user: Any, k: int, n: int, tables: Any, features: jax.Array, lists: Lists,
              states: Any, keys: jax.Array, batch: int = 1) -> tuple[Any, jax.Array, jax.Array]:
    """n interactions for each seed (n a multiple of `batch`, the interactions per update): states and
    keys [S, ...] -> (states, online nDCG [S, n], clicks [S, n]). Seeds run vmapped, or one after
    another where the method says vmapping is slower on CPU."""
    feed, ideal = Feed(user, tables, k), ideal_dcg(lists, min(k, lists.doc.shape[1]))

    def one_seed(state, key):
        step = lambda s, kk: _batched(method, feed, features, lists, ideal, batch, s, kk)  # noqa: E731
        state, (ndcg, clicks) = jax.lax.scan(step, state, jax.random.split(key, n // batch))
        return state, ndcg.reshape(n), clicks.reshape(n)
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
          *, seeds: list[int], interactions: int, every: int, also_at: tuple[int, ...] = (), batch: int = 1) -> tuple[Any, Curves]:
    """Run `interactions` interactions per seed, recording the curves every `every` interactions and
    at each count in `also_at` (all multiples of `batch`, the interactions per update). Returns the
    final states [S, ...] and the curves."""
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
        states, ndcg, _ = run_block(method, user, k, n, tables, features, train, states, block_keys, batch)
        ndcg = np.asarray(ndcg, np.float64)
        discount = ONLINE_DISCOUNT ** np.arange(done, point)
        cumulative += np.nansum(ndcg * discount, axis=1)
        done = point
        curves.interactions.append(done)
        curves.offline.append(np.asarray(offline_ndcg(method, states, features, test)))
        curves.online.append(cumulative.copy())
        curves.online_mean.append(np.nanmean(ndcg, axis=1))
    return states, curves
