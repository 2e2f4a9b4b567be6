"""The speed target of counterfactual evaluation: 10 rankers, 1,000 bootstrap replicates, 1M
held-out sessions, end to end as `pipelines.evaluate` runs it (the held-out log's ETL, the
evidence, scoring, IPS/SNIPS/DR of DCG@10, nDCG@10 and expected clicks, intervals, paired
differences, the report). Target: at most 60 s on 2 cores.

    python benchmarks/bench_evaluate.py [--sessions 1000000] [--work benchmarks/_work/bench_evaluate]

It trains the 10 rankers once (a short `trainer=debug` run on the embedded MQ2008 fold) and
simulates the held-out log on the test queries under the training policy; both are reused by
later runs. The time of the ETL alone on the same log is measured in the same run as the
reference: evaluation's own work is the difference.

The embedded fold's test split has 156 queries, so its bootstrap is small. A second measurement
(`--queries`, default 100,000) runs the evaluation's own work on a synthetic log of as many
sessions over that many queries, where the bootstrap over queries costs most."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import record  # noqa: E402
from pipelines.config import default_config  # noqa: E402
from ultr.api import load  # noqa: E402
from ultr.evaluation.counterfactual import aggregate, estimates, metric_specs  # noqa: E402
from ultr.evaluation.propensities import Propensities  # noqa: E402
from ultr.evaluation.compare import report  # noqa: E402
from ultr.evaluation.run import evaluate  # noqa: E402
from ultr.experiment import run_experiment  # noqa: E402
from ultr.workflows import log_to_sessions, simulate  # noqa: E402

ESTIMATORS = ["ips", "snips", "dr"]
METRICS = ["dcg@10", "ndcg@10", "clicks"]
RANKERS = ["naive", "dla", "ips_true", "oracle", "pairwise", "rem", "dr", "two_tower", "dla_disentangled", "dla_pairwise"]


def prepare(work: Path, sessions: int) -> None:
    if not (work / "run" / "results.json").exists():
        run_experiment(default_config(["trainer=debug", f"algorithm.methods=[{','.join(RANKERS)}]", "selection.reference=null",
                                       "trainer.progress=false", "trainer.tensorboard=false"]), work / "run")
    if not (work / "heldout" / "clicks.parquet").exists():
        simulate(default_config([f"simulation.sessions={sessions}", "simulation.session_split=test", "simulation.stream=3"],
                                "simulate"), work / "heldout")


def many_queries(sessions: int, queries: int, rankers: int, replicates: int, seed: int = 0) -> dict:
    """The evaluation's own work (evidence, ranks, estimates, intervals, paired differences) where the
    bootstrap is largest: `sessions` over `queries` queries of 20 candidates each, 10 shown per
    session in a random rotation, PBM clicks; ranker scores are random (their values cost the same)."""
    rng = np.random.default_rng(seed)
    alpha = 1.0 / np.arange(1, 11)
    q = rng.integers(0, queries, sessions)
    shown = (rng.integers(0, 20, sessions)[:, None] + np.arange(10)[None, :]) % 20
    doc = (q[:, None] * 20 + shown).astype(np.int32)
    rel = rng.random(queries * 20) ** 3
    click = (rng.random((sessions, 10)) < alpha[None, :] * rel[doc]).astype(np.int8)
    position = np.broadcast_to(np.arange(1, 11, dtype=np.int16), (sessions, 10))
    mask = np.ones((sessions, 10), bool)
    qid = q.astype(str).astype(object)
    t0 = time.perf_counter()
    step = 1 << 16
    ev = aggregate(((qid[i:i + step], doc[i:i + step], position[i:i + step], click[i:i + step], mask[i:i + step])
                    for i in range(0, sessions, step)), alpha)
    scores = rng.random((rankers, len(ev))).astype(np.float32)
    specs = metric_specs(METRICS, alpha)
    values = estimates(ev, scores, specs, ESTIMATORS)
    cfg = {"bootstrap": {"replicates": replicates, "level": 0.95, "seed": 0}, "estimators": ESTIMATORS, "baseline": None}
    report(values, [f"r{i}" for i in range(rankers)], cfg, ev, Propensities(alpha, None, "synthetic"), {})
    return {"sessions": sessions, "queries": int(ev.num_queries), "candidates": len(ev), "rankers": rankers,
            "replicates": replicates, "seconds": round(time.perf_counter() - t0, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=100_000, help="queries of the synthetic many-query log")
    ap.add_argument("--work", type=Path, default=Path("benchmarks/_work/bench_evaluate"))
    a = ap.parse_args()
    record("evaluate_many_queries", many_queries(a.sessions, a.queries, len(RANKERS), a.replicates))
    prepare(a.work, a.sessions)
    run = a.work / "run"
    cfg = default_config([f"rankers=[{','.join(f'{run}:{m}' for m in RANKERS)}]",
                          f"log.path={a.work / 'heldout' / 'clicks.parquet'}", f"propensity.source={a.work / 'heldout'}",
                          f"bootstrap.replicates={a.replicates}"], "evaluate")
    t0 = time.perf_counter()
    log_to_sessions({"log": cfg["log"], "features": {"path": load(f"{run}:naive").features_path},
                     "etl": {**cfg["etl"], "allow_eval_queries": True}}, a.work / "etl_only", training=False)
    etl_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = evaluate(cfg, a.work / "eval")
    total = time.perf_counter() - t0
    record("evaluate", {"sessions": out["log"]["sessions"], "rankers": len(RANKERS), "replicates": a.replicates,
                        "estimators": 3, "metrics": 3, "seconds": round(total, 2), "etl_alone_seconds": round(etl_s, 2),
                        "evaluation_beyond_etl_seconds": round(total - etl_s, 2), "target_seconds": 60,
                        "cores": len(os.sched_getaffinity(0))})


if __name__ == "__main__":
    main()
