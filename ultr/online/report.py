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
        lines.append(f"{results['evaluate_on']} nDCG@10 under the {user} user (mean ± sd over {len(results['seeds'])} seeds)")
        lines.append("run       " + "".join(f"{int(c):>17,d}" for c in counts) + "   gap to oracle   online (disc. cum.)")
        for label, row in runs.items():
            cells = "".join(f"{row['at'][c]['mean']:>9.4f} ± {row['at'][c]['sd']:.3f}" for c in counts)
            lines.append(f"{label:10s} {cells}   {row['gap_to_oracle']:+13.4f}   {row['online_cumulative']['mean']:10.1f} ± {row['online_cumulative']['sd']:.1f}")
    return "\n".join(lines)


def plot_online(results: Mapping[str, Any], path: Path) -> None:
    users = list(results["users"])
    fig, axes = plt.subplots(1, len(users), figsize=(5 * len(users), 3.6), squeeze=False)
    for ax, user in zip(axes[0], users):
        for label, row in results["users"][user].items():
            x = np.asarray(row["curves"]["interactions"])
            y = np.asarray(row["curves"]["offline"])  # [points, seeds]
            mean, sd = y.mean(axis=1), y.std(axis=1)
            ax.plot(x, mean, label=label)
            ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
        ax.set_title(f"{user} user")
        ax.set_xlabel("interactions")
        ax.set_ylabel(f"{results['evaluate_on']} nDCG@10")
        ax.legend(fontsize=8)
    save_figure(fig, path)
