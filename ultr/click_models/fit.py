"""Gradient fitting: the exact conditional log-likelihood of each session, minimised with optax in
jitted steps over streamed fixed-shape batches, early-stopped on a validation part of the
training log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ultr.click_models.base import bernoulli_ll
from ultr.click_models.module import FitModule as ClickModel
from ultr.click_models.data import SessionLog
from ultr.click_models.evaluate import accumulate, eval_step, mean_ll
from ultr.errors import DataError


@dataclass(frozen=True)
class FitSettings:
    batch_size: int = 8192
    epochs: int = 50
    optimizer: str = "adam"
    learning_rate: float = 0.05
    clip_norm: float | None = None
    patience: int = 2  # epochs without a validation gain of min_delta before the rate is cut (or the fit stops)
    min_delta: float = 1e-6
    decay: float = 0.3  # on a plateau the learning rate is multiplied by this, from the best parameters so far ...
    decays: int = 2  # ... this many times before the fit stops (0: stop at the first plateau)
    seed: int = 0


@dataclass
class Fitted:
    params: Any
    epochs: int
    steps: int
    train_seconds: float  # training passes only: compilation and validation excluded
    sessions_per_second: float
    validation: list[float] = field(default_factory=list)  # mean conditional LL per epoch


def init_params(model: ClickModel, batch_size: int, seed: int) -> Any:
    K = model.positions
    zeros = jnp.zeros((batch_size, K))
    return model.init(jax.random.key(seed), jnp.zeros((batch_size, K), jnp.int32), zeros, zeros > 0)


def optimizer(s: FitSettings) -> optax.GradientTransformation:
    make = getattr(optax, s.optimizer, None)
    if make is None:
        raise DataError(f"fit.optimizer={s.optimizer!r} is not an optax optimiser; use adam, adagrad, sgd, ...")
    # The rate is a hyperparameter in the optimiser state, so a plateau can cut it without recompiling.
    tx = optax.inject_hyperparams(make)(learning_rate=s.learning_rate)
    return optax.chain(optax.clip_by_global_norm(s.clip_norm), tx) if s.clip_norm else tx


def scale_rate(opt_state: Any, factor: float) -> Any:
    """The optimiser state with its learning rate multiplied by `factor` (moments kept)."""
    def visit(state):
        if hasattr(state, "hyperparams"):
            state.hyperparams["learning_rate"] = state.hyperparams["learning_rate"] * factor
            return state
        return tuple(visit(x) for x in state) if isinstance(state, tuple) else state
    return visit(opt_state)


def train_step(model: ClickModel, tx: optax.GradientTransformation) -> Callable[..., Any]:
    def loss(params, rows, click, mask):
        m = mask.astype(jnp.float32)
        ll = bernoulli_ll(model.apply(params, rows, click.astype(jnp.float32), mask), click.astype(jnp.float32))
        return -(ll * m).sum() / jnp.maximum(m.sum(), 1.0)

    def step(params, opt_state, rows, click, mask):
        value, grads = jax.value_and_grad(loss)(params, rows, click, mask)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value
    return jax.jit(step, donate_argnums=(0, 1))


def _check_finite(name: str, losses: list[jax.Array], first_step: int, s: FitSettings) -> None:
    values = np.asarray(jnp.stack(losses)) if losses else np.zeros(0)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise FloatingPointError(
            f"click model {name}: the loss became non-finite at step {first_step + int(bad[0])} "
            f"(learning rate {s.learning_rate}); lower fit.learning_rate or set fit.clip_norm=1.0")


def fit(model: ClickModel, train: SessionLog, val: SessionLog | None, s: FitSettings, name: str) -> Fitted:
    tx = optimizer(s)
    params = init_params(model, s.batch_size, s.seed)
    opt_state = tx.init(params)
    step, score = train_step(model, tx), eval_step(model)
    rng = np.random.default_rng(s.seed)
    best, best_ll, waited, decays, history, steps, seconds, epochs = params, -np.inf, 0, 0, [], 0, 0.0, 0
    compiled = None
    for epoch in range(s.epochs):
        losses, start = [], None
        for rows, click, mask in train.batches(s.batch_size, rng):
            if compiled is None:  # ahead-of-time compile, so the timing below excludes it
                compiled = step.lower(params, opt_state, rows, click, mask).compile()
            start = start or time.perf_counter()
            params, opt_state, value = compiled(params, opt_state, rows, click, mask)
            losses.append(value)
        jax.block_until_ready(params)
        seconds += time.perf_counter() - (start or time.perf_counter())
        _check_finite(name, losses, steps, s)
        steps, epochs = steps + len(losses), epoch + 1
        ll = mean_ll(accumulate(score, params, val, s.batch_size)) if val is not None and len(val) else -float(losses[-1])
        history.append(ll)
        if ll > best_ll + s.min_delta:
            best, best_ll, waited = jax.tree.map(jnp.copy, params), ll, 0
        else:
            waited += 1
            if waited >= s.patience:
                if decays >= s.decays:
                    break
                # a plateau: go back to the best parameters and go on at a lower rate
                params, opt_state = jax.tree.map(jnp.copy, best), scale_rate(opt_state, s.decay)
                decays, waited = decays + 1, 0
    return Fitted(best, epochs, steps, seconds, len(train) * epochs / max(seconds, 1e-9), history)
