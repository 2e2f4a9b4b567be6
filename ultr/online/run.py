"""`python -m pipelines.online`: every configured run (an online method with its settings) learns
under every configured user, seeds side by side; learning curves, a table at fixed interaction
counts, and the final rankers' test metrics (ultr.metrics, the offline experiment's definitions).
Writes online.json and learning_curves.png atomically."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ultr.data.io import write_json
from ultr.errors import DataError
from ultr.metrics import evaluate_scores
from ultr.online.feed import lists, make_user
from ultr.online.loop import Curves, Evaluation, learn
from ultr.online.methods import make
from ultr.online.methods.base import OnlineMethod
from ultr.online.offline import offline_rows
from ultr.online.oracle import full_information
from ultr.online.report import online_table, plot_online
from ultr.workflows import ingest


def final_metrics(method: OnlineMethod, states: Any, X: jax.Array, ev: Evaluation, y_max: float) -> list[dict[str, float]]:
    """Each seed's final ranker on a split: ultr.metrics' means over queries with a relevant document.
    Scores the split's rows once and reads them into [Q, W] (no [Q, W, F] copy of the features)."""
    x, where = X[ev.rows], np.asarray(ev.where)
    label, mask = np.asarray(ev.label), np.asarray(ev.mask)
    out = []
    for s in range(jax.tree.leaves(states)[0].shape[0]):
        state = jax.tree.map(lambda a: a[s], states)
        scores = np.asarray(method.score(state, x))[where]
        out.append(evaluate_scores(scores, label, mask, y_max)[0])
    return out


def at_counts(curves: Curves, counts: list[int]) -> dict[str, dict[str, float]]:
    """Offline nDCG@10 (mean, sd over seeds) after each of these interaction counts (curve points)."""
    out = {}
    for c in counts:
        v = curves.offline[curves.interactions.index(c)]
        out[str(c)] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0}
    return out


def online(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    o = cfg["online"]
    if int(o["interactions"]) < 1 or int(o["every"]) < 1 or int(o["seeds"]) < 1:
        raise DataError(f"online.interactions={o['interactions']}, online.every={o['every']}, online.seeds={o['seeds']}: all must be >= 1")
    batch = int(o.get("batch", 1))
    if batch < 1:
        raise DataError(f"online.batch={batch}: the interactions per update must be >= 1 (1: the papers' form)")
    off = [f"online.{n}={v}" for n, v in (("interactions", o["interactions"]), ("every", o["every"]),
                                          *(("report_at", c) for c in o["report_at"] if int(c) <= int(o["interactions"])))
           if int(v) % batch]
    if off:
        raise DataError(f"online.batch={batch}: {off[0]} is not a multiple of it; interaction counts must be whole batches")
    run_dir = Path(run_dir)
    features = ingest(cfg["data"], run_dir, seed=int(cfg["seed"]))
    y_max, k = int(features.labels.max()), int(o["list_size"])
    X = jnp.asarray(features.features)
    train, test = lists(features, "train"), Evaluation.of(lists(features, o["evaluate_on"]))
    seeds = [int(cfg["seed"]) + i for i in range(int(o["seeds"]))]
    counts = sorted({int(c) for c in o["report_at"] if int(c) <= int(o["interactions"])} | {int(o["interactions"])})
    results: dict[str, Any] = {"interactions": int(o["interactions"]), "seeds": seeds, "list_size": k, "batch": batch,
                               "evaluate_on": o["evaluate_on"], "oracle": {}, "users": {}}
    unknown = [m for m in o["methods"] if m not in o["runs"]]
    if unknown:
        raise DataError(f"online.methods: {unknown[0]!r} is not in online.runs {sorted(o['runs'])}; add it as "
                        f"+online.runs.{unknown[0]}='{{method: pdgd, ...}}' or pick one of those")
    runs = {label: make(o["runs"][label]["method"], {k: v for k, v in o["runs"][label].items() if k != "method"})
            for label in o["methods"]}
    vali = Evaluation.of(lists(features, "vali"))
    for method in {m.ranker: m for m in runs.values()}.values():
        state, v, epoch = full_information(method, X, train, vali, seed=seeds[0], epochs=int(o["oracle_epochs"]))
        final = final_metrics(method, jax.tree.map(lambda a: a[None], state), X, test, y_max)[0]
        results["oracle"][method.ranker] = {"final": final, "vali_ndcg@10": v, "epoch": epoch}
        print(f"oracle ({method.ranker} ranker, full information, best of {o['oracle_epochs']} epochs on vali: {epoch}) "
              f"{o['evaluate_on']} nDCG@10 {final['ndcg@10']:.4f}", file=sys.stderr)
    for user_name in o["users"]:
        user, tables = make_user(user_name, y_max, k, o.get("click_model"))
        results["users"][user_name] = {}
        for label, method in runs.items():
            t0 = time.perf_counter()
            states, curves = learn(method, user, tables, k, X, train, test, seeds=seeds,
                                   interactions=int(o["interactions"]), every=int(o["every"]), also_at=tuple(counts), batch=batch)
            seconds = time.perf_counter() - t0
            final = final_metrics(method, states, X, test, y_max)
            row = {
                "method": method.key, "settings": {f: getattr(method, f) for f in method.__dataclass_fields__},
                "final": {m: float(np.mean([f[m] for f in final])) for m in final[0]},
                "final_sd": {m: float(np.std([f[m] for f in final], ddof=1)) if len(final) > 1 else 0.0 for m in final[0]},
                "gap_to_oracle": float(np.mean([f["ndcg@10"] for f in final])) - results["oracle"][method.ranker]["final"]["ndcg@10"],
                "at": at_counts(curves, counts),
                "online_cumulative": {"mean": float(curves.online[-1].mean()), "sd": float(curves.online[-1].std(ddof=1)) if len(seeds) > 1 else 0.0},
                "curves": {"interactions": curves.interactions, "offline": [v.tolist() for v in curves.offline],
                           "online_cumulative": [v.tolist() for v in curves.online],
                           # mean nDCG@10 of the lists shown in the block before each point (none before the first)
                           "online_block_mean": [[None if np.isnan(x) else float(x) for x in v] for v in curves.online_mean]},
                "seconds": seconds, "interactions_per_s": int(o["interactions"]) * len(seeds) / seconds,
            }
            results["users"][user_name][label] = row
            print(f"online {user_name:13s} {label:9s} {o['evaluate_on']} nDCG@10 {row['final']['ndcg@10']:.4f} ± {row['final_sd']['ndcg@10']:.4f}"
                  f"  online (discounted cum.) {row['online_cumulative']['mean']:8.1f}"
                  f"  {row['interactions_per_s']:,.0f} interactions/s ({len(seeds)} seeds, incl. compile)", file=sys.stderr)
        if o.get("offline", {}).get("methods"):
            results.setdefault("offline", {})[user_name] = offline_rows(cfg, user_name, y_max, seeds, run_dir)
    write_json(results, run_dir / "online.json")
    plot_online(results, run_dir / "learning_curves.png")
    print(online_table(results), file=sys.stderr)
    return results
