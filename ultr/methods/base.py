"""What a learning method is: its loss over [batch, K] arrays, the data it trains on, what it
reads instead of learning, and how its second tower (a propensity model, or DR's direct method)
is initialised, updated and read out. `ultr/train/steps.py` turns one into jitted steps; nothing
outside `ultr/methods/` branches on a method's name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ultr.errors import DataError
from ultr.models.propensity import ContextPropensity, PositionPropensity

# What a method trains on (`Method.data`).
SESSIONS = "sessions"  # logged sessions: [B, K] clicks at their displayed positions
LISTS = "lists"  # candidate lists with click evidence aggregated over the log per document
LABELS = "labels"  # labelled candidate lists (full information)


@dataclass(frozen=True)
class Parts:
    """Everything fixed before tracing that a method's pure functions close over."""

    ranker: nn.Module
    tower: nn.Module  # the second tower: a propensity model, or DR's direct method
    cfg: Mapping[str, Any]  # the method's block of `algorithm`
    known: Mapping[str, jax.Array]  # what it reads instead of learning (`Method.known`)
    list_size: int
    num_features: int  # 0: an ID ranker that scores the indices themselves
    context: bool  # the propensity tower also reads the shown document's features

    def inputs(self, features: jax.Array | None, doc_index: jax.Array) -> jax.Array:
        # Feature rankers read the device-resident feature matrix (the host ships only indices).
        # An ID ranker (num_features=0) reads the indices themselves, whatever array is passed.
        return doc_index if features is None or self.num_features == 0 else features[doc_index]

    def tower_context(self, x: jax.Array) -> jax.Array | None:
        return x if self.context and self.num_features else None


@dataclass(frozen=True)
class KnownSources:
    """Where a method's known inputs come from: the run's config and data, the simulator's true
    curve (`propensities.json` 'relative'), and that sidecar file itself."""

    cfg: Mapping[str, Any]
    features: Any  # FeatureTable
    sessions: Any  # Sessions
    true_curve: list[float] | None
    sidecar: Mapping[str, Any]


