"""Is input the bottleneck? DLA train-step time with the training loop's real input path against
the same step on one cached device batch, measured in interleaved blocks in one process.

    python benchmarks/bench_input.py [--blocks 10] [--steps 100] [--batch 256]
Real input = the loop's path: BatchIterator (a fresh shuffled batch every step) -> Prefetcher
(background thread assembling and placing the next batches on the device) -> train_step. Cached =
one batch already on the device, reused. Blocks alternate (real, cached, real, ...) so that slow
drifts of a shared machine hit both alike; the script prints the per-block times, both medians and
the median of the paired differences. Target (issue 6): real input step time equals the cached one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._common import record  # noqa: E402
from benchmarks.bench_train import CFG  # noqa: E402
from ultr.data.batching import BatchIterator  # noqa: E402
from ultr.experiment import build_steps  # noqa: E402
from ultr.train.distributed import Prefetcher, Sharder, data_mesh, prefetch_depth  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--sessions", type=int, default=100_000)
    args = ap.parse_args()
    B, K, F, N = args.batch, 10, 46, 15211
    rng = np.random.default_rng(0)
    S = args.sessions
    arrays = {
        "doc_index": rng.integers(0, N, size=(S, K)).astype(np.int32),
        "position": np.tile(np.arange(1, K + 1, dtype=np.int32), (S, 1)),
        "targets": (rng.random((S, K)) < 0.15).astype(np.float32),
        "mask": np.ones((S, K), bool),
    }
    steps = build_steps("dla", CFG, F, K)
    sharder = Sharder(data_mesh(), B)
    feats = sharder.replicate(jnp.asarray(rng.random((N, F), dtype=np.float32)))
    state = sharder.replicate(steps.init(jax.random.PRNGKey(0), B))
    it = BatchIterator(arrays, B, seed=0)
    prefetch = Prefetcher(it, sharder.put_batch, prefetch_depth())
    cached = sharder.put_batch(next(BatchIterator(arrays, B, seed=1)))

    def block(get_batch) -> float:
        nonlocal state
        jax.block_until_ready(state)
        t = time.perf_counter()
        for _ in range(args.steps):
            state, _ = steps.train_step(state, get_batch(), feats)
        jax.block_until_ready(state)
        return (time.perf_counter() - t) / args.steps * 1e3

    block(lambda: next(prefetch)[0])  # compile + warm both paths
    block(lambda: cached)
    real, cache = [], []
    for _ in range(args.blocks):
        real.append(block(lambda: next(prefetch)[0]))
        cache.append(block(lambda: cached))
    prefetch.close()
    diffs = [r - c for r, c in zip(real, cache)]
    record("input_overlap", {
        "batch": B, "steps_per_block": args.steps, "blocks": args.blocks, "prefetch_depth": prefetch_depth(),
        "devices": [str(d) for d in jax.devices()],
        "real_ms": [round(x, 2) for x in real], "cached_ms": [round(x, 2) for x in cache],
        "real_median_ms": round(statistics.median(real), 2), "cached_median_ms": round(statistics.median(cache), 2),
        "paired_diff_median_ms": round(statistics.median(diffs), 2),
        "paired_diff_range_ms": [round(min(diffs), 2), round(max(diffs), 2)],
        "real_over_cached": round(statistics.median(real) / statistics.median(cache), 3),
    })


if __name__ == "__main__":
    main()
