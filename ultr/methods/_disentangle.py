"""What DLA and the two-tower model share: a bias tower whose output can be disentangled from
relevance (`ultr.losses.disentangle`): observation dropout and gradient reversal, each off by
default and switched on by its setting."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from ultr.losses.disentangle import adversarial_loss
from ultr.errors import DataError
from ultr.methods.base import Parts, TowerMethod
from ultr.models.ranker import dropout

DISENTANGLE_DEFAULTS = {
    "observation_dropout": 0.0,  # rate of dropping the bias tower's logit per item in training (0 = off)
    "gradient_reversal": 0.0,  # eta: scale of the reversed adversarial gradient into the bias tower (0 = off)
    "adversarial_label": "relevance",  # what the adversary regresses: relevance (ranker score) | clicks
}
_LABELS = ("relevance", "clicks")


class DisentangledTowerMethod(TowerMethod):
    """A tower method whose bias tower can be disentangled from relevance (Zhang et al., KDD 2023)."""

    def check(self, cfg, context):
        rate, eta = float(cfg.get("observation_dropout", 0.0)), float(cfg.get("gradient_reversal", 0.0))
        if not 0.0 <= rate < 1.0:
            raise DataError(f"algorithm.{self.name}.observation_dropout={rate}; use a rate in [0, 1)")
        if eta < 0:
            raise DataError(f"algorithm.{self.name}.gradient_reversal={eta}; use eta >= 0 (0 = off)")
        if cfg.get("adversarial_label", "relevance") not in _LABELS:
            raise DataError(f"algorithm.{self.name}.adversarial_label={cfg.get('adversarial_label')!r}; "
                            f"use one of {list(_LABELS)}")

    def init_tower(self, p, key, x):
        params = super().init_tower(p, key, x)
        if _eta(p) == 0:
            return params
        # The adversary lives beside the tower's own parameters (the tower ignores it when applied).
        head = {"w": jnp.zeros((), jnp.float32), "b": jnp.zeros((), jnp.float32)}
        return {**params, "params": {**params["params"], "adversary": head}}

    def bias_logits(self, p: Parts, p_params: Any, batch, x, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(the logits the click objective reads, after observation dropout; the raw logits)."""
        raw = p.tower.apply(p_params, batch["position"], p.tower_context(x))
        rate = float(p.cfg.get("observation_dropout", 0.0))
        return (dropout(raw, rate, key) if rate > 0 else raw), raw

    def disentangle_loss(self, p: Parts, p_params: Any, raw: jax.Array, scores: jax.Array, batch) -> jax.Array:
        eta = _eta(p)
        if eta == 0:
            return jnp.zeros((), jnp.float32)
        relevance = p.cfg.get("adversarial_label", "relevance") == "relevance"
        label = jax.lax.stop_gradient(scores) if relevance else batch["targets"]
        return adversarial_loss(raw, p_params["params"]["adversary"], label, batch["mask"], eta)


def _eta(p: Parts) -> float:
    return float(p.cfg.get("gradient_reversal", 0.0))
