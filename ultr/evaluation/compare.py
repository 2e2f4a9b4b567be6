"""Trained rankers compared on held-out sessions of a click log: counterfactual estimates (IPS,
SNIPS, DR; `ultr.evaluation.counterfactual`) with bootstrap intervals over queries, paired
differences against a baseline ranker, and the report (evaluation.json/md/png). Used by
`pipelines.evaluate` (ultr.evaluation.run) and by `ultr.api.Ranker.evaluate(log=...)`.

The propensities decide what the estimates are worth, so the report names their source: the
simulator's truth (`propensities.json` of `pipelines.simulate`), a fitted click model
(`pipelines.click_models` DIR/<model>), `pipelines.estimate_bias` (one of its estimators), or a
DLA run (`propensity.json` of `pipelines.experiment`, key = the method's label)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import jax.numpy as jnp
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ultr.data.batching import fixed_lists
from ultr.data.io import atomic_path, write_json
from ultr.data.clicklog import scan_click_log
from ultr.data.letor import FeatureTable, read_features, table_rows
from ultr.data.log_features import extend_id_table
from ultr.errors import DataError
from ultr.evaluation import bootstrap
from ultr.evaluation.counterfactual import ESTIMATORS, Evidence, aggregate, estimates, gains, metric_specs
from ultr.evaluation.propensities import Propensities, read_propensities
from ultr.paths import existing
from ultr.workflows import log_features_table, log_to_sessions, mapped_columns, prepare_log

SESSION_BATCH = 1 << 16  # sessions read at once from the session tables


def session_chunks(run_dir: Path) -> Iterator[tuple[np.ndarray, ...]]:
    """(query_id, doc_index, position, click, mask) per batch of the ETL's session shards."""
    for shard in sorted((run_dir / "sessions").glob("*.parquet")):
        for batch in pq.ParquetFile(shard).iter_batches(batch_size=SESSION_BATCH):
            cols = {n: pa.chunked_array([batch.column(n)]) for n in ("query_id", "doc_index", "position", "click", "mask")}
            yield (cols["query_id"].to_numpy(zero_copy_only=False).astype(object), fixed_lists(cols["doc_index"], np.int32),
                   fixed_lists(cols["position"], np.int16), fixed_lists(cols["click"], np.int8), fixed_lists(cols["mask"], bool))


def check_rankers(rankers: Sequence[Any], table: FeatureTable) -> None:
    """Every ranker must score the evaluation table's feature columns, transformed as it was trained."""
    for r in rankers:
        norm = dict(table.meta.get("normalization", {}))
        if r.normalization and norm and r.normalization != norm:
            raise DataError(f"ranker {r.name} ({r.features_path}) was trained on features normalised differently from "
                            f"{table.path}; evaluate it with features.path={r.features_path}")