class Method:
    """A method that learns only a ranker (its second tower is built but never trained)."""

    name = ""
    data = SESSIONS
    unclicked_evidence = False  # sessions without clicks carry evidence (else they are skipped)
    learns_propensity = False  # it learns a position-bias curve
    reports_curve = False  # it learns or reads a position-bias curve (`curve`)
    predicts_clicks = False  # its towers give P(click) (`click_probability`): scored by held-out click likelihood
    needs: tuple[str, ...] = ()  # keys of `known` it cannot train without
    needs_hint = ""  # how to provide them
    # Its settings and their defaults: the config's `algorithm.<name>` block (conf/algorithm/ holds
    # only the method list), overridable on the command line as algorithm.<name>.<key>=...
    defaults: dict[str, Any] = {}

    def data_kind(self, cfg: Mapping[str, Any]) -> str:
        return self.data

    def check(self, cfg: Mapping[str, Any], context: bool) -> None:
        """Raise DataError for settings the method cannot honour."""

    def known(self, src: KnownSources) -> dict[str, np.ndarray] | None:
        return None

    def tower(self, cfg: Mapping[str, Any], list_size: int) -> tuple[nn.Module, Mapping[str, Any], bool]:
        """(second tower, its optimiser config, whether it reads context) from the run config."""
        p = cfg.get("propensity", {"name": "position"})
        context = p.get("name") == "context"
        module = ContextPropensity(list_size, tuple(p.get("hidden", (32,)))) if context else PositionPropensity(list_size)
        return module, tower_optim(cfg), context

    def init_tower(self, p: Parts, key: jax.Array, x: jax.Array) -> Any:
        return p.tower.init(key, jnp.ones(x.shape[:2], jnp.int32), p.tower_context(x))

    def loss(self, p: Parts, scores: jax.Array, p_params: Any, batch: Mapping[str, jax.Array],
             x: jax.Array, key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(scalar loss, metrics); metrics named `_...` are private to `update_tower`. `key` seeds
        whatever the loss draws at random in training (the bias tower's observation dropout)."""
        raise NotImplementedError

    def update_tower(self, p: Parts, p_params: Any, grads: Any, opt_state: Any, tx: optax.GradientTransformation,
                     metrics: Mapping[str, jax.Array]) -> tuple[Any, Any]:
        return p_params, opt_state

    def click_probability(self, p: Parts, scores: jax.Array, p_params: Any, position: jax.Array,
                          x: jax.Array) -> jax.Array:
        """P(click) of each shown item [B, K] (only where `predicts_clicks`): the fitted click model."""
        raise NotImplementedError

    def curve(self, p: Parts, p_params: Any, contexts: Any) -> jax.Array | None:
        """Examination of positions 1..K relative to position 1 (None: the method has none)."""
        return None

    def uses_context(self, p: Parts) -> bool:
        """Its curve depends on what is shown, so it is averaged over logged sessions."""
        return False


def tower_optim(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`propensity_optim` over `optim`: a setting it leaves null follows the ranker's optimiser."""
    own = {k: v for k, v in (cfg.get("propensity_optim") or {}).items() if v is not None}
    return {**cfg["optim"], **own}


def gradient_update(p_params: Any, grads: Any, opt_state: Any, tx: optax.GradientTransformation) -> tuple[Any, Any]:
    updates, opt_state = tx.update(grads, opt_state, p_params)
    return optax.apply_updates(p_params, updates), opt_state


class TowerMethod(Method):
    """A method whose propensity tower is trained by gradient alongside the ranker."""

    learns_propensity = True
    reports_curve = True

    def update_tower(self, p, p_params, grads, opt_state, tx, metrics):
        return gradient_update(p_params, grads, opt_state, tx)

    def sigmoid_examination(self, p: Parts) -> bool:
        """Whether the tower's logits are per-item examination probabilities through a sigmoid
        (else they are softmax-normalised over the list, or odds ratios: exp(e_k - e_1))."""
        return False

    def relative(self, p: Parts, logits: jax.Array) -> jax.Array:
        if self.sigmoid_examination(p):
            e = jax.nn.sigmoid(logits)
            return e / e[..., :1]
        return jnp.exp(logits - logits[..., :1])

    def uses_context(self, p):
        return p.context and p.num_features > 0

    def curve(self, p, p_params, contexts):
        """A context tower's examination depends on what is shown, so its curve is the average of
        each logged session's own relative curve: `contexts` = (doc_index [S, K], mask [S, K],
        features), averaged over the sessions that show both position 1 and position k."""
        positions = jnp.arange(1, p.list_size + 1, dtype=jnp.int32)
        if contexts is None or not self.uses_context(p):
            return self.relative(p, p.tower.apply(p_params, positions, None))
        doc_index, mask, features = contexts
        logits = p.tower.apply(p_params, jnp.broadcast_to(positions, doc_index.shape), p.inputs(features, doc_index))
        both = mask & mask[:, :1]
        return jnp.sum(jnp.where(both, self.relative(p, logits), 0.0), axis=0) / jnp.maximum(jnp.sum(both, axis=0), 1)


class KnownPropensityMethod(Method):
    """A method that reads position-bias propensities instead of learning them."""

    reports_curve = True
    needs = ("propensity",)
    needs_hint = "propensities relative to position 1 (known['propensity'])"

    def curve(self, p, p_params, contexts):
        return p.known["propensity"] / p.known["propensity"][0]


def option(cfg: Mapping[str, Any], key: str, default: Any, allowed: tuple[Any, ...], method: str) -> Any:
    """A method setting that must be one of `allowed`, with a one-line error naming the fix."""
    value = cfg.get(key, default)
    if value not in allowed:
        raise DataError(f"algorithm.{method}.{key}={value!r}; use one of {list(allowed)}")
    return value


def optional_float(cfg: Mapping[str, Any], key: str) -> float | None:
    return None if cfg.get(key) is None else float(cfg[key])
