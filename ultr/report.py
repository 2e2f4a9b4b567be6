"""Run reports: the results table printed to the terminal, Markdown, and plots (PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import matplotlib

matplotlib.use("Agg")  # headless: reports are files, never windows
import matplotlib.pyplot as plt  # noqa: E402

from ultr.data.io import atomic_path  # noqa: E402

COLUMNS = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10")


def results_table(methods: Mapping[str, Mapping[str, Any]]) -> str:
    if all(r["test"] is None for r in methods.values()):
        return validation_table(methods)
    head = "| method | nDCG@1 | nDCG@3 | nDCG@5 | nDCG@10 | ERR@10 | propensity error |"
    rows = [head, "|" + "---|" * 7]
    for name, r in methods.items():
        test = r["test"]
        perr = r.get("propensity", {}).get("mean_relative_error")
        perr_s = f"{perr:.1%}" if perr is not None else "-"
        label = f"{name}: {r['kept']}" if "kept" in r else name  # a selection's row says which run it kept
        cells = [f"{test[c]:.4f}" for c in COLUMNS] if test is not None else ["-"] * len(COLUMNS)  # no test labels
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {perr_s} |")
    return "\n".join(rows)


def validation_table(methods: Mapping[str, Mapping[str, Any]]) -> str:
    """Runs without test labels (a real log): their validation score, the number the selection read."""
    metric = next(iter(next(iter(methods.values()))["vali"]))
    rows = [f"| method | validation {metric} |", "|---|---|"]
    for name, r in methods.items():
        label = f"{name}: {r['kept']}" if "kept" in r else name
        rows.append(f"| {label} | {r['vali'][metric]:.4f} |")
    return "\n".join(rows)


def propensity_table(methods: Mapping[str, Mapping[str, Any]], true: list[float] | None) -> str:
    curves = {n: r["propensity"]["estimated"] for n, r in methods.items() if "propensity" in r}
    if not curves:
        return ""
    k = len(next(iter(curves.values())))
    names = (["true"] if true else []) + list(curves)
    lines = ["| position | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for i in range(k):
        vals = ([true[i]] if true else []) + [c[i] for c in curves.values()]
        lines.append(f"| {i + 1} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    return "\n".join(lines)


def save_figure(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_propensity(curves: Mapping[str, list[float]], true: list[float] | None, path: Path,
                    reference: Mapping[str, list[float]] | None = None) -> None:
    """Estimated curves, the true one if known, and reference curves (e.g. raw CTR) dotted."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    if true:
        ax.plot(range(1, len(true) + 1), true, "k--o", label="true", markersize=4)
    for name, c in curves.items():
        ax.plot(range(1, len(c) + 1), c, "-o", label=f"{name} (estimated)", markersize=4)
    for name, c in (reference or {}).items():
        ax.plot(range(1, len(c) + 1), c, ":", color="gray", label=name)
    ax.set(xlabel="position", ylabel="examination relative to position 1", title="Propensity curve")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def plot_learning_curves(histories: Mapping[str, list[dict[str, float]]], path: Path) -> None:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    metric = "nDCG@10"
    for name, h in histories.items():
        a1.plot([r["step"] for r in h], [r["loss"] for r in h], label=name)
        key = next((k for r in h for k in r if k.startswith("vali_")), "vali_ndcg@10")
        metric = "nDCG@10" if key == "vali_ndcg@10" else key[len("vali_"):]
        ev = [r for r in h if key in r]
        a2.plot([r["step"] for r in ev], [r[key] for r in ev], "-o", markersize=3, label=name)
    a1.set(xlabel="step", ylabel="training loss", title="Loss")
    a2.set(xlabel="step", ylabel=f"{metric} (validation)", title="Validation")
    for a in (a1, a2):
        a.grid(alpha=0.3)
        a.legend()
    save_figure(fig, path)


def plot_perplexity(per_rank: Mapping[str, list[float]], path: Path) -> None:
    """Held-out perplexity per rank, one line per click model."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, p in per_rank.items():
        ax.plot(range(1, len(p) + 1), p, "-o", label=name, markersize=4)
    ax.set(xlabel="rank", ylabel="perplexity (held-out)", title="Click models: perplexity per rank")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def click_model_table(models: Mapping[str, Mapping[str, Any]]) -> str:
    head = "| model | log-likelihood | perplexity | conditional perplexity | calibration error | parameters | seconds | sessions/s |"
    rows = [head, "|" + "---|" * 8]
    for name, r in models.items():
        rows.append(f"| {name} | {r['log_likelihood']:.5f} | {r['perplexity']:.5f} | {r['conditional_perplexity']:.5f} | "
                    f"{r['calibration_error']:.5f} | {r['parameters']} | {r['train_seconds']:.1f} | {r['sessions_per_second']:,.0f} |")
    return "\n".join(rows)
