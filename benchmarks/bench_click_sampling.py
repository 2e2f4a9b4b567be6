"""Click-log simulation with one click-model definition, side by side with the code before it.

    python benchmarks/bench_click_sampling.py [--reference-commit 9ab4d81] [--sessions 1000000] [--repeats 3]

The reference is a git worktree of the given commit (benchmarks/_work/reference-<commit>), run in
its own processes, alternating with this checkout, on the same data and seeds. For every click
model of the reference simulator it reports sessions per second (best of `repeats`, MQ2008 Fold1,
K=10) and whether the two logs are the same click for click. Then, for the default configuration on
MQ2008 (5 folds x 3 seeds, `--default-cells`), whether each cell's simulated clicks.parquet is the
same: if it is, the default run trains on the same log, so its results cannot change.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import WORK, record  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"pbm": {}, "cascade": {}, "dcm": {}, "dbn": {}, "ccm": {}, "ubm": {}, "trust": {},
          "mixture": {}, "matrix": {"matrix": [[0.07, 0.06, 0.05, 0.03, 0.03, 0.02, 0.01, 0.01, 0.01, 0.01],
                                               [0.27, 0.24, 0.19, 0.14, 0.11, 0.08, 0.04, 0.04, 0.03, 0.02],
                                               [0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06]]}}

CHILD = r'''
import hashlib, json, sys, time
root, mode, arg = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, root)
import numpy as np
import ultr
assert ultr.__file__.startswith(root), (ultr.__file__, root)
try:
    from ultr.click_models.simulator import make_click_model
except ImportError:
    from ultr.simulation.click_models import make_click_model
from ultr.simulation.simulate import simulate_sessions
from ultr.workflows import ingest

def digest(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]

if mode == "speed":
    features = ingest({"root": arg["mq2008"], "fold": 1, "num_features": 46}, arg["out"])
    model = make_click_model(arg["model"], y_max=2, **arg["settings"])
    simulate_sessions(features, model, sessions=1000, list_size=10, seed=0)  # compile / warm up
    t0 = time.perf_counter()
    log = simulate_sessions(features, model, sessions=arg["sessions"], list_size=10, seed=arg["seed"])
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "clicks": digest(log.clicks), "ctr": log.clicks.mean(0).tolist()}))
else:
    from ultr.config import compose
    from ultr.workflows import simulate
    import pyarrow.parquet as pq, contextlib, io
    cfg = compose("experiment", [f"data.root={arg['mq2008']}", f"data.fold={arg['fold']}", f"seed={arg['seed']}"])
    with contextlib.redirect_stderr(io.StringIO()):
        simulate(cfg, arg["out"])
    t = pq.read_table(arg["out"] + "/clicks.parquet")
    print(json.dumps({"clicks": digest(np.asarray(t.column("click"))), "rows": t.num_rows,
                      "table": hashlib.sha256(str(t.to_pydict()).encode()).hexdigest()[:16]}))
'''


def reference(commit: str) -> Path:
    path = WORK / f"reference-{commit}"
    if not path.exists():
        subprocess.run(["git", "worktree", "add", "-f", str(path), commit], cwd=ROOT, check=True, capture_output=True)
    return path


def child(root: Path, mode: str, arg: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root), mode, json.dumps(arg)], capture_output=True, text=True,
                         cwd=root)
    if out.returncode:
        raise SystemExit(f"{root} {mode} {arg}: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference-commit", default="9ab4d81")
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mq2008", default=str(ROOT.parent / "shared" / "data" / "mq2008"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--default-cells", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    ref = reference(args.reference_commit)
    sides = {"reference": ref, "this": ROOT}
    for name in filter(None, args.models.split(",")):
        best, logs = {}, {}
        for r in range(args.repeats):
            for side, root in sides.items():  # alternating, so drift on a shared machine hits both
                got = child(root, "speed", {"mq2008": args.mq2008, "out": str(WORK / f"sampling-{side}"), "model": name,
                                            "settings": MODELS[name], "sessions": args.sessions, "seed": r})
                best[side] = min(best.get(side, float("inf")), got["seconds"])
                logs.setdefault(side, []).append(got)
        same = all(a["clicks"] == b["clicks"] for a, b in zip(logs["reference"], logs["this"]))
        ctr_gap = max(abs(x - y) for a, b in zip(logs["reference"], logs["this"]) for x, y in zip(a["ctr"], b["ctr"]))
        record("click_sampling", {
            "model": name, "sessions": args.sessions,
            "reference_sessions_per_s": round(args.sessions / best["reference"]),
            "sessions_per_s": round(args.sessions / best["this"]),
            "speed_ratio": round(best["reference"] / best["this"], 2),
            "same_clicks": same, "max_ctr_gap_per_rank": round(ctr_gap, 5)})
    if args.default_cells:
        cells = [(f, s) for f in range(1, 6) for s in range(3)]
        same = 0
        for fold, seed in cells:
            got = {side: child(root, "default", {"mq2008": args.mq2008, "fold": fold, "seed": seed,
                                                  "out": str(WORK / f"default-{side}-{fold}-{seed}")})
                   for side, root in sides.items()}
            same += got["reference"]["table"] == got["this"]["table"]
            print(f"fold {fold} seed {seed}: clicks.parquet {'same' if got['reference']['table'] == got['this']['table'] else 'DIFFERENT'}"
                  f" ({got['this']['rows']} rows)", file=sys.stderr)
        record("click_sampling_default_logs", {"cells": len(cells), "same_clicks_parquet": same})


if __name__ == "__main__":
    main()
