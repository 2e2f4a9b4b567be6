"""Quality protocol (issue 3): MQ2008 folds x seeds x eta, PBM, K=10, logging policy from 1% of the
training queries. Runs the default experiment per setting and summarises test nDCG@10 of each
method, DLA / oracle, and DLA's propensity error.

    python benchmarks/bench_quality.py --folds 1 2 3 4 5 --seeds 0 1 2 --etas 1
    python benchmarks/bench_quality.py --folds 1 --seeds 0 --etas 0.5 2 --methods dla
Needs the five folds at ../shared/data/mq2008 (or --root).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from statistics import mean, pstdev

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import WORK, record  # noqa: E402
from pipelines.config import default_config  # noqa: E402
from ultr.experiment import run_experiment  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default="../shared/data/mq2008")
    ap.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--etas", type=float, nargs="+", default=[1.0])
    ap.add_argument("--methods", default="all", help="all: the config's methods; else a comma-separated list")
    ap.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides")
    ap.add_argument("--tag", default="", help="suffix of the run directories, so runs with different --extra keep apart")
    args = ap.parse_args()
    rows = []
    for eta in args.etas:
        for fold in args.folds:
            for seed in args.seeds:
                over = [f"data.root={args.root}", f"data.fold={fold}", f"seed={seed}", f"click_model.eta={eta}",
                        *([] if args.methods == "all" else [f"algorithm.methods=[{args.methods}]"]), "trainer.progress=false", "trainer.tensorboard=false",
                        "trainer.checkpoint=false", *args.extra]
                run_dir = WORK / "quality" / f"eta{eta}_fold{fold}_seed{seed}_{args.methods}{'_' + args.tag if args.tag else ''}"
                with contextlib.redirect_stdout(io.StringIO()):
                    out = run_experiment(default_config(over), run_dir)
                row = {"eta": eta, "fold": fold, "seed": seed, "seconds": out["timing"]["total_seconds"]}
                for m, r in out["methods"].items():
                    row[f"{m}_ndcg@10"] = r["test"]["ndcg@10"]
                    row[f"{m}_vali_ndcg@10"] = r["vali"]["ndcg@10"]
                    if "propensity" in r:
                        row[f"{m}_prop_err"] = r["propensity"].get("mean_relative_error")
                        row[f"{m}_diverged"] = "warning" in r["propensity"]
                    if "kept" in r:  # a selection's row: the run it kept
                        row[f"{m}_kept"] = r["kept"]
                print(json.dumps(row), flush=True)
                rows.append(row)
    summary = {}
    for eta in args.etas:
        sel = [r for r in rows if r["eta"] == eta]
        # runs that only some settings train (a severe-bias retraining) are summarised over those that have them
        keys = sorted({k for r in sel for k in r if k.endswith(("ndcg@10", "prop_err"))})
        s = {k: {"mean": round(mean(r[k] for r in sel if k in r), 4), "std": round(pstdev(r[k] for r in sel if k in r), 4),
                 "runs": sum(k in r for r in sel)} for k in keys}
        if "dla_ndcg@10" in sel[0] and "oracle_ndcg@10" in sel[0]:
            s["dla_over_oracle"] = round(mean(r["dla_ndcg@10"] for r in sel) / mean(r["oracle_ndcg@10"] for r in sel), 4)
        fold1 = [r for r in sel if r["fold"] == 1]
        if fold1:
            s["fold1"] = {k: round(mean(r[k] for r in fold1 if k in r), 4) for k in keys if any(k in r for r in fold1)}
        summary[str(eta)] = s
    record("quality", {"folds": args.folds, "seeds": args.seeds, "methods": args.methods, "extra": args.extra, "tag": args.tag, "runs": len(rows), "summary": summary})


if __name__ == "__main__":
    main()
