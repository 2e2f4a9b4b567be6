"""Click-based against label-based validation, from a sweep over `validation.source=labels,clicks`:
the test nDCG@10 (read for this report only) of each method's kept step, paired per (fold, seed, eta).

    python -m pipelines.experiment -m data.root=../shared/data/mq2008 data.fold=1,2,3,4,5 seed=0,1,2 \\
        click_model.eta=1,2 validation.source=labels,clicks 'algorithm.methods=[dla]' selection.reference=null \\
        hydra.sweep.dir=SWEEP
    python benchmarks/validation_report.py SWEEP [SWEEP ...] [--method dla]

Several sweep folders are read as one (labels runs in one, clicks runs in another).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import ttest_rel

KEYS = ("click_model.eta", "data.fold", "seed", "validation.source")


def runs(sweeps: list[Path], method: str) -> dict[tuple[str, ...], dict]:
    out = {}
    for results in (r for sweep in sweeps for r in sweep.glob("*/results.json")):
        overrides = dict(part.split("=", 1) for part in results.parent.name.split(",") if "=" in part)
        entry = json.loads(results.read_text())["methods"][method]
        out[tuple(overrides[k] for k in KEYS)] = {"ndcg": entry["test"]["ndcg@10"], "step": entry["best_step"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", type=Path, nargs="+")
    ap.add_argument("--method", default="dla")
    a = ap.parse_args()
    found = runs(a.sweep, a.method)
    print("| eta | pairs | labels nDCG@10 | clicks nDCG@10 | ratio | pairs >= 0.98 | paired t p | median kept step labels / clicks |")
    print("|---|---|---|---|---|---|---|---|")
    for eta in sorted({k[0] for k in found}):
        pairs = sorted({k[1:3] for k in found if k[0] == eta and (eta, *k[1:3], "labels") in found and (eta, *k[1:3], "clicks") in found})
        lab = np.array([found[(eta, *p, "labels")]["ndcg"] for p in pairs])
        clk = np.array([found[(eta, *p, "clicks")]["ndcg"] for p in pairs])
        steps = [np.median([found[(eta, *p, s)]["step"] for p in pairs]) for s in ("labels", "clicks")]
        p = ttest_rel(clk, lab).pvalue if len(pairs) > 1 else float("nan")
        print(f"| {eta} | {len(pairs)} | {lab.mean():.4f} | {clk.mean():.4f} | {clk.mean() / lab.mean():.3f} | "
              f"{int((clk / lab >= 0.98).sum())} | {p:.3g} | {steps[0]:.0f} / {steps[1]:.0f} |")
    print("\nper fold (mean over seeds), clicks / labels:")
    for eta in sorted({k[0] for k in found}):
        cells = []
        for fold in sorted({k[1] for k in found}):
            seeds = [k[2] for k in found if k[:2] == (eta, fold) and k[3] == "labels" and (eta, fold, k[2], "clicks") in found]
            if seeds:
                r = np.mean([found[(eta, fold, s, "clicks")]["ndcg"] for s in seeds]) / np.mean([found[(eta, fold, s, "labels")]["ndcg"] for s in seeds])
                cells.append(f"Fold{fold} {r:.3f}")
        print(f"eta {eta}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
