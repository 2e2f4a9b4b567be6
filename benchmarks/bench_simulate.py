"""Simulation throughput: sessions/s for N sessions on MQ2008 Fold1 (K=10, PBM eta=1).

    python benchmarks/bench_simulate.py --sessions 1000000
Reports the sampling alone (policy, lists, clicks) and sampling + writing the click-log Parquet.
Target (issue 2): >= 1M sessions/s on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import WORK, peak_rss_mb, record  # noqa: E402
from ultr.click_models.simulator import make_click_model  # noqa: E402
from ultr.simulation.simulate import simulate_sessions, write_simulated_log  # noqa: E402
from ultr.workflows import ingest  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    out = WORK / "simulate"
    features = ingest({"root": "data/mq2008", "fold": 1, "num_features": 46}, out)
    model = make_click_model("pbm", y_max=2, eta=1.0)
    best_sim = best_all = float("inf")
    for r in range(args.repeats):
        t0 = time.perf_counter()
        log = simulate_sessions(features, model, sessions=args.sessions, list_size=10, seed=r)
        t1 = time.perf_counter()
        rows = write_simulated_log(log, features, out / "clicks.parquet")
        t2 = time.perf_counter()
        best_sim, best_all = min(best_sim, t1 - t0), min(best_all, t2 - t0)
    record("simulate", {
        "sessions": args.sessions, "impressions": rows,
        "sessions_per_s_sampling": round(args.sessions / best_sim),
        "sessions_per_s_with_parquet_write": round(args.sessions / best_all),
        "seconds_sampling": round(best_sim, 3), "seconds_with_write": round(best_all, 3),
        "peak_rss_mb": round(peak_rss_mb()),
    })


if __name__ == "__main__":
    main()
