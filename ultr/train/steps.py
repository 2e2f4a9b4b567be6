"""Pure, jitted train and score steps for any method of `ultr.methods`. Shapes are fixed ([B, K]
batches, a device-resident feature matrix [N, F] gathered inside the step), so nothing
recompiles after the first step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ultr import methods
from ultr.errors import DataError
from ultr.methods import Method, Parts
from ultr.train.state import TrainState


@dataclass(frozen=True)
class Steps:
    init: Callable[[jax.Array, int], TrainState]
    train_step: Callable[[TrainState, Mapping[str, jax.Array], jax.Array], tuple[TrainState, dict[str, jax.Array]]]
    score: Callable[[Any, jax.Array, jax.Array], jax.Array]
    propensity_curve: Callable[[Any], jax.Array] | None  # relative examination per position 1..K; None: no curve
    learns_propensity: bool
    uses_context: bool  # the propensity tower reads what is shown: its curve needs logged contexts
    # P(click) [B, K] of shown items (ranker params, tower params, doc_index, position, features);
    # None: the method's towers are not a click model
    click_probability: Callable[[Any, Any, jax.Array, jax.Array, jax.Array], jax.Array] | None
    # How often JAX traced the train step: the Python body runs only while tracing, and every
    # trace of a jitted function is a compile, so 1 means the step never recompiled.
    traces: list[int] = field(default_factory=lambda: [0])


def check_known(method: Method, known: Mapping[str, Any]) -> None:
    if missing := [k for k in method.needs if k not in known]:
        raise DataError(f"{method.name} needs {method.needs_hint}; missing {missing}")


def make_steps(
    name: str,
    ranker: nn.Module,
    tower: nn.Module,
    tx_ranker: optax.GradientTransformation,
    tx_tower: optax.GradientTransformation,
    method_cfg: Mapping[str, Any],
    *,
    num_features: int,
    list_size: int,
    propensity_context: bool = False,
    known: Mapping[str, np.ndarray] | None = None,
) -> Steps:
    """init/train/score functions for method `name`. `tower` is its second model (a propensity
    tower, or DR's direct method); `known` holds what it reads instead of learning."""
    method = methods.get(name)
    known = {k: jnp.asarray(v, jnp.float32) for k, v in (known or {}).items()}
    check_known(method, known)
    method.check(method_cfg, propensity_context)
    p = Parts(ranker, tower, method_cfg, known, list_size, num_features, propensity_context)

    def init(key: jax.Array, batch_size: int) -> TrainState:
        k_r, k_p, k_state = jax.random.split(key, 3)
        shape = (batch_size, list_size)
        x = jnp.zeros(shape + (num_features,), jnp.float32) if num_features else jnp.zeros(shape, jnp.int32)
        r_params, p_params = ranker.init(k_r, x), method.init_tower(p, k_p, x)
        return TrainState(step=jnp.zeros((), jnp.int32), ranker=r_params, propensity=p_params,
                          ranker_opt=tx_ranker.init(r_params), propensity_opt=tx_tower.init(p_params), key=k_state)

    def losses(r_params, p_params, batch, features, dropout_key):
        x = p.inputs(features, batch["doc_index"])
        scores = ranker.apply(r_params, x, train=True, rngs={"dropout": dropout_key})
        # Folded in, not split off, so the ranker's dropout stream is the same as without it.
        return method.loss(p, scores, p_params, batch, x, jax.random.fold_in(dropout_key, 1))

    grad_fn = jax.grad(losses, argnums=(0, 1), has_aux=True)

    def train_step(state: TrainState, batch, features):
        key, dropout_key = jax.random.split(state.key)
        (g_r, g_p), metrics = grad_fn(state.ranker, state.propensity, batch, features, dropout_key)
        # Separate optimisers = separate global-norm clipping per tower, as in the reference DLA.
        upd_r, opt_r = tx_ranker.update(g_r, state.ranker_opt, state.ranker)
        ranker_params = optax.apply_updates(state.ranker, upd_r)
        prop_params, opt_p = method.update_tower(p, state.propensity, g_p, state.propensity_opt, tx_tower, metrics)
        metrics = {k: v for k, v in metrics.items() if not k.startswith("_")}
        new = state.replace(step=state.step + 1, ranker=ranker_params, propensity=prop_params, ranker_opt=opt_r,
                            propensity_opt=opt_p, key=key)
        return new, metrics

    def score(r_params, doc_index, features):
        return ranker.apply(r_params, p.inputs(features, doc_index), train=False)

    def click_probability(r_params, p_params, doc_index, position, features):
        x = p.inputs(features, doc_index)
        return method.click_probability(p, ranker.apply(r_params, x, train=False), p_params, position, x)

    def propensity_curve(p_params, contexts=None):
        return method.curve(p, p_params, contexts)

    traces = [0]

    def counted_step(*args: Any) -> Any:
        traces[0] += 1
        return train_step(*args)

    # The state is donated: its buffers are reused for the next state instead of copied.
    return Steps(init, jax.jit(counted_step, donate_argnums=0), jax.jit(score),
                 jax.jit(propensity_curve) if method.reports_curve else None,
                 method.learns_propensity, method.learns_propensity and method.uses_context(p),
                 jax.jit(click_probability) if method.predicts_clicks else None, traces)
