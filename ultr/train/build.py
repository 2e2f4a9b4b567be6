"""The step builder: the run config's models and optimisers for one method -> `Steps`."""

from __future__ import annotations

from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from ultr import methods
from ultr.models.ranker import IdRanker, MLPRanker
from ultr.train.state import make_optimizer
from ultr.train.steps import Steps, make_steps


def build_ranker(model: Mapping[str, Any], num_features: int, num_items: int):
    """`num_features=0` (or model.name=id) builds the ID ranker over `num_items` (query, document) pairs."""
    if num_features == 0 or model.get("name") == "id":
        return IdRanker(num_items=num_items, buckets=int(model.get("buckets", 1 << 20)))
    return MLPRanker(
        hidden=tuple(model["hidden"]), activation=model.get("activation", "elu"), norm=model.get("norm", "none"),
        dropout=float(model.get("dropout", 0.0)), dtype=jnp.bfloat16 if model.get("dtype") == "bfloat16" else jnp.float32,
    )


def build_steps(name: str, cfg: Mapping[str, Any], num_features: int, list_size: int, num_items: int = 0,
                known: Mapping[str, np.ndarray] | None = None) -> Steps:
    ranker = build_ranker(cfg["model"], num_features, num_items)
    num_features = 0 if isinstance(ranker, IdRanker) else num_features
    tower, tower_optim, context = methods.get(name).tower(cfg, list_size)
    return make_steps(
        name, ranker, tower, make_optimizer(cfg["optim"]), make_optimizer(tower_optim),
        cfg["algorithm"].get(name) or {}, num_features=num_features, list_size=list_size, propensity_context=context,
        known=known,
    )