def compare(rankers: Sequence[Any], labels: list[str], cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Trained rankers (`ultr.api.Ranker`s) scored on the held-out log `cfg["log"]` by the
    configured estimators and metrics (an `evaluate` config; see conf/evaluate.yaml); writes
    run_dir/evaluation.{json,md,png} and returns what evaluation.json holds."""
    run_dir = Path(run_dir)
    if unknown := [e for e in cfg["estimators"] if e not in ESTIMATORS]:
        raise DataError(f"estimators {unknown} unknown; choose from {list(ESTIMATORS)}")
    prop = read_propensities(cfg["propensity"]["source"], cfg["propensity"].get("key"))
    fpath = (cfg.get("features") or {}).get("path") or rankers[0].features_path
    table = read_features(existing(fpath, "features.path"))
    check_rankers(rankers, table)
    log, fpath, trained_rows = evaluation_rows(cfg, table, run_dir)
    etl = {**cfg["etl"], "allow_eval_queries": True}  # held-out sessions are on vali/test queries by design
    stats = log_to_sessions({"log": log, "features": {"path": str(fpath)}, "etl": etl}, run_dir, training=False)
    if Path(fpath) != Path(table.path):  # extended (ID rankers) or built from the log: read once more
        table = read_features(fpath)
    candidates = pl.DataFrame({"query_id": table.query_ids.astype(str), "doc": np.arange(len(table.query_ids))}) \
        if cfg.get("candidates", "shown") == "table" else None
    ev = aggregate(session_chunks(run_dir), prop.alpha, prop.beta, candidates)
    dev = jnp.asarray(table.features)
    scores = unseen_last(np.stack([r.score_rows(np.minimum(ev.doc, trained_rows - 1), dev) for r in rankers]),
                         ev.doc >= trained_rows)
    stats = {**stats, "unseen_candidates": int((ev.doc >= trained_rows).sum())}
    values = estimates(ev, scores, metric_specs(list(cfg["metrics"]), prop.alpha), list(cfg["estimators"]))
    out = report(values, labels, cfg, ev, prop, stats)
    write_outputs(out, run_dir)
    return out


def evaluation_rows(cfg: Mapping[str, Any], table: FeatureTable, run_dir: Path) -> tuple[dict[str, Any], Path, int]:
    """(the log to read, the features table to index it by, how many of its rows the rankers were
    trained on). An ID ranker's table holds only its training log's (query, document) pairs: the
    evaluation log's other pairs are appended after them, and `unseen_last` ranks them."""
    fpath = Path(table.path)
    log_features = cfg["log"].get("features")
    if table.num_features > 0 and not log_features:
        return dict(cfg["log"]), fpath, len(table.query_ids)
    path, _ = prepare_log(cfg["log"], run_dir)
    generic = {**cfg["log"], "format": "generic", "path": str(path), "features": None}
    if table.num_features > 0:  # the log carries its features: normalised as the rankers' training table was
        out = log_features_table({**cfg["log"], "path": str(path)}, path, run_dir, fitted=table.meta.get("normalization"))
        return generic, out, table_rows(out)
    before, added = extend_id_table(fpath, scan_click_log(path, mapped_columns(cfg["log"])), run_dir / "features.parquet")
    print(f"ID rankers: {added} (query, document) pairs of this log were never in their training log; "
          "every ranker puts them after the pairs it scored", file=sys.stderr)
    return generic, run_dir / "features.parquet", before


def unseen_last(scores: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """Scores [R, M] with the candidates an ID ranker never saw below all it scored (ties among
    them break by candidate order, the same for every ranker)."""
    if not unseen.any():
        return scores
    floor = scores[:, ~unseen].min(axis=1, keepdims=True) - 1.0 if (~unseen).any() else np.zeros((len(scores), 1))
    return np.where(unseen[None, :], floor, scores)


def report(values: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]], labels: list[str], cfg: Mapping[str, Any],
           ev: Evidence, prop: Propensities, stats: Mapping[str, Any]) -> dict[str, Any]:
    b = cfg["bootstrap"]
    reps, level, seed = int(b["replicates"]), float(b["level"]), int(b["seed"])
    base = labels.index(cfg["baseline"]) if cfg.get("baseline") in labels else 0
    est: dict[str, Any] = {}
    paired: dict[str, Any] = {}
    queries: dict[str, int] = {}
    # One set of resamples for every estimate: drawn once, and comparable across estimators.
    ivs = bootstrap.intervals(list(values.values()), reps, level, seed)
    for ((e, m), (v, valid)), iv in zip(values.items(), ivs):
        est.setdefault(e, {})[m] = {lab: {"estimate": float(iv.estimate[i]), "low": float(iv.low[i]), "high": float(iv.high[i])}
                                    for i, lab in enumerate(labels)}
        paired.setdefault(e, {})[m] = {f"{lab} - {labels[base]}": bootstrap.paired(iv, base, i, level)
                                       for i, lab in enumerate(labels) if i != base}
        queries[m] = int(valid.sum())
    return {
        "rankers": labels, "baseline": labels[base], "propensity": {"source": prop.source, "alpha": prop.alpha.tolist(),
                                                                     **({"beta": prop.beta.tolist()} if prop.beta is not None else {})},
        "log": {"sessions": int(ev.sessions.sum()), "queries": ev.num_queries, "candidates": len(ev),
                "never_shown_candidates": int((ev.shown == 0).sum()), "clicks": int(ev.clicks.sum()),
                "candidates_unseen_in_training": stats.get("unseen_candidates", 0),
                "queries_per_metric": queries, "etl": {k: stats.get(k) for k in ("sessions", "dropped_sessions", "impressions")}},
        "bootstrap": {"replicates": reps, "level": level, "unit": "query", "seed": seed},
        "estimates": est, "paired": paired, "notes": coincidences(ev, list(cfg["estimators"])) + unseen_note(stats, len(ev)),
    }


