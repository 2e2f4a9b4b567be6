"""Aggregate a sweep: every run's results.json -> one table (mean +- std over seeds and folds,
number of runs, paired t-test p-value of nDCG@10 against DLA) and plots."""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from jax.scipy.special import betainc

from ultr.data.io import atomic_path, write_parquet
from ultr.errors import DataError
from ultr.online.report import aggregate_online
from ultr.report import plt, save_figure

REPLICATE_KEYS = ("seed", "data.fold")
METRICS = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10")
# Keys that vary between runs without defining a setting (bookkeeping, not experiment design).
IGNORED_PREFIXES = ("hydra", "trainer.progress", "cache", "clicks")


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: json.dumps(d) if isinstance(d, list) else d}


def paired_p_value(diff: np.ndarray) -> float:
    """Two-sided paired t-test p-value for mean(diff) = 0 (NaN with fewer than 2 pairs)."""
    n = len(diff)
    if n < 2:
        return float("nan")
    sd = diff.std(ddof=1)
    if sd == 0:
        return 1.0 if diff.mean() == 0 else 0.0
    t = diff.mean() / (sd / math.sqrt(n))
    df = n - 1
    return float(betainc(df / 2.0, 0.5, df / (df + t * t)))


def collect_runs(sweep_dir: Path) -> tuple[pl.DataFrame, list[str], dict[str, Any]]:
    files = sorted(sweep_dir.rglob("results.json"))
    if not files:
        raise DataError(f"{sweep_dir}: no results.json below it; point sweep_dir at a multirun directory")
    runs = [(f, json.loads(f.read_text())) for f in files]
    flat = [_flatten(r["config"]) for _, r in runs]
    keys = sorted(set().union(*flat))
    varying = [k for k in keys if len({json.dumps(fl.get(k), sort_keys=True) for fl in flat}) > 1]
    setting_keys = [k for k in varying if k not in REPLICATE_KEYS and not k.startswith(IGNORED_PREFIXES) and not k.startswith("algorithm")]
    rows, curves = [], {}
    for (f, r), fl in zip(runs, flat):
        setting = {k: str(fl.get(k)) for k in setting_keys}
        for method, m in r["methods"].items():
            row = {**setting, "method": method, "seed": fl.get("seed"), "fold": fl.get("data.fold"), "run": str(f.parent)}
            row.update({k: m["test"].get(k) for k in METRICS})
            row["prop_err"] = m.get("propensity", {}).get("mean_relative_error")
            row["kept"] = m.get("kept")  # a selection's row: which run it kept
            rows.append(row)
            if "propensity" in m:
                key = (tuple(setting.items()), method)
                curves.setdefault(key, {"est": [], "true": m["propensity"].get("true")})["est"].append(m["propensity"]["estimated"])
    return pl.DataFrame(rows, infer_schema_length=None), setting_keys, curves


def _kept_counts(kept: pl.Series) -> str | None:
    """'dla 14, naive 1': how often a selection kept each run (None for a run's own row)."""
    return ", ".join(f"{k} {n}" for k, n in Counter(kept.to_list()).most_common()) or None


def aggregate(sweep_dir: str | Path, reference: str = "dla") -> pl.DataFrame:
    """Mean and spread of each method's metrics per setting, with a paired test of each method
    against `reference` on the same (setting, seed, fold)."""
    sweep_dir = Path(sweep_dir)
    if not any(sweep_dir.rglob("results.json")) and any(sweep_dir.rglob("online.json")):
        return aggregate_online(sweep_dir)  # a sweep of pipelines.online
    runs, setting_keys, curves = collect_runs(sweep_dir)
    group = [*setting_keys, "method"]
    agg = [pl.len().alias("n_runs")]
    for k in (*METRICS, "prop_err"):
        agg += [pl.col(k).mean().alias(f"{k}_mean"), pl.col(k).std().alias(f"{k}_std")]
    agg.append(pl.col("kept").drop_nulls().alias("kept"))
    summary = runs.group_by(group, maintain_order=True).agg(agg).with_columns(
        pl.col("kept").map_elements(_kept_counts, return_dtype=pl.String))
    pvals = []
    for row in summary.iter_rows(named=True):
        sel = runs.filter(*[pl.col(k) == row[k] for k in setting_keys]) if setting_keys else runs
        a = sel.filter(pl.col("method") == row["method"]).select("seed", "fold", "ndcg@10")
        b = sel.filter(pl.col("method") == reference).select("seed", "fold", pl.col("ndcg@10").alias("_ref"))
        pair = a.join(b, on=["seed", "fold"], how="inner", nulls_equal=True)
        same = row["method"] == reference
        pvals.append(float("nan") if same or pair.height == 0 else paired_p_value((pair["ndcg@10"] - pair["_ref"]).to_numpy()))
    summary = summary.with_columns(pl.Series("p_vs_dla", pvals)).sort(group)
    with atomic_path(sweep_dir / "summary.csv") as tmp:
        summary.write_csv(tmp)
    write_parquet(runs.to_arrow(), sweep_dir / "runs.parquet")
    table = _markdown(summary, setting_keys)
    if setting_keys:
        table += "\n\n" + _pooled_markdown(pooled(runs, setting_keys, reference), reference)
    with atomic_path(sweep_dir / "summary.md") as tmp:
        tmp.write_text(f"# Sweep summary: {sweep_dir}\n\n{table}\n")
    _plots(runs, setting_keys, curves, sweep_dir)
    print(table, file=sys.stdout)
    return summary


