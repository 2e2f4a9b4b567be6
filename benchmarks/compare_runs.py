"""Whether two experiment runs are the same, bit for bit: every method's test metrics, validation
nDCG@10, best step, steps run and learned curve in results.json, and per_query.parquet.

    python benchmarks/compare_runs.py RUN_DIR_A RUN_DIR_B     (exit status 1 if they differ)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

KEYS = ("test", "vali", "best_step", "steps_run")


def main(a: Path, b: Path) -> bool:
    ra, rb = (json.loads((d / "results.json").read_text())["methods"] for d in (a, b))
    same = list(ra) == list(rb)
    for m in ra:
        x, y = ra[m], rb.get(m, {})
        eq = all(x.get(k) == y.get(k) for k in KEYS)  # a selection row has no steps of its own and x.get("propensity", {}).get("estimated") == y.get("propensity", {}).get("estimated")
        same &= eq
        print(f"{m:15s} test nDCG@10 {x['test']['ndcg@10']:.6f} vs {y.get('test', {}).get('ndcg@10', float('nan')):.6f}  equal: {eq}")
    tables = pq.read_table(a / "per_query.parquet").equals(pq.read_table(b / "per_query.parquet"))
    print(f"per_query.parquet equal: {tables}")
    return same and tables


if __name__ == "__main__":
    sys.exit(0 if main(Path(sys.argv[1]), Path(sys.argv[2])) else 1)
