"""Evaluation scoring throughput: documents/s of `score_lists` on a split with MSLR-WEB30K's shape,
against the machine's own float32 GEMM rate measured in the same run.

    python benchmarks/bench_score.py [--queries 6306] [--features 136] [--rounds 5]

A split of `--queries` candidate lists with long-tailed lengths (MSLR: 1 to 1,251 documents, mean
about 120) is scored by the reference ranker (MLP 512-256-128). Reported: documents/s, the MLP's
FLOPs per document, the achieved GFLOP/s, and the fraction of the 2048^2 GEMM rate. Rounds are
interleaved with GEMM blocks and medians reported (the machine is shared). The issue-14 target,
>= 1M documents/s, needs 0.47 TFLOP/s with this ranker: above a 2-core CPU's peak, so on CPU the
measure is the fraction of the GEMM rate; on a GPU the absolute rate.
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
from benchmarks.bench_train import CFG, gemm_block  # noqa: E402
from ultr.data.batching import QueryLists  # noqa: E402
from ultr.train.build import build_steps  # noqa: E402
from ultr.train.loop import score_lists  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=6306)
    ap.add_argument("--features", type=int, default=136)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    lengths = np.clip(rng.lognormal(4.3, 0.9, size=args.queries).astype(int), 1, 1251)
    n = int(lengths.sum())
    mask = np.arange(lengths.max()) < lengths[:, None]
    doc = np.zeros(mask.shape, np.int32)
    doc[mask] = np.arange(n)
    lists = QueryLists(np.arange(args.queries).astype(str), doc, np.zeros(mask.shape, np.float32), mask)
    features = jnp.asarray(rng.normal(size=(n, args.features)).astype(np.float32))
    steps = build_steps("naive", {**CFG, "algorithm": {"naive": {}}}, args.features, 10)
    params = steps.init(jax.random.PRNGKey(0), 64).ranker
    score_lists(steps, params, lists, features)  # compile
    gemm = gemm_block(2048, 2048, 2048)
    dims = [args.features, *CFG["model"]["hidden"], 1]
    flops_per_doc = sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))
    rates, gemms = [], []
    for _ in range(args.rounds):
        t = time.perf_counter()
        score_lists(steps, params, lists, features)
        rates.append(n / (time.perf_counter() - t))
        gemms.append(gemm())
    rate, g = statistics.median(rates), statistics.median(gemms)
    record("score", {
        "queries": args.queries, "documents": n, "padded_slots": int(mask.size), "features": args.features,
        "documents_per_s": round(rate), "flops_per_document": flops_per_doc,
        "gflops": round(rate * flops_per_doc / 1e9, 1), "gemm_gflops": round(g, 1),
        "fraction_of_gemm": round(rate * flops_per_doc / 1e9 / g, 3),
        "documents_per_s_at_gemm_rate": round(g * 1e9 / flops_per_doc), "devices": [str(d) for d in jax.devices()],
    })


if __name__ == "__main__":
    main()
