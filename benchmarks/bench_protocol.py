"""The whole ULTRA protocol on a full-size synthetic fold: wall time and peak memory per stage.

    python benchmarks/gen_letor.py --shape mslr30k --scale 1.0 --out benchmarks/_work/mslr30k_1.0
    python benchmarks/bench_protocol.py --root benchmarks/_work/mslr30k_1.0

runs, in a fresh process through the real entry point (`python -m pipelines.experiment
data=mslr30k ...`): ingest, simulate 10M sessions (PBM, eta=1, one deterministic policy), ETL,
DLA for 10k steps of batch 256 with validation every 500 steps, then the test split. The cache
is private to the run, so every stage runs. Targets (issue 14, 2 cores): <= 20 minutes wall,
<= 12 GB peak RSS, scoring for evaluation >= 1M documents/s. `--methods dla oracle` adds the
oracle (for the quality check); `--seed` changes the simulation and training seed.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import WORK, record  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--data", default="mslr30k")
    ap.add_argument("--sessions", type=int, default=10_000_000)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--methods", nargs="+", default=["dla"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-cache", action="store_true", help="reuse the data cache of an earlier run (training only)")
    ap.add_argument("--extra", nargs="*", default=[], help="more overrides")
    args = ap.parse_args()
    tag = f"{args.data}_{args.sessions}_{'-'.join(args.methods)}_s{args.seed}"
    run_dir, cache = WORK / "protocol" / tag, WORK / "protocol" / "cache"
    shutil.rmtree(run_dir, ignore_errors=True)
    if not args.keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
    cmd = [
        sys.executable, "-m", "pipelines.experiment", f"data={args.data}", f"data.root={args.root.resolve()}",
        f"algorithm.methods=[{','.join(args.methods)}]", f"simulation.sessions={args.sessions}", f"seed={args.seed}",
        f"trainer.steps={args.steps}", "trainer.batch_size=256", f"trainer.eval_every={args.eval_every}",
        "trainer.patience=null", "trainer.progress=false", f"cache.dir={cache}", f"hydra.run.dir={run_dir}", *args.extra,
    ]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parent.parent)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    out = json.loads((run_dir / "results.json").read_text())
    stages = out["timing"]["stages"]
    per_method = {}
    for m, r in out["methods"].items():
        ev = stages[f"evaluate:{m}"]
        per_method[m] = {
            "test_ndcg@10": r["test"]["ndcg@10"], "vali_ndcg@10": r["vali"]["ndcg@10"], "best_step": r["best_step"],
            "steps_run": r["steps_run"], "train_seconds": r["train_seconds"],
            "evaluate_documents_per_s": round(ev["documents"] / ev["seconds"]),
            **({"propensity_error": r["propensity"].get("mean_relative_error")} if "propensity" in r else {}),
        }
    record("protocol", {
        "data": args.data, "root": str(args.root), "sessions": args.sessions, "steps": args.steps, "seed": args.seed,
        "wall_seconds": round(wall, 1), "peak_rss_mb": round(peak), "stages": stages, "methods": per_method,
    })


if __name__ == "__main__":
    main()