def coincidences(ev: Evidence, estimators: list[str]) -> list[str]:
    """Where estimators are equal by construction on this log, say so next to the numbers."""
    notes, have = [], set(estimators)
    ips, snips, dr = ESTIMATORS
    if have.issuperset((ips, snips)) and np.allclose(gains(ev, ips), gains(ev, snips)):
        notes.append("ips = snips on this log: each document was shown at one position only (one ranking per query)")
    if have.issuperset((dr, snips)) and (ev.shown > 0).all():
        notes.append("dr = snips on this log: every candidate was shown, where DR's correction cancels its direct model "
                     "(candidates=table adds the candidates never shown)")
    return notes


def unseen_note(stats: Mapping[str, Any], candidates: int) -> list[str]:
    n = int(stats.get("unseen_candidates", 0))
    return [f"{n} of {candidates} candidates were never in the ID rankers' training log: each ranker puts them after "
            "the ones it scored"] if n else []


def table_lines(out: Mapping[str, Any]) -> list[str]:
    est, lines = out["estimates"], []
    for e, per_metric in est.items():
        metrics = list(per_metric)
        lines += [f"\n{e} ({int(out['bootstrap']['level'] * 100)}% interval over queries)\n",
                  "| ranker | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for lab in out["rankers"]:
            cells = [f"{per_metric[m][lab]['estimate']:.4f} [{per_metric[m][lab]['low']:.4f}, {per_metric[m][lab]['high']:.4f}]"
                     for m in metrics]
            lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    return lines


def paired_lines(out: Mapping[str, Any]) -> list[str]:
    lines = [f"\npaired differences against {out['baseline']} (same bootstrap resamples)\n",
             "| estimator | metric | difference | interval | P(not better) |", "|---|---|---|---|---|"]
    for e, per_metric in out["paired"].items():
        for m, pairs in per_metric.items():
            for name, d in pairs.items():
                lines.append(f"| {e} | {m}: {name} | {d['difference']:+.4f} | [{d['low']:+.4f}, {d['high']:+.4f}] | "
                             f"{d['p_not_better']:.3f} |")
    return lines


def write_outputs(out: Mapping[str, Any], run_dir: Path) -> None:
    write_json(out, run_dir / "evaluation.json")
    log = out["log"]
    head = [f"# Counterfactual evaluation\n",
            f"propensities: {out['propensity']['source']}",
            f"held-out log: {log['sessions']} sessions, {log['queries']} queries, {log['clicks']} clicks; "
            f"queries with a defined value per metric: {log['queries_per_metric']}", *[f"note: {n}" for n in out["notes"]]]
    text = "\n".join(head + table_lines(out) + (paired_lines(out) if len(out["rankers"]) > 1 else [])) + "\n"
    with atomic_path(run_dir / "evaluation.md") as tmp:
        tmp.write_text(text)
    plot_estimates(out, run_dir / "evaluation.png")
    print(text + f"\nrun directory: {run_dir}", file=sys.stdout)


def plot_estimates(out: Mapping[str, Any], path: Path) -> None:
    from ultr.report import plt, save_figure

    est = out["estimates"]
    metrics = list(next(iter(est.values())))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    x = np.arange(len(out["rankers"]))
    width = 0.8 / max(len(est), 1)
    for ax, m in zip(axes[0], metrics):
        for j, (e, per_metric) in enumerate(est.items()):
            v = per_metric[m]
            mid = np.array([v[r]["estimate"] for r in out["rankers"]])
            err = np.array([[mid[i] - v[r]["low"], v[r]["high"] - mid[i]] for i, r in enumerate(out["rankers"])]).T
            ax.errorbar(x + (j - (len(est) - 1) / 2) * width, mid, yerr=err, fmt="o", capsize=3, label=e)
        ax.set_xticks(x, out["rankers"], rotation=30, ha="right")
        ax.set_title(m)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{int(out['bootstrap']['level'] * 100)}% bootstrap intervals over queries", fontsize=9)
    save_figure(fig, path)
    plt.close(fig)
