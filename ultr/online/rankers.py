"""The rankers the online methods learn: linear (the papers' default; zeros at the start, so the
first lists are uniform for PDGD and the score order for DBGD/MGD) or an MLP (ultr's Flax ranker)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ultr.errors import DataError
from ultr.models.ranker import MLPRanker


class LinearRanker(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("w", nn.initializers.zeros, (x.shape[-1],))
        return x @ w


def make_ranker(kind: str, hidden: Sequence[int] = (32,), activation: str = "tanh") -> nn.Module:
    if kind == "linear":
        return LinearRanker()
    if kind == "mlp":
        return MLPRanker(hidden=tuple(hidden), activation=activation)
    raise DataError(f"online ranker={kind!r}; use linear or mlp")
