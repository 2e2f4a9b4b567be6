"""Propensity (position-bias) models: a logit per displayed item whose softmax over a session is
the examination distribution DLA learns. exp(e_k - e_1) reads out examination relative to rank 1."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class PositionPropensity(nn.Module):
    """One logit per position (the reference DLA propensity model)."""

    list_size: int

    @nn.compact
    def __call__(self, position: jax.Array, context: jax.Array | None = None) -> jax.Array:
        logits = self.param("logits", nn.initializers.zeros, (self.list_size,))
        return logits[jnp.clip(position - 1, 0, self.list_size - 1)]


class ContextPropensity(nn.Module):
    """Logit = position logit + MLP(context): examination that also depends on what is shown
    (e.g. document features or media type), for context-aware bias models."""

    list_size: int
    hidden: Sequence[int] = (32,)

    @nn.compact
    def __call__(self, position: jax.Array, context: jax.Array | None = None) -> jax.Array:
        base = PositionPropensity(self.list_size)(position)
        if context is None:
            return base
        one_hot = jax.nn.one_hot(jnp.clip(position - 1, 0, self.list_size - 1), self.list_size)
        h = jnp.concatenate([context.astype(jnp.float32), one_hot], axis=-1)
        for width in self.hidden:
            h = nn.elu(nn.Dense(width)(h))
        return base + nn.Dense(1, kernel_init=nn.initializers.zeros)(h)[..., 0]
