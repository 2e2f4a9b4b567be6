"""Counterfactual evaluation against the simulated truth: do the click-based estimates order rankers
as their true quality does, and do their intervals cover it?

    python benchmarks/bench_counterfactual.py --run RUN [--replicates 50] [--sessions 20]

RUN is a `pipelines.experiment` run that trained dla, naive, ips_true and oracle, e.g.

    python -m pipelines.experiment 'algorithm.methods=[dla,naive,ips_true,oracle]' hydra.run.dir=RUN

Seven rankers: those four, the logging policy (the logged order), its reverse, and random scores.
Held-out logs are drawn on the test split's queries under the training log's logging policy and
click model (the same seed's policy, a separate random stream). Each replicate log draws the test
queries with replacement (the population the bootstrap over queries assumes) and `--sessions`
sessions on each logged list of a drawn query (a run with `simulation.logging_policies=P` logs P
lists per query, one per policy; the truth and the estimates pool them per query). The true value of a ranker is its metric over all test queries with the
true gains (P(click | examined) of each document's grade, scaled like the propensities) on the same
logged lists. Propensities: the simulator's true examination, PBM-EM fitted on the training log
(`ultr.estimation.propensity.pbm_em`), and each curve the run learned (DLA's; REM's where RUN trained rem).

Reports per propensity source, estimator and metric: Kendall's tau between the estimated and the
true order of the seven rankers (mean and minimum over replicates), the coverage of the 95%
bootstrap intervals (1,000 resamples) of each ranker's true value, and the mean estimate against
the truth."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import record  # noqa: E402
from ultr.api import load  # noqa: E402
from ultr.click_models.simulator import click_model_from_config  # noqa: E402
from ultr.data.batching import read_sessions  # noqa: E402
from ultr.data.letor import read_features  # noqa: E402
from ultr.estimation.propensity import count_impressions, pbm_em  # noqa: E402
from ultr.evaluation import bootstrap  # noqa: E402
from ultr.evaluation.counterfactual import aggregate, estimates, metric_specs, query_values  # noqa: E402
from ultr.simulation.simulate import simulate_sessions, true_propensities  # noqa: E402

METHODS = ("oracle", "ips_true", "dla", "naive")
ESTIMATORS = ["ips", "snips", "dr"]
METRICS = ["dcg@10", "ndcg@10", "clicks"]


def held_out_lists(cfg, features, model):
    """The logging policy's list for each test query (the training log's policy: same seed, same settings)."""
    sim = cfg["simulation"]
    log = simulate_sessions(features, model, sessions=1, list_size=int(sim["list_size"]), seed=int(cfg["seed"]),
                            policy_fraction=float(sim["policy_fraction"]), policy_min_queries=int(sim["policy_min_queries"]),
                            logging_policies=int(sim.get("logging_policies", 1)), session_split="test", stream=3)
    return log.query_ids, log.displayed


def true_gain_per_grade(model, y_max: int) -> np.ndarray:
    """P(click | examined) per grade: the click probability at position 1 over its examination."""
    grades = np.arange(y_max + 1)[:, None]
    mask = np.ones_like(grades, bool)
    return model.click_probability(grades, mask)[:, 0] / model.examination_probability(grades, mask)[:, 0]


def ranker_scores(run: Path, features, displayed: np.ndarray, rng) -> tuple[list[str], np.ndarray]:
    """[R, N] scores of every features row: the trained rankers, the logging policy (its logged
    order), the reversed policy, and random scores."""
    dev = jnp.asarray(features.features)
    rows = np.arange(len(features.labels))
    names, out = [], []
    for m in METHODS:
        names.append(m)
        out.append(load(run, m).score_rows(rows, dev))
    logged = np.full(len(rows), -1e9)
    k = displayed.shape[1]
    shown = displayed >= 0
    logged[displayed[shown]] = -np.broadcast_to(np.arange(k), displayed.shape)[shown]
    names += ["logging", "reversed", "random"]
    out += [logged, -logged, rng.normal(size=len(rows))]
    return names, np.stack(out).astype(np.float64)


def propensity_sources(run: Path, model, features, qids, displayed) -> dict[str, np.ndarray]:
    """Examination per position: the truth (absolute), PBM-EM and every curve the run learned (DLA,
    REM, ...; relative to position 1)."""
    from ultr.simulation.simulate import SimulatedLog

    log = SimulatedLog(qids, displayed, np.arange(len(qids)), np.zeros(displayed.shape, np.int8), [])
    truth = np.asarray(true_propensities(model, log, features)["examination"])
    results = json.loads((run / "results.json").read_text())
    train = read_sessions(Path(results["data_dir"]))
    em = pbm_em(count_impressions(train))
    learned = {m: np.asarray(c, float) for m, c in json.loads((run / "propensity.json").read_text())["estimated"].items()
               if learns(m, results["methods"][m]) and None not in c}
    return {"true": truth, "pbm_em": em / em[0], **{m: c / c[0] for m, c in learned.items()}}


def learns(label: str, entry) -> bool:
    """A curve the run learned (ips_true's is the simulator's, read, not estimated)."""
    from ultr import methods

    return methods.get((entry.get("run") or {}).get("method") or label).learns_propensity


def query_units(qids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The logged lists grouped by query, queries in order of first appearance: (rows sorted by
    query, each query's first position in them, its number of lists). With several logging
    policies a query has one list per policy, and the truth pools them, so a replicate must too."""
    _, first, inv = np.unique(qids, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    unit = rank[inv.ravel()]
    counts = np.bincount(unit, minlength=len(first))
    return np.argsort(unit, kind="stable"), np.cumsum(counts) - counts, counts


def replicate(rng, displayed, units, labels_of, sessions: int):
    """One held-out log: test queries drawn with replacement, `sessions` sessions on each of a
    drawn query's logged lists (one list per logging policy)."""
    order, start, count = units
    draws = rng.integers(0, len(count), size=len(count))
    n = count[draws]
    within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    rows = order[np.repeat(start[draws], n) + within]
    lists = displayed[np.repeat(rows, sessions)]
    mask = lists >= 0
    labels = np.where(mask, labels_of[np.maximum(lists, 0)], 0)
    key = np.repeat(np.arange(len(draws)), n * sessions)
    return key.astype(str).astype(object), lists, mask, labels


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, type=Path)
    ap.add_argument("--replicates", type=int, default=50)
    ap.add_argument("--sessions", type=int, default=50, help="held-out sessions per logged list of a drawn query")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    results = json.loads((args.run / "results.json").read_text())
    cfg = results["config"]
    features = read_features(Path(results["data_dir"]) / "features.parquet")
    model = click_model_from_config(cfg["click_model"], features)
    qids, displayed = held_out_lists(cfg, features, model)
    rng = np.random.default_rng(args.seed)
    names, scores_all = ranker_scores(args.run, features, displayed, rng)
    labels_of = np.clip(features.labels, 0, None)
    gain = true_gain_per_grade(model, int(labels_of.max()))
    units = query_units(qids)
    props = propensity_sources(args.run, model, features, qids, displayed)
    k = displayed.shape[1]
    pos = np.broadcast_to(np.arange(1, k + 1, dtype=np.int16), displayed.shape)
    # The population: every test query once, its logged list, the true gains.
    ev = aggregate([(qids.astype(str).astype(object), displayed, pos, np.zeros(displayed.shape, np.int8), displayed >= 0)],
                   props["true"])
    g = gain[labels_of[ev.doc]]
    absolute = {m.name: _mean(*query_values(ev, scores_all[:, ev.doc], g, m)) for m in metric_specs(METRICS, props["true"])}
    # With a curve relative to position 1 the gains come out times position 1's examination: DCG
    # scales with them; nDCG does not, nor do expected clicks (the relative weights undo it).
    truth = {src: {m: v * (props["true"][0] if src != "true" and m.startswith("dcg") else 1.0) for m, v in absolute.items()}
             for src in props}
    cover = {(s, e, m): np.zeros(len(names)) for s in props for e in ESTIMATORS for m in METRICS}
    taus = {(s, e, m): [] for s in props for e in ESTIMATORS for m in METRICS}
    means = {(s, e, m): np.zeros(len(names)) for s in props for e in ESTIMATORS for m in METRICS}
    click_rng = np.random.default_rng(args.seed + 1)
    for r in range(args.replicates):
        qkey, lists, mask, labels = replicate(click_rng, displayed, units, labels_of, args.sessions)
        clicks = model.sample(labels, mask, click_rng)
        p = np.broadcast_to(np.arange(1, k + 1, dtype=np.int16), lists.shape)
        for src, alpha in props.items():
            ev = aggregate([(qkey, lists, p, clicks, mask)], alpha)
            values = estimates(ev, scores_all[:, ev.doc], metric_specs(METRICS, alpha), ESTIMATORS)
            for (e, m), (v, valid) in values.items():
                iv = bootstrap.interval(v, valid, args.bootstrap, 0.95, seed=r)
                t = truth[src][m]
                cover[(src, e, m)] += (iv.low <= t) & (t <= iv.high)
                means[(src, e, m)] += iv.estimate / args.replicates
                taus[(src, e, m)].append(kendalltau(iv.estimate, t).statistic)
        print(f"replicate {r + 1}/{args.replicates}", file=sys.stderr, end="\r")
    print(file=sys.stderr)
    rows = []
    for (src, e, m), c in cover.items():
        tau = np.asarray(taus[(src, e, m)])
        row = {"propensity": src, "estimator": e, "metric": m, "tau_mean": round(float(tau.mean()), 3),
               "tau_min": round(float(tau.min()), 3), "coverage": [round(float(x) / args.replicates, 3) for x in c],
               "coverage_mean": round(float(c.mean()) / args.replicates, 3),
               "truth": [round(float(x), 4) for x in truth[src][m]], "mean_estimate": [round(float(x), 4) for x in means[(src, e, m)]]}
        rows.append(row)
    record("counterfactual_vs_truth", {"run": str(args.run), "rankers": names, "replicates": args.replicates,
                                       "sessions_per_query": args.sessions, "test_queries": len(units[2]), "logged_lists": len(qids),
                                       "propensities": {k: [round(float(x), 4) for x in v] for k, v in props.items()},
                                       "rows": rows})
    print_table(names, rows, truth)


def _mean(v: np.ndarray, valid: np.ndarray) -> np.ndarray:
    return np.where(valid[None, :], v, 0.0).sum(axis=1) / max(int(valid.sum()), 1)


def print_table(names, rows, truth) -> None:
    print("\n| propensity | estimator | metric | tau mean | tau min | coverage (mean; min over rankers) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['propensity']} | {r['estimator']} | {r['metric']} | {r['tau_mean']:.3f} | {r['tau_min']:.3f} | "
              f"{r['coverage_mean']:.2f}; {min(r['coverage']):.2f} |")
    print("\n| ranker | " + " | ".join(f"true {m}" for m in METRICS) + " | " + " | ".join(f"ips {m} (mean)" for m in METRICS) + " |")
    print("|---|" + "---|" * (2 * len(METRICS)))
    ips = {r["metric"]: r["mean_estimate"] for r in rows if r["propensity"] == "true" and r["estimator"] == "ips"}
    for i, n in enumerate(names):
        print(f"| {n} | " + " | ".join(f"{truth['true'][m][i]:.4f}" for m in METRICS) + " | "
              + " | ".join(f"{ips[m][i]:.4f}" for m in METRICS) + " |")


if __name__ == "__main__":
    main()
