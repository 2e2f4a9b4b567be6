"""The online results as a table (offline nDCG@10 at fixed interaction counts, mean ± sd over
seeds) and learning curves with bands over seeds, one panel per user."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ultr.report import plt, save_figure


def online_table(results: Mapping[str, Any]) -> str:
    lines = []
    for user, runs in results["users"].items():
        counts = list(next(iter(runs.values()))["at"])
        over = f"{len(results['seeds'])} seeds" + (f" x {results['folds']} folds" if "folds" in results else "")
        batched = f"; {results['batch']} interactions per update, not the papers' 1" if results.get("batch", 1) > 1 else ""
        lines.append(f"{results['evaluate_on']} nDCG@10 under the {user} user (mean ± sd over {over}{batched})")
        lines.append("run       " + "".join(f"{int(c):>17,d}" for c in counts) + "   gap to oracle   online (disc. cum.)")
        for label, row in runs.items():
            cells = "".join(f"{row['at'][c]['mean']:>9.4f} ± {row['at'][c]['sd']:.3f}" for c in counts)
            lines.append(f"{label:10s} {cells}   {row['gap_to_oracle']:+13.4f}   {row['online_cumulative']['mean']:10.1f} ± {row['online_cumulative']['sd']:.1f}")
        for label, row in results.get("offline", {}).get(user, {}).items():
            v = np.asarray(row["final_ndcg@10"])
            cell = f"{v.mean():>9.4f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"
            lines.append(f"{label:10s} {' ' * 17 * (len(counts) - 1)}{cell}   offline, a log of {row['sessions']:,} sessions "
                         f"per replicate ({row['ranker']})")
    return "\n".join(lines)


def plot_online(results: Mapping[str, Any], path: Path) -> None:
    users = list(results["users"])
    fig, axes = plt.subplots(1, len(users), figsize=(5 * len(users), 3.6), squeeze=False)
    for ax, user in zip(axes[0], users):
        for label, row in results["users"][user].items():
            x = np.asarray(row["curves"]["interactions"])
            y = np.asarray(row["curves"]["offline"])  # [points, replicates]
            mean, sd = y.mean(axis=1), y.std(axis=1)
            ax.plot(x, mean, label=label)
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
        ax.set_xscale("symlog", linthresh=1000)  # most of the learning happens in the first thousands
        ax.set_title(f"{user} user")
        ax.set_xlabel("interactions")
        ax.set_ylabel(f"{results['evaluate_on']} nDCG@10")
        ax.legend(fontsize=8)
    save_figure(fig, path)


def combine(runs: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Several runs (folds) of the same design pooled: each (fold, seed) is one replicate. Curves and
    the table at fixed counts are read from the per-seed offline curves; the gap to the oracle is
    each fold's own oracle, averaged."""
    first = runs[0]
    out: dict[str, Any] = {"interactions": first["interactions"], "seeds": first["seeds"],
                           "folds": len(runs), "list_size": first["list_size"], "evaluate_on": first["evaluate_on"],
                           "batch": first.get("batch", 1), "users": {}}
    for user, rows in first["users"].items():
        out["users"][user] = {}
        for label in rows:
            parts = [r["users"][user][label] for r in runs]
            points = parts[0]["curves"]["interactions"]
            offline = np.concatenate([np.asarray(p["curves"]["offline"]) for p in parts], axis=1)  # [points, replicates]
            online = np.concatenate([np.asarray(p["curves"]["online_cumulative"]) for p in parts], axis=1)
            at = {}
            for c in parts[0]["at"]:
                i = points.index(int(c))
                at[c] = {"mean": float(offline[i].mean()), "sd": float(offline[i].std(ddof=1))}
            out["users"][user][label] = {
                "final_ndcg@10": offline[-1].tolist(), "at": at,
                "gap_to_oracle": float(np.mean([p["gap_to_oracle"] for p in parts])),
                "online_cumulative": {"mean": float(online[-1].mean()), "sd": float(online[-1].std(ddof=1))},
                "curves": {"interactions": points, "offline": offline.tolist(), "online_cumulative": online.tolist()}}
    for user, rows in first.get("offline", {}).items():
        out.setdefault("offline", {})[user] = {
            label: {**{k: v for k, v in row.items() if k not in ("final", "final_sd")},
                    "final_ndcg@10": [x for r in runs for x in r["offline"][user][label]["final_ndcg@10"]]}
            for label, row in rows.items()}
    return out


def paired_differences(pooled: Mapping[str, Any], pairs: list[tuple[str, str]]) -> str:
    """Final nDCG@10 differences a - b per user over the paired (fold, seed) replicates, with the
    two-sided paired t-test's p-value."""
    from scipy import stats
    lines = ["user           a - b                    mean diff    p (paired t)   replicates"]
    for user, online_rows in pooled["users"].items():
        rows = {**online_rows, **pooled.get("offline", {}).get(user, {})}
        for a, b in pairs:
            if a in rows and b in rows:
                x, y = np.asarray(rows[a]["final_ndcg@10"]), np.asarray(rows[b]["final_ndcg@10"])
                p = stats.ttest_rel(x, y).pvalue
                lines.append(f"{user:14s} {a + ' - ' + b:22s} {np.mean(x - y):+10.4f}   {p:12.3g}   {len(x):10d}")
    return "\n".join(lines)


PAPER_ORDER = [("pdgd", "mgd"), ("mgd", "dbgd"), ("pdgd_mlp", "pdgd"), ("pdgd_mlp_skip", "pdgd")]


def versus_offline(pooled: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each online run against each offline method (the online_vs_offline comparison)."""
    offline = sorted({m for rows in pooled.get("offline", {}).values() for m in rows})
    online = sorted({m for rows in pooled["users"].values() for m in rows})
    return [(a, b) for a in online for b in offline]


def aggregate_online(sweep_dir: Path) -> dict[str, Any]:
    """`python -m pipelines.aggregate sweep_dir=DIR` on a sweep of `pipelines.online` runs."""
    import json

    from ultr.data.io import atomic_path, write_json
    runs = [json.loads(f.read_text()) for f in sorted(Path(sweep_dir).rglob("online.json"))]
    pooled = combine(runs)
    text = (f"{online_table(pooled)}\n\nfinal {pooled['evaluate_on']} nDCG@10, paired over (fold, seed):\n"
            f"{paired_differences(pooled, PAPER_ORDER + versus_offline(pooled))}")
    write_json(pooled, Path(sweep_dir) / "online_summary.json")
    with atomic_path(Path(sweep_dir) / "online_summary.md") as tmp:
        tmp.write_text(f"# Online sweep: {sweep_dir} ({len(runs)} runs)\n\n```\n{text}\n```\n")
    plot_online(pooled, Path(sweep_dir) / "learning_curves.png")
    print(text)
    return pooled
