"""JAX's default random numbers (threefry2x32), lowered unrolled on CPU.

JAX lowers the threefry hash on CPU as a loop over its five round groups, to keep compile times
short. XLA:CPU then runs every random draw as a while loop whose body it cannot fuse with what
consumes the bits: in the online loop, where each interaction draws a query, a Gumbel noise per
candidate and click noise, that loop was about a third of a step. The unrolled lowering is JAX's
own, the one it uses on GPU. ultr.online, ultr.click_models, ultr.train and ultr.models register
it when imported (the data layer stays free of JAX). The same bits (tests/test_random_cpu.py checks
golden values drawn with the rolled lowering), about 4x faster on 2 cores (benchmarks/RESULTS.md,
issue 28).

It reaches into JAX's private modules; where a JAX version moves them, the default lowering
stays, with the same numbers, only slower."""

from __future__ import annotations


def unroll_threefry_on_cpu() -> bool:
    """Register the unrolled threefry lowering for CPU; False where this JAX has no such rule."""
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry
        mlir.register_lowering(threefry.threefry2x32_p, threefry._threefry2x32_lowering_rule, platform="cpu")
    except (ImportError, AttributeError):
        return False
    return True


UNROLLED = unroll_threefry_on_cpu()
