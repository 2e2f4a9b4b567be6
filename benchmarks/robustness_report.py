"""Tables of the robustness grid (issue 19) from a sweep's results.json files.

    python benchmarks/robustness_report.py benchmarks/_work/robustness/grid [MORE_SWEEPS ...] [--oracle DIR]

For every cell (setting x seed; several sweeps over the same cells are merged) it prints each
run's test nDCG@10 and curve error, and `default`: the `selected` row the pipeline itself wrote
(conf/experiment.yaml `selection:`), with the run it kept in brackets. Nothing is recomputed
here, so the column is exactly what the default configuration produced. Then, pooled over the
cells, paired t-tests of `default` against naive, the reference DLA and IPS with the true
propensities; per cell, whether `default` is below naive beyond the test split's noise (one-sided
paired t-test over the test queries, per_query.parquet, at 0.05); how often each run was kept; and
the wall time from the runs' own clocks. Recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ultr.aggregate import paired_p_value  # noqa: E402

def cell_of(cfg: dict) -> tuple:
    s = cfg["simulation"]
    return (cfg["data"]["name"], cfg["data"]["fold"], s["policy_fraction"], s["logging"], cfg["click_model"]["name"],
            cfg["click_model"].get("eta", "-"), s["sessions"], cfg["seed"])


def read(sweeps: list[Path]) -> dict[tuple, dict]:
    runs: dict[tuple, dict] = {}
    for f in sorted(f for sweep in sweeps for f in sweep.rglob("results.json")):
        r = json.loads(f.read_text())
        run = runs.setdefault(cell_of(r["config"]), {"methods": {}, "seconds": 0.0})
        run["seconds"] += r["timing"]["total_seconds"]
        run.setdefault("per_query", []).append(f.parent / "per_query.parquet")
        run["methods"].update({"default" if k == "selected" else k: {
            "test": v["test"]["ndcg@10"], "vali": v["vali"]["ndcg@10"], "kept": v.get("kept"),
            "curve": v.get("propensity", {}).get("mean_relative_error")} for k, v in r["methods"].items()})
    return runs


def wall_minutes(sweeps: list[Path]) -> float:
    """First run's start to last run's end: each results.json is written when its run ends, and the
    run's own total_seconds says when it began."""
    ends = [(f.stat().st_mtime, json.loads(f.read_text())["timing"]["total_seconds"])
            for sweep in sweeps for f in sweep.rglob("results.json")]
    return (max(e for e, _ in ends) - min(e - s for e, s in ends)) / 60


def pooled_line(runs: dict, a: str, b: str) -> str | None:
    pairs = [(r["methods"][a]["test"], r["methods"][b]["test"]) for r in runs.values() if a in r["methods"] and b in r["methods"]]
    d = np.array([x - y for x, y in pairs])
    if not len(d):
        return None
    return (f"| {a} - {b} | {len(d)} | {d.mean():+.4f} | {int((d > 0).sum())} / {int((d < 0).sum())} | "
            f"{paired_p_value(d):.3g} |")


def below_naive_p(per_query: list[Path]) -> float | None:
    """One-sided p that `selected` is below naive on the test queries of one cell."""
    frames = [pl.read_parquet(f) for f in per_query if f.exists()]
    if not frames:
        return None
    t = pl.concat(frames).filter((pl.col("split") == "test") & pl.col("has_relevant"))
    wide = t.pivot(on="method", index="query_id", values="ndcg@10", aggregate_function="first")
    if "selected" not in wide.columns or "naive" not in wide.columns:
        return None
    d = (wide["selected"] - wide["naive"]).drop_nulls().to_numpy()
    return 1.0 if not np.any(d) else float(stats.ttest_1samp(d, 0.0, alternative="less").pvalue)


def noise_lines(runs: dict) -> list[str]:
    ps = [p for r in runs.values() if (p := below_naive_p(r.get("per_query", []))) is not None]
    kept: dict[str, int] = {}
    for r in runs.values():
        if "default" in r["methods"]:
            kept[r["methods"]["default"]["kept"]] = kept.get(r["methods"]["default"]["kept"], 0) + 1
    return [f"default below naive beyond noise (one-sided paired t-test over test queries, p < 0.05): "
            f"{sum(p < 0.05 for p in ps)} of {len(ps)} runs (smallest p {min(ps, default=float('nan')):.3g})",
            "default kept: " + ", ".join(f"{k} {n}" for k, n in sorted(kept.items()))]


def _cell(v: dict) -> str:
    """Test nDCG@10, with the curve error of a run that learns one, or the run a selection kept."""
    extra = f" ({v['curve']:.0%})" if v.get("curve") is not None else f" [{v['kept']}]" if v.get("kept") else ""
    return f"{v['test']:.4f}{extra}"


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sweeps", type=Path, nargs="+")
    ap.add_argument("--oracle", type=Path, help="runs holding the oracle (its score depends on the data and seed only)")
    args = ap.parse_args()
    runs = read(args.sweeps)
    oracle = {(k[0], k[-1]): r["methods"]["oracle"]["test"] for k, r in read([args.oracle] if args.oracle else []).items()
              if "oracle" in r["methods"]}
    names = sorted({m for r in runs.values() for m in r["methods"]} - {"oracle"}, key=lambda m: (m != "default", m))
    print("| data | fold | policy | logging | clicks | eta | sessions | seed | " + " | ".join(names) + " | oracle |")
    print("|" + "---|" * (9 + len(names)))
    for cell, r in sorted(runs.items(), key=lambda kv: str(kv[0])):
        m = r["methods"]
        vals = [_cell(m[n]) if n in m else "-" for n in names]
        print("| " + " | ".join(str(c) for c in cell) + " | " + " | ".join(vals) + f" | {_fmt(m['oracle']['test'] if 'oracle' in m else oracle.get((cell[0], cell[-1])))} |")
    means = [np.mean([r["methods"][n]["test"] for r in runs.values() if n in r["methods"]]) for n in names]
    print("| mean | " + " | " * 7 + " | ".join(f"{m:.4f}" for m in means) + " | |")
    print("\n| pooled over the cells | pairs | mean difference | above / below | paired p |\n|---|---|---|---|---|")
    for a, b in (("default", "naive"), ("default", "ips_true"), ("dla", "naive"), ("dla_disentangled", "dla"),
                 ("default", "dla"), ("dla+severe_bias", "dla"), ("default", "oracle")):
        if line := pooled_line(runs, a, b):
            print(line)
    print("\n" + "\n".join(noise_lines(runs)))
    print(f"\nwall time {wall_minutes(args.sweeps):.1f} min for {len(runs)} runs; "
          f"sum of run times {sum(r['seconds'] for r in runs.values()) / 60:.1f} min "
          f"(report written {datetime.now():%Y-%m-%d %H:%M})")


if __name__ == "__main__":
    main()
