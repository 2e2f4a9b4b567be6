"""JAX's default random numbers (threefry2x32), lowered unrolled on CPU.

JAX lowers the threefry hash on CPU as a loop over its five round groups, to keep compile times
short. XLA:CPU then runs every random draw as a while loop whose body it cannot fuse with what
consumes the bits: in the online loop, where each interaction draws a query, a Gumbel noise per
candidate and click noise, that loop was about a third of a step. Unrolled, as JAX lowers it on GPU, the
hash is straight-line code. ultr.online, ultr.click_models, ultr.train and ultr.models register it
when imported (the data layer stays free of JAX). The same bits (tests/test_random_cpu.py checks
golden values drawn with JAX's own lowering), 3-4x faster on 2 cores (benchmarks/RESULTS.md,
issue 28).

The hash below is threefry2x32 as Salmon et al. (SC 2011) define it and JAX computes it, written
with jax.numpy and registered through JAX's public extension API (`jax.extend.random`,
`jax.interpreters.mlir`) rather than by reaching into JAX's private lowering rule. Should a JAX
version drop that API, the default lowering stays: the same numbers, only slower."""

from __future__ import annotations

import numpy as np

# Rotation amounts of the four rounds in even and odd round groups, and the key-schedule parity
# constant (Salmon et al., Table 4 and section 3.2.1)
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _threefry2x32(k1, k2, x1, x2):
    """Five groups of four Threefry rounds, a key injection after each: straight-line code that
    XLA fuses with the consumer of the bits."""
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x0, x1 = x1 + ks[0], x2 + ks[1]
    for group in range(5):
        for r in _ROTATIONS[group % 2]:
            x0 = x0 + x1
            x1 = ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))) ^ x0
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def unroll_threefry_on_cpu() -> bool:
    """Register the unrolled threefry lowering for CPU; False where this JAX lacks the public API."""
    try:
        from jax.extend.random import threefry2x32_p
        from jax.interpreters import mlir
    except ImportError:
        return False
    mlir.register_lowering(threefry2x32_p, mlir.lower_fun(_threefry2x32, multiple_results=True), platform="cpu")
    return True


UNROLLED = unroll_threefry_on_cpu()
