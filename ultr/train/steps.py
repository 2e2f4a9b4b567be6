"""Pure, jitted train and score steps. Shapes are fixed ([B, K] batches, a device-resident
feature matrix [N, F] gathered inside the step), so nothing recompiles after the first step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ultr.algorithms.click_models import rem_loss, rem_position_posteriors, two_tower_loss
from ultr.algorithms.dla import dla_loss
from ultr.algorithms.doubly_robust import dr_loss
from ultr.algorithms.ips import affine_log_loss, affine_loss, ips_loss
from ultr.algorithms.naive import naive_loss, oracle_loss
from ultr.algorithms.pairwise import bias_ratios, pairwise_debiasing_loss
from ultr.errors import DataError
from ultr.train.state import TrainState

# Methods trained on click sessions; the doubly-robust estimator trains on whole candidate lists with
# their aggregated click evidence; the oracle on labelled candidate lists.
CLICK_METHODS = ("dla", "naive", "ips_true", "ips_randomized", "ips_harvested", "rem", "pairwise", "two_tower", "affine")
LIST_CLICK_METHODS = ("dr",)  # trained on candidate lists with click evidence aggregated over the log
LABEL_METHODS = ("oracle",)
METHODS = CLICK_METHODS + LIST_CLICK_METHODS + LABEL_METHODS
# Methods whose propensity tower is trained by gradient (the pairwise biases update in closed form).
GRADIENT_PROPENSITY = ("dla", "rem", "two_tower")
# Methods that read known or separately estimated propensities.
KNOWN_PROPENSITY = ("ips_true", "ips_randomized", "ips_harvested")


@dataclass(frozen=True)
class Steps:
    init: Callable[[jax.Array, int], TrainState]
    train_step: Callable[[TrainState, Mapping[str, jax.Array], jax.Array], tuple[TrainState, dict[str, jax.Array]]]
    score: Callable[[Any, jax.Array, jax.Array], jax.Array]
    propensity_curve: Callable[[Any], jax.Array]  # relative examination per position 1..K
    learns_propensity: bool
    uses_context: bool  # the propensity tower reads what is shown: its curve needs logged contexts
    # How often JAX traced the train step: the Python body runs only while tracing, and every
    # trace of a jitted function is a compile, so 1 means the step never recompiled.
    traces: list[int] = field(default_factory=lambda: [0])


def trains_on_lists(method: str, method_cfg: Mapping[str, Any] | None) -> bool:
    """Whether `method` trains on candidate lists with click evidence aggregated over the log
    (DR; affine correction with `aggregate: true`) instead of on sessions."""
    return method in LIST_CLICK_METHODS or (method == "affine" and bool((method_cfg or {}).get("aggregate", False)))


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
    known: Mapping[str, np.ndarray] | None = None,
) -> Steps:
    """Build init/train/score functions for `method`. `known` holds what a method reads instead
    of learning: `propensity` [K] (relative to position 1) for IPS, `alpha`/`beta` [K] for affine."""
    if method not in METHODS:
        raise DataError(f"method {method!r} is unknown; available: {list(METHODS)}")
    known = {k: jnp.asarray(v, jnp.float32) for k, v in (known or {}).items()}
    if method in KNOWN_PROPENSITY and "propensity" not in known:
        raise DataError(f"{method} needs propensities (known['propensity'])")
    if method == "dr" and "alpha" not in known:
        raise DataError("dr needs the click model's alpha (and beta) per position (known['alpha'])")
    if method == "affine" and not {"alpha", "beta"} <= known.keys():
        raise DataError("affine needs the trust-bias parameters alpha and beta per position (a trust click model's propensities.json)")
    max_weight, max_relevance_weight = (
        None if method_cfg.get(k) is None else float(method_cfg[k]) for k in ("max_weight", "max_relevance_weight"))
    rank_weight = float(method_cfg.get("rank_weight", 1.0))
    normalization = method_cfg.get("normalization", "softmax")
    combine = method_cfg.get("combine", "additive")
    ema = float(method_cfg.get("bias_momentum", 0.9))
    clip_negative = bool(method_cfg.get("clip_negative", True))
    aggregate = trains_on_lists(method, method_cfg)
    # The DR direct method (a relevance regression on features) is trained by gradient in the
    # second tower's slot, with the second optimiser.
    # REM's M-step for the per-position examination in closed form (Wang et al.): the mean
    # posterior P(E=1 | c) per position, as an online-EM moving average over batches.
    rem_closed = method == "rem" and method_cfg.get("m_step", "closed") == "closed"
    if rem_closed and propensity_context:
        raise DataError("algorithm.rem.m_step=closed fits one examination per position; use propensity=position")
    if method == "rem" and method_cfg.get("m_step", "closed") not in ("gradient", "closed"):
        raise DataError(f"algorithm.rem.m_step={method_cfg.get('m_step')!r}; use gradient or closed")
    learns_gradient = (method in GRADIENT_PROPENSITY and not rem_closed) or method == "dr"

    def inputs(features: jax.Array | None, doc_index: jax.Array) -> jax.Array:
        # Feature rankers read the device-resident feature matrix (the host ships only indices);
        # ID rankers (num_features=0, features=None) score the indices themselves.
        return doc_index if features is None else features[doc_index]

    def context(x: jax.Array) -> jax.Array | None:
        return x if propensity_context and num_features else None

    def init(key: jax.Array, batch_size: int) -> TrainState:
        k_r, k_p, k_state = jax.random.split(key, 3)
        shape = (batch_size, list_size)
        x = jnp.zeros(shape + (num_features,), jnp.float32) if num_features else jnp.zeros(shape, jnp.int32)
        r_params = ranker.init(k_r, x)
        if method == "pairwise":
            p_params = {"t_plus_sums": jnp.zeros(list_size), "t_minus_sums": jnp.zeros(list_size)}
        elif method == "dr":
            p_params = propensity.init(k_p, x)  # the DM: a second ranker over the same inputs
        else:
            p_params = propensity.init(k_p, jnp.ones(shape, jnp.int32), context(x))
        return TrainState(
            step=jnp.zeros((), jnp.int32), ranker=r_params, propensity=p_params,
            ranker_opt=tx_ranker.init(r_params), propensity_opt=tx_propensity.init(p_params), key=k_state,
        )

    def losses(r_params, p_params, batch, features, dropout_key):
        x = inputs(features, batch["doc_index"])
        scores = ranker.apply(r_params, x, train=True, rngs={"dropout": dropout_key})
        mask, clicks, pos = batch["mask"], batch["targets"], batch["position"]
        aux: dict[str, jax.Array] = {}
        if method in GRADIENT_PROPENSITY:
            logits = propensity.apply(p_params, pos, context(x))
            if method == "dla":
                out = dla_loss(scores, logits, clicks, pos, mask, rank_weight=rank_weight, max_weight=max_weight,
                               normalization=normalization, loss_normalization=method_cfg.get("loss_normalization", "batch"),
                               max_relevance_weight=max_relevance_weight)
            elif method == "rem":
                out = rem_loss(scores, logits, clicks, mask)
                if rem_closed:
                    aux["_post_sums"], aux["_post_counts"] = rem_position_posteriors(scores, logits, clicks, pos, mask, list_size)
            else:
                out = two_tower_loss(scores, logits, clicks, mask, combine=combine)
            return out.total, {"loss": out.total, "rank_loss": out.rank, "propensity_loss": out.propensity, **aux}
        if method == "dr":
            dm_logits = propensity.apply(p_params, x)
            out = dr_loss(scores, dm_logits, clicks, batch["exposure"], batch["bias"], batch["sessions"], mask,
                          max_weight=max_weight, clip_negative=clip_negative, direct=bool(method_cfg.get('direct', True)))
            return out.total, {"loss": out.total, "rank_loss": out.rank, "dm_loss": out.dm}
        if method == "pairwise":
            out = pairwise_debiasing_loss(scores, clicks, pos, mask, p_params["t_plus_sums"], p_params["t_minus_sums"])
            aux = {"_plus": out.plus, "_minus": out.minus}
            return out.loss, {"loss": out.loss, "rank_loss": out.loss, **aux}
        if method == "naive":
            loss = naive_loss(scores, clicks, mask)
        elif method == "oracle":
            loss = oracle_loss(scores, clicks, mask)
        elif method == "affine" and aggregate:
            loss = affine_log_loss(scores, clicks, batch["exposure"], batch["bias"], mask, clip_negative=clip_negative)
        elif method == "affine":
            loss = affine_loss(scores, clicks, pos, mask, known["alpha"], known["beta"])
        else:
            loss = ips_loss(scores, clicks, pos, mask, known["propensity"], max_weight=max_weight)
        return loss, {"loss": loss, "rank_loss": loss}

    grad_fn = jax.grad(losses, argnums=(0, 1), has_aux=True)

    def train_step(state: TrainState, batch, features):
        key, dropout_key = jax.random.split(state.key)
        (g_r, g_p), metrics = grad_fn(state.ranker, state.propensity, batch, features, dropout_key)
        # Separate optimisers = separate global-norm clipping per tower, as in the reference DLA.
        upd_r, opt_r = tx_ranker.update(g_r, state.ranker_opt, state.ranker)
        ranker_params = optax.apply_updates(state.ranker, upd_r)
        opt_p, prop_params = state.propensity_opt, state.propensity
        if learns_gradient:
            upd_p, opt_p = tx_propensity.update(g_p, state.propensity_opt, state.propensity)
            prop_params = optax.apply_updates(state.propensity, upd_p)
        elif rem_closed:
            sums, counts = metrics.pop("_post_sums"), metrics.pop("_post_counts")
            theta = jax.nn.sigmoid(prop_params["params"]["logits"])
            theta = jnp.where(counts > 0, ema * theta + (1 - ema) * sums / jnp.maximum(counts, 1.0), theta)
            theta = jnp.clip(theta, 1e-6, 1 - 1e-6)
            prop_params = {"params": {"logits": jnp.log(theta) - jnp.log1p(-theta)}}
        elif method == "pairwise":
            # Moving averages of the closed-form sums (their ratios are the biases).
            prop_params = {
                "t_plus_sums": ema * prop_params["t_plus_sums"] + (1 - ema) * metrics.pop("_plus"),
                "t_minus_sums": ema * prop_params["t_minus_sums"] + (1 - ema) * metrics.pop("_minus"),
            }
        new = state.replace(step=state.step + 1, ranker=ranker_params, propensity=prop_params, ranker_opt=opt_r, propensity_opt=opt_p, key=key)
        return new, metrics

    def score(r_params, doc_index, features):
        return ranker.apply(r_params, inputs(features, doc_index), train=False)

    def relative(logits: jax.Array) -> jax.Array:
        """Examination of each position relative to the first, from the tower's logits [..., K]."""
        if method == "rem" or (method == "two_tower" and combine == "multiplicative") or (method == "dla" and normalization == "sigmoid"):
            e = jax.nn.sigmoid(logits)
            return e / e[..., :1]
        return jnp.exp(logits - logits[..., :1])  # softmax-normalised towers; additive two-tower: odds ratio

    def propensity_curve(p_params, contexts=None):
        """The curve over positions 1..K. A context tower's examination depends on what is shown,
        so its curve is the average of each logged session's own relative curve: `contexts` =
        (doc_index [S, K], mask [S, K], features) of logged sessions, averaged over the sessions
        that show both position 1 and position k."""
        if method == "pairwise":
            return bias_ratios(p_params["t_plus_sums"])
        if method in KNOWN_PROPENSITY:
            return known["propensity"] / known["propensity"][0]
        positions = jnp.arange(1, list_size + 1, dtype=jnp.int32)
        if contexts is None or context(jnp.zeros((1, num_features))) is None:
            return relative(propensity.apply(p_params, positions, None))
        doc_index, mask, features = contexts
        per_session = relative(propensity.apply(p_params, jnp.broadcast_to(positions, doc_index.shape), inputs(features, doc_index)))
        both = mask & mask[:, :1]
        return jnp.sum(jnp.where(both, per_session, 0.0), axis=0) / jnp.maximum(jnp.sum(both, axis=0), 1)

    learns = method in GRADIENT_PROPENSITY or method == "pairwise"
    traces = [0]

    def counted_step(*args: Any) -> Any:
        traces[0] += 1
        return train_step(*args)

    # The state is donated: its buffers are reused for the next state instead of copied.
    uses_context = learns and method != "pairwise" and context(jnp.zeros((1, num_features))) is not None
    return Steps(init, jax.jit(counted_step, donate_argnums=0), jax.jit(score), jax.jit(propensity_curve), learns, uses_context, traces)
