"""The full-information reference for the online table: the same ranker (linear or MLP) trained
offline on the training split's expert labels with rax's listwise softmax loss (adam, batches of
queries), kept at its best validation nDCG@10. How far an online method ends from it is the cost of
learning from clicks while showing results."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import optax
import rax

from ultr.online.feed import Lists
from ultr.online.loop import Evaluation, offline_ndcg
from ultr.online.methods.base import OnlineMethod


@partial(jax.jit, static_argnames=("method", "tx", "batch"))
def _epoch(method: OnlineMethod, tx: optax.GradientTransformation, batch: int, state: Any, opt: Any,
           features: jax.Array, train: Lists, key: jax.Array) -> tuple[Any, Any]:
    order = jax.random.permutation(key, train.doc.shape[0])
    steps = train.doc.shape[0] // batch

    def step(carry, i):
        state, opt = carry
        q = jax.lax.dynamic_slice(order, (i * batch,), (batch,))
        x, y, m = features[train.doc[q]], train.label[q].astype(jnp.float32), train.mask[q]
        loss = lambda p: rax.softmax_loss(method.score(p, x), y, where=m)  # noqa: E731
        grad = jax.grad(loss)(state)
        updates, opt = tx.update(grad, opt, state)
        return (optax.apply_updates(state, updates), opt), None
    (state, opt), _ = jax.lax.scan(step, (state, opt), jnp.arange(steps))
    return state, opt


def full_information(method: OnlineMethod, features: jax.Array, train: Lists, vali: Evaluation, *, seed: int = 0,
                     epochs: int = 100, batch: int = 32, learning_rate: float = 0.01) -> tuple[Any, float, int]:
    """(the ranker's state at its best validation nDCG@10, that nDCG, the epoch it came from)."""
    key = jax.random.key(seed)
    state = method.init(key, features.shape[1])
    tx = optax.adam(learning_rate)
    opt = tx.init(state)
    batch = min(batch, train.doc.shape[0])
    best = (state, float(offline_ndcg(method, jax.tree.map(lambda a: a[None], state), features, vali)[0]), 0)
    for epoch in range(1, epochs + 1):
        state, opt = _epoch(method, tx, batch, state, opt, features, train, jax.random.fold_in(key, epoch))
        v = float(offline_ndcg(method, jax.tree.map(lambda a: a[None], state), features, vali)[0])
        if v > best[1]:
            best = (state, v, epoch)
    return best
