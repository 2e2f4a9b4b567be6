"""ETL throughput and peak memory: click log -> session tables, at two log sizes.

    python benchmarks/bench_etl.py --impressions 10000000 20000000
Each size runs in a fresh process so its peak RSS is its own. Target (issue 2): >= 2M
impressions/s, and peak memory that does not grow with the log size (shard_rows bounds it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import WORK, record, run_child  # noqa: E402

CHILD = """
import json, time, sys
from benchmarks._common import peak_rss_mb
from ultr.data.etl import EtlConfig, run_etl
t = time.perf_counter()
s = run_etl({log!r}, {features!r}, {out!r}, EtlConfig(list_size=10, shard_rows={shard_rows}))
dt = time.perf_counter() - t
print(json.dumps({{"seconds": round(dt, 2), "impressions": s["impressions"], "sessions": s["sessions"],
                  "shards": s["shards"], "peak_rss_mb": round(peak_rss_mb())}}))
"""

GEN = """
import json
from benchmarks._common import peak_rss_mb
from ultr.click_models.simulator import make_click_model
from ultr.simulation.simulate import simulate_sessions, write_simulated_log
from ultr.workflows import ingest
f = ingest({{"root": "data/mq2008", "fold": 1, "num_features": 46}}, {dir!r})
log = simulate_sessions(f, make_click_model("pbm", y_max=2), sessions={sessions}, list_size=10, seed=0)
print(json.dumps({{"rows": write_simulated_log(log, f, {log!r})}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impressions", type=int, nargs="+", default=[10_000_000, 20_000_000])
    ap.add_argument("--shard-rows", type=int, default=4_000_000)
    args = ap.parse_args()
    for n in args.impressions:
        d = WORK / f"etl_{n}"
        d.mkdir(parents=True, exist_ok=True)
        log = d / "clicks.parquet"
        gen = run_child(GEN.format(dir=str(d), sessions=int(n / 8.872), log=str(log)))
        res = run_child(CHILD.format(log=str(log), features=str(d / "features.parquet"), out=str(d / "out"), shard_rows=args.shard_rows))
        record("etl", {
            "log_rows": gen["rows"], **res, "shard_rows": args.shard_rows,
            "impressions_per_s": round(res["impressions"] / res["seconds"]),
        })


if __name__ == "__main__":
    main()
