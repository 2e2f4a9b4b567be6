"""On a machine with a GPU: check the GPU's DLA train step against the CPU's, then measure DLA
training throughput (sessions/s) at batch sizes 256..16384 for the default model, through the
training loop's default input path (device-resident sessions, a gather per step).

    python benchmarks/gpu_check.py [--steps 200] [--dtype float32|bfloat16]
Prints one JSON line per batch size, with the device named. Runs on CPU only with --allow-cpu.
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
from ultr.train.build import build_steps  # noqa: E402
from ultr.train.distributed import RowIterator, Sharder, data_mesh, gather_step  # noqa: E402


def config(dtype: str) -> dict:
    return {
        "model": {"hidden": [512, 256, 128], "activation": "elu", "dtype": dtype},
        "optim": {"name": "adagrad", "learning_rate": 0.05, "clip_norm": 5.0},
        "propensity_optim": {"name": "adagrad", "learning_rate": 0.2, "clip_norm": 5.0},
        "algorithm": {"dla": {}}, "propensity": {"name": "position"},
    }


def batch(rng: np.random.Generator, b: int, k: int, docs: int) -> dict:
    return {
        "doc_index": rng.integers(0, docs, size=(b, k)).astype(np.int32),
        "position": np.tile(np.arange(1, k + 1, dtype=np.int32), (b, 1)),
        "targets": (rng.random((b, k)) < 0.15).astype(np.float32),
        "mask": np.ones((b, k), bool),
    }


def run_steps(device, feats, batches, dtype: str, k: int):
    steps = build_steps("dla", config(dtype), feats.shape[1], k)
    with jax.default_device(device):
        state = steps.init(jax.random.PRNGKey(0), batches[0]["doc_index"].shape[0])
        f = jax.device_put(feats, device)
        losses = []
        for b in batches:
            state, m = steps.train_step(state, jax.device_put(b, device), f)
            losses.append(float(m["loss"]))
    return np.asarray(losses), jax.device_get(state.propensity)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--allow-cpu", action="store_true")
    args = ap.parse_args()
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus and not args.allow_cpu:
        sys.exit("no GPU visible to JAX (install jax[cuda12]: pip install -e .[cuda]); --allow-cpu to run anyway")
    dev = gpus[0] if gpus else jax.devices()[0]
    cpu = jax.devices("cpu")[0]
    rng = np.random.default_rng(0)
    K, F, N = 10, 46, 15211
    feats = rng.random((N, F), dtype=np.float32)
    check = [batch(rng, 256, K, N) for _ in range(20)]
    l_dev, p_dev = run_steps(dev, feats, check, "float32", K)
    l_cpu, p_cpu = run_steps(cpu, feats, check, "float32", K)
    diff = float(np.max(np.abs(l_dev - l_cpu)))
    record("gpu_check_correctness", {"device": str(dev), "device_kind": getattr(dev, "device_kind", ""), "steps": 20,
                                     "max_abs_loss_diff_vs_cpu": diff, "ok": diff < 1e-3})
    # Throughput through the training loop's default input path: the session arrays (1M sessions)
    # live on the device, each step ships its row indices and gathers its batch in the step.
    log = batch(rng, 1_000_000, K, N)
    for b in (256, 1024, 4096, 16384):
        steps = build_steps("dla", config(args.dtype), F, K)
        with jax.default_device(dev):
            sharder = Sharder(data_mesh(), b)
            state = sharder.replicate(steps.init(jax.random.PRNGKey(0), b))
            f = sharder.replicate(jnp.asarray(feats))
            arrays = sharder.replicate(log)
            step = gather_step(steps.train_step, sharder)
            rows = RowIterator(BatchIterator(log, b, seed=0))
            for i in range(10):
                state, m = step(state, arrays, jax.device_put(next(rows), sharder.batch), f)
            jax.block_until_ready(state)
            t = time.perf_counter()
            for i in range(args.steps):
                state, m = step(state, arrays, jax.device_put(next(rows), sharder.batch), f)
            jax.block_until_ready(state)
            dt = (time.perf_counter() - t) / args.steps
        record("gpu_dla_throughput", {"device": str(dev), "device_kind": getattr(dev, "device_kind", ""), "dtype": args.dtype,
                                      "batch": b, "step_ms": round(dt * 1e3, 3), "sessions_per_s": round(b / dt)})


if __name__ == "__main__":
    main()