def pooled(runs: pl.DataFrame, setting_keys: list[str], reference: str) -> list[dict[str, Any]]:
    """Each method against `reference` over the whole sweep: the paired nDCG@10 differences of every
    (setting, seed, fold) where both ran, their mean, and the paired t-test p-value."""
    keys = [*setting_keys, "seed", "fold"]
    ref = runs.filter(pl.col("method") == reference).select(*keys, pl.col("ndcg@10").alias("_ref"))
    out = []
    for method in sorted(set(runs["method"]) - {reference}):
        pair = runs.filter(pl.col("method") == method).join(ref, on=keys, how="inner", nulls_equal=True)
        diff = (pair["ndcg@10"] - pair["_ref"]).to_numpy()
        if len(diff):
            out.append({"method": method, "pairs": len(diff), "mean_diff": float(diff.mean()),
                        "wins": int((diff > 0).sum()), "p": paired_p_value(diff)})
    return out


def _pooled_markdown(rows: list[dict[str, Any]], reference: str) -> str:
    lines = [f"Pooled over every setting: nDCG@10 of each method minus {reference}'s on the same (setting, seed, fold)",
             "", "| method | pairs | mean difference | above | paired p |", "|---|---|---|---|---|"]
    for r in rows:
        p = "-" if np.isnan(r["p"]) else f"{r['p']:.3g}"
        lines.append(f"| {r['method']} | {r['pairs']} | {r['mean_diff']:+.4f} | {r['wins']} | {p} |")
    return "\n".join(lines)


def _markdown(summary: pl.DataFrame, setting_keys: list[str]) -> str:
    head = [*setting_keys, "method", "n", "nDCG@10", "ERR@10", "propensity error", "p vs DLA", "kept"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary.iter_rows(named=True):
        def ms(k: str) -> str:
            m, s = r[f"{k}_mean"], r[f"{k}_std"]
            return "-" if m is None else f"{m:.4f} ± {0.0 if s is None else s:.4f}"

        p = r["p_vs_dla"]
        lines.append("| " + " | ".join([*(str(r[k]) for k in setting_keys), r["method"], str(r["n_runs"]), ms("ndcg@10"), ms("err@10"),
                                        ms("prop_err"), "-" if p is None or np.isnan(p) else f"{p:.3g}",
                                        r["kept"] or "-"]) + " |")
    return "\n".join(lines)


def _plots(runs: pl.DataFrame, setting_keys: list[str], curves: dict, out: Path) -> None:
    if "click_model.eta" in setting_keys:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        means = runs.group_by("click_model.eta", "method").agg(pl.col("ndcg@10").mean(), pl.col("ndcg@10").std().alias("sd"))
        for method in sorted(set(means["method"])):
            m = means.filter(pl.col("method") == method).with_columns(pl.col("click_model.eta").cast(pl.Float64)).sort("click_model.eta")
            ax.errorbar(m["click_model.eta"], m["ndcg@10"], yerr=m["sd"].fill_null(0), marker="o", capsize=3, label=method)
        ax.set(xlabel="eta (bias severity)", ylabel="nDCG@10 (test)", title="nDCG@10 vs eta")
        ax.grid(alpha=0.3)
        ax.legend()
        save_figure(fig, out / "ndcg_vs_eta.png")
    if curves:
        settings = sorted({k[0] for k in curves})
        fig, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 3.8), squeeze=False)
        for ax, setting in zip(axes[0], settings):
            true = None
            for (s, method), c in sorted(curves.items()):
                if s != setting:
                    continue
                est = np.mean(np.asarray(c["est"], dtype=float), axis=0)
                ax.plot(range(1, len(est) + 1), est, "-o", markersize=3, label=method)
                true = c["true"] or true
            if true:
                ax.plot(range(1, len(true) + 1), true, "k--", label="true")
            ax.set(title=", ".join(f"{k}={v}" for k, v in setting) or "all runs", xlabel="position", ylabel="relative examination")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        save_figure(fig, out / "propensity_curves.png")
