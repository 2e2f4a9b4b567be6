"""Feature-based rankers: an MLP scoring each document independently."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"elu": nn.elu, "relu": nn.relu, "gelu": nn.gelu, "tanh": jnp.tanh, "silu": nn.silu}


class MLPRanker(nn.Module):
    """Score = MLP(x): features [..., F] -> scores [...]. The reference DLA ranker is 512-256-128, ELU."""

    hidden: Sequence[int] = (512, 256, 128)
    activation: str = "elu"
    norm: str = "none"  # none | layer
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32  # computation dtype (bf16 on accelerators); params stay float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={self.activation!r}; choose from {sorted(ACTIVATIONS)}")
        act = ACTIVATIONS[self.activation]
        # Rows flattened to one [rows, F] matrix: XLA:CPU runs the weight gradients of 2-D
        # matmuls markedly faster than the same contraction over [B, K, F] (measured 24 -> 20 ms
        # per step for the reference MLP at B=256, K=10), and on accelerators it is neutral.
        lead = x.shape[:-1]
        h = x.reshape((-1, x.shape[-1])).astype(self.dtype)
        for width in self.hidden:
            h = nn.Dense(width, dtype=self.dtype)(h)
            if self.norm == "layer":
                h = nn.LayerNorm(dtype=self.dtype)(h)
            h = act(h)
            if self.dropout > 0:
                h = nn.Dropout(self.dropout, deterministic=not train)(h)
        # The score leaves in float32 so softmaxes and losses never run in low precision.
        return nn.Dense(1, dtype=self.dtype)(h)[..., 0].astype(jnp.float32).reshape(lead)


class IdRanker(nn.Module):
    """One learned score per (query, document) pair, for logs that carry only ids.

    Pair indices are hashed into `buckets` rows (multiplicative hashing), so a huge log's
    vocabulary fits a fixed table; collisions share a score.
    """

    num_items: int
    buckets: int = 1 << 20

    @nn.compact
    def __call__(self, index: jax.Array, *, train: bool = False) -> jax.Array:
        rows = min(self.num_items, self.buckets)
        idx = index.astype(jnp.uint32)
        if self.num_items > self.buckets:
            idx = (idx * jnp.uint32(2654435761)) % jnp.uint32(self.buckets)
        table = self.param("scores", nn.initializers.zeros, (rows,))
        return table[idx.astype(jnp.int32)]
