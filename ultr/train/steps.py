"""Pure, jitted train and score steps. Shapes are fixed ([B, K] batches, a device-resident
feature matrix [N, F] gathered inside the step), so nothing recompiles after the first step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ultr.algorithms.dla import dla_loss
from ultr.algorithms.naive import naive_loss, oracle_loss
from ultr.train.state import TrainState

CLICK_METHODS = ("dla", "naive")
LABEL_METHODS = ("oracle",)
METHODS = CLICK_METHODS + LABEL_METHODS


@dataclass(frozen=True)
class Steps:
    init: Callable[[jax.Array, int], TrainState]
    train_step: Callable[[TrainState, Mapping[str, jax.Array], jax.Array], tuple[TrainState, dict[str, jax.Array]]]
    score: Callable[[Any, jax.Array, jax.Array], jax.Array]
    propensity_logits: Callable[[Any, jax.Array], jax.Array]


def make_steps(
    method: str,
    ranker: nn.Module,
    propensity: nn.Module,
    tx_ranker: optax.GradientTransformation,
    tx_propensity: optax.GradientTransformation,
    method_cfg: Mapping[str, Any],
    *,
    num_features: int,
    list_size: int,
    propensity_context: bool = False,
) -> Steps:
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; available: {list(METHODS)}")
    learns_propensity = method == "dla"
    rank_weight = float(method_cfg.get("rank_weight", 1.0))
    max_weight = method_cfg.get("max_weight")
    max_weight = None if max_weight is None else float(max_weight)

    def context(x: jax.Array) -> jax.Array | None:
        return x if propensity_context else None

    def inputs(features: jax.Array | None, doc_index: jax.Array) -> jax.Array:
        # Feature rankers read the device-resident feature matrix (the host ships only indices);
        # ID rankers (num_features=0, features=None) score the indices themselves.
        return doc_index if features is None else features[doc_index]

    def init(key: jax.Array, batch_size: int) -> TrainState:
        k_r, k_p, k_state = jax.random.split(key, 3)
        shape = (batch_size, list_size)
        x = jnp.zeros(shape + (num_features,), jnp.float32) if num_features else jnp.zeros(shape, jnp.int32)
        pos = jnp.ones((batch_size, list_size), jnp.int32)
        r_params = ranker.init(k_r, x)
        p_params = propensity.init(k_p, pos, context(x) if num_features else None)
        return TrainState(
            step=jnp.zeros((), jnp.int32),
            ranker=r_params,
            propensity=p_params,
            ranker_opt=tx_ranker.init(r_params),
            propensity_opt=tx_propensity.init(p_params),
            key=k_state,
        )

    def losses(r_params, p_params, batch, features, dropout_key):
        x = inputs(features, batch["doc_index"])
        scores = ranker.apply(r_params, x, train=True, rngs={"dropout": dropout_key})
        mask, targets = batch["mask"], batch["targets"]
        if method == "dla":
            logits = propensity.apply(p_params, batch["position"], context(x) if num_features else None)
            out = dla_loss(scores, logits, targets, batch["position"], mask, rank_weight=rank_weight, max_weight=max_weight)
            return out.total, {"loss": out.total, "rank_loss": out.rank, "propensity_loss": out.propensity}
        loss = naive_loss(scores, targets, mask) if method == "naive" else oracle_loss(scores, targets, mask)
        return loss, {"loss": loss, "rank_loss": loss}

    grad_fn = jax.grad(losses, argnums=(0, 1), has_aux=True)

    def train_step(state: TrainState, batch, features):
        key, dropout_key = jax.random.split(state.key)
        (g_r, g_p), metrics = grad_fn(state.ranker, state.propensity, batch, features, dropout_key)
        # Separate optimisers = separate global-norm clipping per tower, as in the reference DLA.
        upd_r, opt_r = tx_ranker.update(g_r, state.ranker_opt, state.ranker)
        ranker_params = optax.apply_updates(state.ranker, upd_r)
        if learns_propensity:
            upd_p, opt_p = tx_propensity.update(g_p, state.propensity_opt, state.propensity)
            prop_params = optax.apply_updates(state.propensity, upd_p)
        else:
            opt_p, prop_params = state.propensity_opt, state.propensity
        new = state.replace(step=state.step + 1, ranker=ranker_params, propensity=prop_params, ranker_opt=opt_r, propensity_opt=opt_p, key=key)
        return new, metrics

    def score(r_params, doc_index, features):
        return ranker.apply(r_params, inputs(features, doc_index), train=False)

    def propensity_logits(p_params, positions):
        return propensity.apply(p_params, positions, None)

    # The state is donated: its buffers are reused for the next state instead of copied.
    return Steps(init, jax.jit(train_step, donate_argnums=0), jax.jit(score), jax.jit(propensity_logits))
