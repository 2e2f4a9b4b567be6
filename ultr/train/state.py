"""The one explicit training state and the optimisers that update it."""

from __future__ import annotations

from typing import Any, Mapping

import flax.struct
import jax
import optax

from ultr.errors import DataError


@flax.struct.dataclass
class TrainState:
    """Everything a step reads and writes: both towers' params and optimiser states, step, PRNG key."""

    step: jax.Array
    ranker: Any
    propensity: Any
    ranker_opt: Any
    propensity_opt: Any
    key: jax.Array


def make_optimizer(cfg: Mapping[str, Any]) -> optax.GradientTransformation:
    """Global-norm clipping then the named optax optimiser (reference: clip 5, Adagrad 0.05)."""
    name = cfg.get("name", "adagrad")
    lr = float(cfg.get("learning_rate", 0.05))
    makers = {
        "adagrad": lambda: optax.adagrad(lr, initial_accumulator_value=float(cfg.get("initial_accumulator_value", 0.1))),
        "adam": lambda: optax.adam(lr),
        "adamw": lambda: optax.adamw(lr, weight_decay=float(cfg.get("weight_decay", 1e-4))),
        "sgd": lambda: optax.sgd(lr, momentum=cfg.get("momentum")),
    }
    if name not in makers:
        raise DataError(f"optim.name={name!r}; choose from {sorted(makers)}")
    parts = []
    if cfg.get("clip_norm") is not None:
        parts.append(optax.clip_by_global_norm(float(cfg["clip_norm"])))
    if name != "adamw" and cfg.get("weight_decay"):
        # L2 regularisation added to the (clipped) gradient; adamw decouples its own.
        parts.append(optax.add_decayed_weights(float(cfg["weight_decay"])))
    parts.append(makers[name]())
    return optax.chain(*parts)
