"""DLA training throughput vs the machine's own dense float32 matmul rate, measured in one run.

    python benchmarks/bench_train.py [--batch 256] [--steps 300]
Prints sessions/s, the FLOPs of one train step (XLA's own cost analysis of the compiled step, and
the analytic count of the MLP's matrix multiplies), achieved GFLOP/s, and the GEMM rate of
(a) a large square matmul and (b) the MLP's own layer shapes. Target (issue 3): >= 70% of the
machine's matmul rate. Real input (the loop's device-resident path) and a cached batch are both timed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._common import record  # noqa: E402
from ultr.data.batching import BatchIterator  # noqa: E402
from ultr.train.distributed import Prefetcher, RowIterator, Sharder, data_mesh, gather_step  # noqa: E402
from ultr.experiment import build_steps  # noqa: E402

CFG = {
    "model": {"hidden": [512, 256, 128], "activation": "elu"},
    "optim": {"name": "adagrad", "learning_rate": 0.05, "clip_norm": 5.0},
    "propensity_optim": {"name": "adagrad", "learning_rate": 0.2, "clip_norm": 5.0},
    "algorithm": {"dla": {}},
    "propensity": {"name": "position"},
}


def gemm_rate(m: int, k: int, n: int, seconds: float = 2.0) -> float:
    """GFLOP/s of a jitted float32 matmul [m,k]@[k,n], best of repeated timed blocks."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(m, k)), jnp.float32)
    b = jnp.asarray(np.random.default_rng(1).normal(size=(k, n)), jnp.float32)
    f = jax.jit(lambda a, b: a @ b)
    f(a, b).block_until_ready()
    reps = max(1, int(2e9 / (2 * m * k * n)))
    best = float("inf")
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        for _ in range(reps):
            out = f(a, b)
        out.block_until_ready()
        best = min(best, (time.perf_counter() - t) / reps)
    return 2 * m * k * n / best / 1e9


def mlp_flops(rows: int, dims: list[int]) -> int:
    """Matmul FLOPs of one train step: forward, grad wrt weights, and grad wrt activations for
    every layer but the first (the input features are not differentiated, so XLA never computes
    that product and counting it would flatter the achieved rate)."""
    layers = [2 * rows * a * b for a, b in zip(dims[:-1], dims[1:])]
    return 3 * sum(layers) - layers[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--list-size", type=int, default=10)
    ap.add_argument("--features", type=int, default=46)
    ap.add_argument("--docs", type=int, default=15211)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    B, K, F = args.batch, args.list_size, args.features
    rng = np.random.default_rng(0)
    feats = jnp.asarray(rng.random((args.docs, F), dtype=np.float32))
    S = 20_000
    arrays = {
        "doc_index": rng.integers(0, args.docs, size=(S, K)).astype(np.int32),
        "position": np.tile(np.arange(1, K + 1, dtype=np.int32), (S, 1)),
        "targets": (rng.random((S, K)) < 0.15).astype(np.float32),
        "mask": np.ones((S, K), bool),
    }
    it = BatchIterator(arrays, B, seed=0)
    steps = build_steps("dla", CFG, F, K)
    state = steps.init(jax.random.PRNGKey(0), B)
    cached = jax.device_put(next(it))
    compiled = steps.train_step.lower(state, cached, feats).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    xla_flops = float(cost.get("flops", float("nan")))
    analytic = mlp_flops(B * K, [F, 512, 256, 128, 1])

    def timed(step, n):
        nonlocal state
        for _ in range(20):  # warm-up
            state, m = step(state)
        jax.block_until_ready(state)
        t = time.perf_counter()
        for _ in range(n):
            state, m = step(state)
        jax.block_until_ready(state)
        return (time.perf_counter() - t) / n

    # Real input = the training loop's default path: the session arrays live on the device, each
    # step ships its row indices and gathers its batch inside the jitted step.
    sharder = Sharder(data_mesh(), B)
    feats = sharder.replicate(feats)
    state = sharder.replicate(state)
    cached = sharder.put_batch(next(it))
    arrays_dev = sharder.replicate(dict(it.arrays))
    gather = gather_step(steps.train_step, sharder)
    rows = Prefetcher(RowIterator(it), lambda r: jax.device_put(r, sharder.batch), 0)
    t_real = min(timed(lambda s: gather(s, arrays_dev, next(rows)[0], feats), args.steps) for _ in range(3))
    t_cached = min(timed(lambda s: steps.train_step(s, cached, feats), args.steps) for _ in range(3))
    square = gemm_rate(2048, 2048, 2048)
    layer_rates = [gemm_rate(B * K, a, b, 1.0) for a, b in ((F, 512), (512, 256), (256, 128))]
    achieved = analytic / t_real / 1e9
    record("train_dla", {
        "batch": B, "list_size": K, "features": F, "hidden": [512, 256, 128], "devices": [str(d) for d in jax.devices()],
        "step_ms_real_input": round(t_real * 1e3, 3), "step_ms_cached_batch": round(t_cached * 1e3, 3),
        "sessions_per_s": round(B / t_real), "step_flops_analytic_matmul": analytic, "step_flops_xla": xla_flops,
        "achieved_gflops_matmul": round(achieved, 2), "achieved_gflops_xla_count": round(xla_flops / t_real / 1e9, 2),
        "gemm_gflops_2048_square": round(square, 2),
        "gemm_gflops_mlp_layer_shapes": [round(r, 2) for r in layer_rates],
        "fraction_of_square_gemm": round(achieved / square, 3),
    })


if __name__ == "__main__":
    main()
