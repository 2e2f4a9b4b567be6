"""Feature-based rankers: an MLP scoring each document independently."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ultr.errors import DataError


@jax.custom_vjp
def elu(x: jax.Array) -> jax.Array:
    """ELU (alpha 1) as exp(x) - 1 on the negative side, with a backward pass that reads only the output.

    XLA:CPU's expm1 costs about twice its exp (benchmarks/RESULTS.md), and autodiff of a where()
    keeps the pre-activation alive for the backward pass. Here the forward is one fused pass and
    the derivative is 1 where y > 0, y + 1 (= exp(x)) elsewhere. The values
    differ from `nn.elu` only by float32 rounding (exp(x) - 1 loses relative precision for tiny |x|,
    never more than about 1e-7 in absolute terms).
    """
    return jnp.where(x > 0, x, jnp.exp(jnp.minimum(x, 0)) - 1)


def _elu_fwd(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    y = elu(x)
    return y, y


def _elu_bwd(y: jax.Array, g: jax.Array) -> tuple[jax.Array]:
    return (g * jnp.where(y > 0, 1, y + 1),)


elu.defvjp(_elu_fwd, _elu_bwd)

def _mix32(x: jax.Array) -> jax.Array:
    """lowbias32 (C. Wellons' integer hash): a bijection of uint32 with near-ideal avalanche."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def dropout(x: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Inverted dropout whose mask is a counter-based hash of the element index under two seeds
    drawn from `key` (jax.random, threefry).

    Why not `jax.random.bernoulli`: under JAX's default CPU lowering threefry ran as a rolled loop of
    memory-bound passes, which over the reference MLP's activations took as long as the whole train
    step (ultr.random_cpu now registers the unrolled lowering, still 20 rounds per 64 bits); the
    hash is one fused elementwise pass (benchmarks/RESULTS.md). Each element's 32 bits
    are mix(mix(index ^ seed0) + seed1): distinct indices never collide (mix is a bijection), and
    the keep probability is exact to 2^-32. Deterministic in `key`, like any JAX random draw.
    """
    keep = 1.0 - rate
    seeds = jax.random.bits(key, (2,), jnp.uint32)
    index = jax.lax.iota(jnp.uint32, x.size).reshape(x.shape)
    bits = _mix32(_mix32(index ^ seeds[0]) + seeds[1])
    threshold = jnp.uint32(min(round(keep * 2.0**32), 2**32 - 1))
    return jnp.where(bits < threshold, x / keep, 0).astype(x.dtype)


ACTIVATIONS = {"elu": elu, "relu": nn.relu, "gelu": nn.gelu, "tanh": jnp.tanh, "silu": nn.silu}


class FeatureMajorDense(nn.Module):
    """y = kernel @ h + bias over feature-major activations: h [in, rows] -> [out, rows].

    The kernel is stored [out, in]. With rows on the minor axis every product of the train step is a
    plain or right-transposed matmul, which XLA:CPU hands to YNNPACK; the row-major layout's weight
    gradient (X^T @ dY, contracting the leading axis of both) ran at 120-135 GFLOP/s against
    180-200 for the others on the 2-core benchmark machine.
    """

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(in_axis=-1, out_axis=-2), (self.features, h.shape[0]))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return kernel.astype(self.dtype) @ h.astype(self.dtype) + bias.astype(self.dtype)[:, None]


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
            raise DataError(f"model.activation={self.activation!r}; choose from {sorted(ACTIVATIONS)}")
        act = ACTIVATIONS[self.activation]
        # Rows flattened and transposed to one feature-major [F, rows] matrix: XLA:CPU runs
        # contractions over [B, K, F] slower than 2-D matmuls, and feature-major ones faster still
        # (FeatureMajorDense; measured in benchmarks/RESULTS.md). On accelerators both are neutral.
        lead = x.shape[:-1]
        h = x.reshape((-1, x.shape[-1])).T.astype(self.dtype)
        for width in self.hidden:
            h = FeatureMajorDense(width, dtype=self.dtype)(h)
            if self.norm == "layer":
                h = nn.LayerNorm(reduction_axes=0, feature_axes=0, dtype=self.dtype)(h)
            h = act(h)
            if self.dropout > 0 and train:
                h = dropout(h, self.dropout, self.make_rng("dropout"))
        # The score leaves in float32 so softmaxes and losses never run in low precision.
        return FeatureMajorDense(1, dtype=self.dtype)(h)[0].astype(jnp.float32).reshape(lead)


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
