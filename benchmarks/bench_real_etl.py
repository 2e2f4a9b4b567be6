"""Real-log ETL at scale: a synthetic Baidu-ULTR raw log -> click-log Parquet -> session tables,
in a fresh process per size so each peak RSS is its own.

    python benchmarks/bench_real_etl.py --impressions 10000000 50000000 [--plain]
The synthetic parts are gzip files, as the release ships them (--plain: uncompressed text).
Targets (issue 4): peak RSS under 4 GB whatever the log size; >= 1M impressions/s on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import WORK, record, run_child  # noqa: E402

CHILD = """
import json, time
from pathlib import Path
from benchmarks._common import peak_rss_mb
from ultr.data.etl import EtlConfig, run_etl
from ultr.data.readers import ReaderPolicy, convert_log
parts = sorted(Path({src!r}).glob("part-*"))
out = Path({out!r})
t0 = time.perf_counter()
reader = convert_log("baidu", parts, out, ReaderPolicy())
t1 = time.perf_counter()
stats = run_etl(out / "clicks", None, out, EtlConfig(list_size=10))
t2 = time.perf_counter()
print(json.dumps({{"impressions": stats["impressions"], "sessions": stats["sessions"], "parts": len(parts),
                  "seconds_read": round(t1 - t0, 2), "seconds_etl": round(t2 - t1, 2), "seconds_total": round(t2 - t0, 2),
                  "quarantined": reader["quarantined"], "peak_rss_mb": round(peak_rss_mb())}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impressions", type=int, nargs="+", default=[10_000_000, 50_000_000])
    ap.add_argument("--plain", action="store_true", help="plain-text parts (default: gzip parts, as the release ships them)")
    args = ap.parse_args()
    for n in args.impressions:
        src = WORK / (f"baidu_{n}" if args.plain else f"baidu_gz_{n}")
        if not any(src.glob("part-*")):
            gen = [sys.executable, str(Path(__file__).parent / "gen_baidu.py"), "--impressions", str(n), "--out", str(src)]
            subprocess.run(gen + (["--plain"] if args.plain else []), check=True)
        out = WORK / f"baidu_{n}_out"
        res = run_child(CHILD.format(src=str(src), out=str(out)))
        record("real_etl_baidu", {**res, "input": "plain text" if args.plain else "gzip", "impressions_per_s_total": round(res["impressions"] / res["seconds_total"]),
                                  "impressions_per_s_read": round(res["impressions"] / res["seconds_read"])})


if __name__ == "__main__":
    main()
