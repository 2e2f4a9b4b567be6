"""Online learning to rank: interactions per second of the compiled loop.

    python benchmarks/bench_online.py [--interactions 20000] [--seeds 3]

Per method (PDGD linear and MLP, DBGD, MGD) under the informational user, lists of k=10:
  mq2008  MQ2008 Fold1's training queries (46 features, up to 121 candidates per query)
  c10, c100, c1000  MSLR-shaped synthetic queries (136 features, 5 grades) with exactly 10, 100
      and 1,000 candidates each: how the rate scales with the candidates per query
Rates are steady state (the block is compiled first, then timed), all seeds together. The side-by-
side ratio against ULTRA_pytorch (its own virtualenv) is not part of this script yet.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._common import WORK, record  # noqa: E402
from ultr.online.feed import Lists, lists, make_user  # noqa: E402
from ultr.online.loop import run_block  # noqa: E402
from ultr.online.methods import make  # noqa: E402
from ultr.workflows import ingest  # noqa: E402

RUNS = {"pdgd": ("pdgd", {}), "pdgd_mlp": ("pdgd", {"ranker": "mlp", "learning_rate": 0.01}), "dbgd": ("dbgd", {}), "mgd": ("mgd", {})}


def synthetic(queries: int, candidates: int, features: int = 136, seed: int = 0) -> tuple[jax.Array, Lists]:
    """MSLR-shaped lists: standard-normal features, grades 0-4 in MSLR-WEB30K's proportions."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((queries * candidates, features)).astype(np.float32)
    grades = rng.choice(5, size=queries * candidates, p=[0.52, 0.32, 0.13, 0.02, 0.01]).astype(np.int32)
    doc = np.arange(queries * candidates, dtype=np.int32).reshape(queries, candidates)
    return jnp.asarray(X), Lists(jnp.asarray(doc), jnp.asarray(grades[doc]), jnp.ones(doc.shape, bool))


def rate(name: str, settings: dict, X: jax.Array, train: Lists, y_max: int, seeds: int, n: int) -> float:
    method = make(name, settings)
    user, tables = make_user("informational", y_max, 10)
    states = jax.vmap(lambda kk: method.init(kk, X.shape[1]))(jax.random.split(jax.random.key(0), seeds))
    keys = jax.random.split(jax.random.key(1), seeds)
    states = jax.block_until_ready(run_block(method, user, 10, n, tables, X, train, states, keys))[0]  # compile
    t0 = time.perf_counter()
    jax.block_until_ready(run_block(method, user, 10, n, tables, X, train, states, keys))
    return n * seeds / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interactions", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--mq2008", default=str(Path(__file__).resolve().parent.parent.parent / "shared/data/mq2008"))
    ap.add_argument("--runs", default=",".join(RUNS))
    args = ap.parse_args()
    features = ingest({"root": args.mq2008, "fold": 1, "num_features": 46}, WORK / "online_mq2008", progress=False)
    data = {"mq2008": (jnp.asarray(features.features), lists(features, "train"), 2)}
    for c in (10, 100, 1000):
        data[f"c{c}"] = (*synthetic(max(50, 20_000 // c), c), 4)
    for label in args.runs.split(","):
        name, settings = RUNS[label]
        for where, (X, train, y_max) in data.items():
            r = rate(name, settings, X, train, y_max, args.seeds, args.interactions)
            record("online_rate", {"run": label, "data": where, "candidates": int(train.doc.shape[1]), "seeds": args.seeds,
                                   "interactions": args.interactions, "interactions_per_s": round(r)})


if __name__ == "__main__":
    main()
