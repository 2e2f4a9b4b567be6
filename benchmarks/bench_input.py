"""Is input the bottleneck? DLA train-step time with the training loop's real input path against
the same step on one cached device batch, measured in interleaved blocks in one process.

    python benchmarks/bench_input.py [--blocks 10] [--steps 100] [--batch 256]
Real input = the loop's default path: the training arrays live on the device, BatchIterator gives
each step's row indices (a fresh shuffle every epoch), and the step gathers its batch on the device
(`gather_step`). Host = the loop's path for arrays over `trainer.device_data_mb` (or multi-process):
batches assembled on the host and placed by a background Prefetcher thread. Cached = one batch
already on the device, reused. Blocks rotate (real, host, cached, ...) so that slow drifts of a
shared machine hit all alike; the script prints per-block times, medians and the median paired
difference to cached. Target (issue 6): real input step time equals the cached one.
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
from ultr.train.build import build_steps  # noqa: E402
from ultr.train.distributed import Prefetcher, RowIterator, Sharder, data_mesh, gather_step, prefetch_depth  # noqa: E402


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
    # Real: the loop's default, device-resident path (exactly what fit() builds).
    arrays_dev = sharder.replicate(dict(arrays))
    gather = gather_step(steps.train_step, sharder)
    rows = Prefetcher(RowIterator(BatchIterator(arrays, B, seed=0)), lambda r: jax.device_put(r, sharder.batch), 0)
    # Host: batches assembled on the host, placed by the background thread.
    prefetch = Prefetcher(BatchIterator(arrays, B, seed=0), sharder.put_batch, prefetch_depth())
    cached = sharder.put_batch(next(BatchIterator(arrays, B, seed=1)))
    arms = {
        "real": lambda s: gather(s, arrays_dev, next(rows)[0], feats),
        "host": lambda s: steps.train_step(s, next(prefetch)[0], feats),
        "cached": lambda s: steps.train_step(s, cached, feats),
    }

    def block(step) -> float:
        nonlocal state
        jax.block_until_ready(state)
        t = time.perf_counter()
        for _ in range(args.steps):
            state, _ = step(state)
        jax.block_until_ready(state)
        return (time.perf_counter() - t) / args.steps * 1e3

    for step in arms.values():  # compile + warm every path
        block(step)
    times: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(args.blocks):
        for k, step in arms.items():
            times[k].append(block(step))
    prefetch.close()
    out = {"batch": B, "steps_per_block": args.steps, "blocks": args.blocks, "prefetch_depth": prefetch_depth(),
           "devices": [str(d) for d in jax.devices()]}
    for k, v in times.items():
        out[f"{k}_ms"] = [round(x, 2) for x in v]
        out[f"{k}_median_ms"] = round(statistics.median(v), 2)
    for k in ("real", "host"):
        diffs = [a - c for a, c in zip(times[k], times["cached"])]
        out[f"{k}_minus_cached_median_ms"] = round(statistics.median(diffs), 2)
        out[f"{k}_minus_cached_range_ms"] = [round(min(diffs), 2), round(max(diffs), 2)]
        out[f"{k}_over_cached"] = round(statistics.median(times[k]) / statistics.median(times["cached"]), 3)
    record("input_overlap", out)


if __name__ == "__main__":
    main()
