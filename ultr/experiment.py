"""The one-command ULTR experiment: (simulate | given log) -> ETL -> train each method -> evaluate.

`run_experiment(cfg, run_dir)` is what `python -m pipelines.experiment` calls; `train_method` is the
shared core the Python API uses too.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ultr.data.batching import (
    BatchIterator, QueryLists, Sessions, exposure_arrays, list_arrays, query_lists, read_sessions, session_arrays,
)
from ultr.data.etl import print_stats, run_etl
from ultr.data.io import write_json, write_parquet
from ultr.cache import cached_dir
from ultr.data.letor import FeatureTable, read_features
from ultr.errors import DataError
from ultr.metrics import evaluate_scores, propensity_error, propensity_warning
from ultr.models.propensity import ContextPropensity, PositionPropensity
from ultr.models.ranker import IdRanker, MLPRanker
from ultr.paths import existing
from ultr.report import plot_learning_curves, plot_propensity, propensity_table, results_table
from ultr.train.checkpoint import save_state
from ultr.timing import Stages
from ultr.train.distributed import initialize as initialize_distributed
from ultr.train.loop import FitResult, fit, read_propensity, score_lists, tail_average_curve
from ultr.train.state import make_optimizer
from ultr.train.steps import CLICK_METHODS, KNOWN_PROPENSITY, METHODS, Steps, make_steps, trains_on_lists
from ultr.workflows import etl_config, ingest, letor_splits, simulate_on


@dataclass
class TrainedMethod:
    name: str
    steps: Steps
    fit: FitResult
    propensity: np.ndarray | None  # relative examination per position, for methods that learn or read one
    batch_size: int  # rows per step: sessions, or candidate lists for list methods


def build_steps(method: str, cfg: Mapping[str, Any], num_features: int, list_size: int, num_items: int = 0,
                known: Mapping[str, np.ndarray] | None = None) -> Steps:
    """`num_features=0` builds the ID ranker over `num_items` (query, document) pairs."""
    m = cfg["model"]
    if num_features == 0 or m.get("name") == "id":
        ranker = IdRanker(num_items=num_items, buckets=int(m.get("buckets", 1 << 20)))
        num_features = 0
    else:
        ranker = MLPRanker(
            hidden=tuple(m["hidden"]), activation=m.get("activation", "elu"), norm=m.get("norm", "none"),
            dropout=float(m.get("dropout", 0.0)), dtype=jnp.bfloat16 if m.get("dtype") == "bfloat16" else jnp.float32,
        )
    p = cfg.get("propensity", {"name": "position"})
    context = p.get("name") == "context"
    propensity = ContextPropensity(list_size, tuple(p.get("hidden", (32,)))) if context else PositionPropensity(list_size)
    second_optim = cfg.get("propensity_optim") or cfg["optim"]
    if method == "dr":
        # The doubly-robust direct method: a relevance regression with the ranker's architecture
        # (or algorithm.dr.dm_hidden) and optimiser, in the second tower's slot.
        dm_hidden = (cfg["algorithm"].get("dr") or {}).get("dm_hidden") or m["hidden"]
        propensity = MLPRanker(hidden=tuple(dm_hidden), activation=m.get("activation", "elu"))
        second_optim, context = cfg["optim"], False
    return make_steps(
        method, ranker, propensity, make_optimizer(cfg["optim"]), make_optimizer(second_optim),
        cfg["algorithm"].get(method) or {}, num_features=num_features, list_size=list_size, propensity_context=context,
        known=known,
    )


# Methods whose estimators or click models explain the non-clicks too: for them a session without
# clicks is evidence (affine correction and DR are unbiased only over all logged sessions; REM and
# the two-tower model fit P(click) on every impression).
UNCLICKED_EVIDENCE = ("affine", "dr", "rem", "two_tower")


def train_method(
    method: str,
    cfg: Mapping[str, Any],
    features: FeatureTable,
    features_dev: jax.Array,
    sessions: Sessions | None,
    train_lists: QueryLists | None,
    vali: QueryLists,
    *,
    writer: Any = None,
    known: Mapping[str, np.ndarray] | None = None,
    checkpoint_dir: Path | None = None,
    tag: str | None = None,
) -> TrainedMethod:
    """`tag` names the run in progress bars and TensorBoard (default: the method)."""
    tr = cfg["trainer"]
    list_size = int(cfg["etl"]["list_size"])
    seed = int(cfg["seed"])
    if sessions is not None and method not in UNCLICKED_EVIDENCE:
        # A session without clicks adds nothing to these losses (all targets 0): skip its batch slots.
        sessions = sessions.with_clicks()
    on_lists = trains_on_lists(method, cfg["algorithm"].get(method))
    if method in CLICK_METHODS and not on_lists:
        if sessions is None or len(sessions) == 0:
            raise DataError(f"{method}: no training sessions with clicks; simulate more sessions or check the click log")
        arrays, global_batch = session_arrays(sessions), int(tr["batch_size"])
    elif on_lists:
        if sessions is None or len(sessions) == 0 or train_lists is None:
            raise DataError(f"{method}: needs training sessions with clicks and the training split's candidate lists")
        arrays = exposure_arrays(train_lists, sessions, known["alpha"], known.get("beta"))
        global_batch = int(tr.get("oracle_batch_size", 32))
    else:
        if train_lists is None:
            raise DataError(f"{method}: needs labelled training lists (a LETOR features table with a train split)")
        arrays, global_batch = list_arrays(train_lists), int(tr.get("oracle_batch_size", 32))
    # Several processes: each reads its own slice of sessions and feeds its share of the batch.
    pc, pid = jax.process_count(), jax.process_index()
    if pc > 1:
        arrays = {k: v[pid::pc] for k, v in arrays.items()}
    batches = BatchIterator(arrays, global_batch // pc, seed + pid)
    steps = build_steps(method, cfg, features.num_features, list_size, known=known)
    result = fit(
        steps, batches, features_dev, vali,
        max_label=float(features.labels.max()), train_steps=int(tr["steps"]), eval_every=int(tr["eval_every"]),
        patience=tr.get("patience"), propensity_tol=tr.get("propensity_tol"),
        device_data_mb=tr.get("device_data_mb", 1024), seed=seed, list_size=list_size, log_every=int(tr.get("log_every", 50)),
        writer=writer, progress=bool(tr.get("progress", True)), name=tag or method, global_batch=global_batch,
        checkpoint_dir=checkpoint_dir, checkpoint_every=int(tr.get("checkpoint_every", 0) or 0), resume=bool(tr.get("resume", False)),
    )
    average = int(tr.get("propensity_average") or 1)
    prop = tail_average_curve(result.history, average) if steps.learns_propensity and average > 1 else None
    if prop is None and (steps.learns_propensity or method in KNOWN_PROPENSITY):
        prop = read_propensity(steps, result.final_state.propensity, list_size, result.contexts)
    return TrainedMethod(method, steps, result, prop, global_batch)


def with_overrides(cfg: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of `cfg` with `key.path=value` overrides applied (values parsed as on the command
    line). Only existing keys can be set (struct mode), so a typo fails instead of training the
    default."""
    if bad := [o for o in overrides if "=" not in str(o)]:
        raise DataError(f"selection candidate override {bad[0]!r} is not key=value")
    base = OmegaConf.create(dict(cfg))
    OmegaConf.set_struct(base, True)
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist([str(o) for o in overrides]))
    except OmegaConfBaseException as e:
        raise DataError(f"selection candidate override in {list(overrides)}: {str(e).splitlines()[0]}") from e
    return OmegaConf.to_container(merged)  # type: ignore[return-value]


def train_selected(method: str, cfg: Mapping[str, Any], *args: Any, checkpoint_dir: Path, **kw: Any) -> tuple[TrainedMethod, dict[str, Any] | None]:
    """Train `method` once, or, where `selection.methods` lists it, once per `selection.candidates`
    entry (a list of overrides), keeping the candidate with the best validation nDCG@10: model
    selection on the validation split, as for the training step. Returns the kept run and a record
    of every candidate (None without selection)."""
    sel = cfg.get("selection") or {}
    candidates = [list(c or []) for c in sel.get("candidates") or []]
    if method not in (sel.get("methods") or []) or not candidates:
        return train_method(method, cfg, *args, checkpoint_dir=checkpoint_dir, **kw), None
    runs = []
    for i, overrides in enumerate(candidates):
        trained = train_method(method, with_overrides(cfg, overrides), *args,
                               checkpoint_dir=checkpoint_dir.with_name(f"{checkpoint_dir.name}-{i}"), tag=f"{method}[{i}]", **kw)
        runs.append((trained, overrides))
    best = max(range(len(runs)), key=lambda i: runs[i][0].fit.best_vali)  # first of equals
    record = {"chosen": best, "by": "vali ndcg@10", "candidates": [
        {"overrides": o, "vali_ndcg@10": t.fit.best_vali, "best_step": t.fit.best_step,
         **({"propensity": [float(v) for v in t.propensity]} if t.propensity is not None else {})}
        for t, o in runs]}
    return runs[best][0], record


def train_with_fallback(method: str, cfg: Mapping[str, Any], *args: Any, checkpoint_dir: Path, **kw: Any
                        ) -> tuple[TrainedMethod, dict[str, Any] | None, dict[str, Any] | None]:
    """`train_selected`; then, for a method `fallback.methods` lists, once more with
    `fallback.overrides` (the severe-bias settings) when the first run's curve says the bias is
    severe: it diverged (`propensity_warning`), or its deepest position is examined less than
    `fallback.severe_below` as often as position 1. A diverged first run gives way to the
    retrained one (unless that diverges too); otherwise the better of the two on validation
    nDCG@10 is kept. Returns (kept run, selection record, fallback record or None)."""
    trained, selection = train_selected(method, cfg, *args, checkpoint_dir=checkpoint_dir, **kw)
    fb = cfg.get("fallback") or {}
    if method not in (fb.get("methods") or []) or trained.propensity is None or not trained.steps.learns_propensity:
        return trained, selection, None
    warning = propensity_warning(trained.propensity)
    deepest = float(trained.propensity[-1] / trained.propensity[0])
    severe = deepest < float(fb.get("severe_below") or 0.0)
    if warning is None and not severe:
        return trained, selection, None
    trigger = warning or f"severe bias: the learned examination at position {len(trained.propensity)} is {deepest:.3g} of position 1"
    overrides = [str(o) for o in fb.get("overrides") or []]
    print(f"{method}: {'the learned curve diverged' if warning else 'severe bias'}; training again with the severe-bias "
          f"settings {overrides}", file=sys.stderr)
    again = train_method(method, with_overrides(cfg, overrides), *args, tag=f"{method}[fallback]",
                         checkpoint_dir=checkpoint_dir.with_name(f"{checkpoint_dir.name}-fallback"), **kw)
    again_diverged = propensity_warning(again.propensity) is not None
    better = again.fit.best_vali > trained.fit.best_vali
    keep_again = (not again_diverged or better) if warning else (better and not again_diverged)
    record = {"trigger": trigger, "overrides": overrides, "kept": "fallback" if keep_again else "first",
              "runs": {name: {"vali_ndcg@10": t.fit.best_vali, "best_step": t.fit.best_step,
                              "propensity": [float(v) for v in t.propensity]}
                       for name, t in (("first", trained), ("fallback", again))}}
    return (again if keep_again else trained), selection, record


def known_inputs(method: str, cfg: Mapping[str, Any], features: FeatureTable, sessions: Sessions,
                 true_curve: list[float] | None, sidecar: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """What a method reads instead of learning: propensities for IPS, trust-bias (alpha, beta) for affine."""
    if method == "ips_true":
        if true_curve is None:
            raise DataError("ips_true needs the true propensities: simulate the log, or put propensities.json beside clicks=")
        return {"propensity": np.asarray(true_curve)}
    if method == "ips_harvested":
        from ultr.estimation.propensity import all_pairs, count_impressions, pairwise_ratios

        curve = all_pairs(*pairwise_ratios(count_impressions(sessions)))
        if not np.isfinite(curve).all():
            raise DataError(
                "ips_harvested: some positions have no intervention evidence (no document shown at two positions); "
                "a single deterministic logging policy never swaps documents: simulate with simulation.logging_policies=3"
            )
        return {"propensity": curve}
    if method == "ips_randomized":
        from ultr.simulation.simulate import randomized_propensity
        from ultr.workflows import click_model_from_config

        if cfg.get("clicks"):
            raise DataError("ips_randomized simulates a result-randomisation experiment: it needs the simulated setting, not clicks=")
        m = cfg["algorithm"].get("ips_randomized") or {}
        return {"propensity": randomized_propensity(
            features, click_model_from_config(cfg["click_model"], features), sessions=int(m.get("sessions", 200_000)),
            list_size=int(cfg["etl"]["list_size"]), seed=int(cfg["seed"]) + 1,
            policy_fraction=float(cfg["simulation"]["policy_fraction"]), policy_min_queries=int(cfg["simulation"]["policy_min_queries"]))}
    if method == "dr":
        # The click model's P(c | k, d) = alpha_k R_d + beta_k: trust bias's own (alpha, beta),
        # else the true examination curve (PBM: alpha = theta, beta = 0).
        if "affine" in sidecar:
            return {"alpha": np.asarray(sidecar["affine"]["alpha"]), "beta": np.asarray(sidecar["affine"]["beta"])}
        if true_curve is None:
            raise DataError("dr needs the click model's examination probabilities: simulate the log, or put propensities.json beside clicks=")
        return {"alpha": np.asarray(true_curve), "beta": np.zeros(len(true_curve))}
    if method == "affine":
        if "affine" not in sidecar:
            raise DataError("affine needs trust-bias parameters: simulate with click_model=trust (propensities.json 'affine')")
        return {"alpha": np.asarray(sidecar["affine"]["alpha"]), "beta": np.asarray(sidecar["affine"]["beta"])}
    return None


def _methods(cfg: Mapping[str, Any]) -> list[str]:
    methods = list(cfg["algorithm"]["methods"])
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise DataError(f"algorithm.methods has unknown {unknown}; available: {list(METHODS)}")
    return methods


def check_resumable(run_dir: Path, trainer: Mapping[str, Any]) -> None:
    """`trainer.resume=true` must find something to resume: a silent fresh start would look like one."""
    if not int(trainer.get("checkpoint_every", 0) or 0):
        raise DataError("trainer.resume=true needs trainer.checkpoint_every > 0 (training checkpoints are off)")
    ckpts = run_dir / "checkpoints"
    started = ckpts.is_dir() and any(p.name.endswith("-train") or "-train-" in p.name for p in ckpts.iterdir())
    finished = any((run_dir / "methods").glob("*.json"))
    if not (started or finished):
        raise DataError(
            f"{run_dir}: trainer.resume=true, but this run directory holds no training checkpoint (checkpoints/<method>-train) "
            "and no finished method; set hydra.run.dir to the interrupted run's directory, or drop trainer.resume")


def run_experiment(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Writes results.json, results.md, per_query.parquet, propensity.{json,png}, learning_curves.png,
    checkpoints/<method>, tensorboard/ and stats.json under run_dir; prints the results table."""
    run_dir = Path(run_dir)
    if cfg["trainer"].get("resume"):
        check_resumable(run_dir, cfg["trainer"])
    initialize_distributed(cfg.get("distributed"))
    t_start = time.perf_counter()
    timing: dict[str, float] = {}
    methods = _methods(cfg)

    # --- data: features, click log (simulated unless given), session tables
    t = time.perf_counter()
    true_curve = None
    data_dir = run_dir
    cached = False
    stages = Stages()
    progress = bool(cfg["trainer"].get("progress", True))
    if cfg.get("clicks"):
        with stages("ingest"):
            features = ingest(cfg["data"], run_dir, seed=int(cfg["seed"]), cache=cfg.get("cache"), progress=progress)
        clicks_path = existing(cfg["clicks"], "clicks")
        sidecar_path = clicks_path.parent / "propensities.json"
        sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.exists() else {}
        with stages("etl"):
            stats = run_etl(clicks_path, run_dir / "features.parquet", run_dir, etl_config(cfg["etl"]), progress=progress)
    else:
        def build(out: Path) -> None:
            with stages("ingest"):
                table = ingest(cfg["data"], out, seed=int(cfg["seed"]), cache=cfg.get("cache"), progress=progress)
            with stages("simulate"):
                simulate_on(table, cfg, out, progress=progress)
            del table
            with stages("etl"):
                run_etl(out / "clicks.parquet", out / "features.parquet", out, etl_config(cfg["etl"]), progress=progress)

        if cfg.get("cache", {}).get("enabled", True):
            data_dir, cached = cached_dir(cfg, build, letor_splits(cfg["data"]).values())
        else:
            build(run_dir)
        with stages("read_features", cached=cached):
            features = read_features(data_dir / "features.parquet")
        sidecar = json.loads((data_dir / "propensities.json").read_text())
        stats = json.loads((data_dir / "stats.json").read_text())
    true_curve = sidecar.get("relative")
    if data_dir != run_dir:
        write_json(stats, run_dir / "stats.json")  # the run dir stays self-describing
    print_stats(stats, file=sys.stderr)
    sessions = read_sessions(data_dir)
    timing["data_seconds"] = time.perf_counter() - t

    vali = query_lists(features, "vali")
    test = query_lists(features, "test")
    on_lists = any(m == "oracle" or trains_on_lists(m, cfg["algorithm"].get(m)) for m in methods)
    train_lists = query_lists(features, "train") if on_lists else None
    features_dev = jnp.asarray(features.features)
    max_label = float(features.labels.max())
    list_size = int(cfg["etl"]["list_size"])
    if true_curve is not None and len(true_curve) != list_size:
        true_curve = None  # a sidecar for another list size says nothing about this run

    writer = None
    if cfg["trainer"].get("tensorboard", True):
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"))

    results: dict[str, Any] = {}
    histories = {}
    per_query = []
    resumed: dict[str, int] = {}
    for method in methods:
        t = time.perf_counter()
        done = run_dir / "methods" / f"{method}.json"
        if cfg["trainer"].get("resume") and done.exists():
            # Finished before the interruption: reuse its results instead of training again.
            saved = json.loads(done.read_text())
            results[method], histories[method] = saved["entry"], saved["history"]
            per_query.append(pq.read_table(run_dir / "methods" / f"{method}.per_query.parquet"))
            continue
        known = known_inputs(method, cfg, features, sessions, true_curve, sidecar)
        with stages(f"train:{method}"):
            trained, selection, fallback = train_with_fallback(
                method, cfg, features, features_dev, sessions, train_lists, vali, writer=writer, known=known,
                checkpoint_dir=run_dir / "checkpoints" / f"{method}-train")
        f = trained.fit
        if f.resumed_from_step is not None:
            resumed[method] = f.resumed_from_step
        with stages(f"evaluate:{method}", documents=int(test.mask.sum())):
            scores = score_lists(trained.steps, f.best_state.ranker, test, features_dev,
                                 progress=f"test {method}" if progress else None)
            test_means, test_per, valid = evaluate_scores(scores, test.label, test.mask, max_label)
        entry: dict[str, Any] = {
            "test": {k: test_means[k] for k in ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10", "mrr", "map")},
            "vali": {"ndcg@10": f.best_vali},
            "best_step": f.best_step,
            "steps_run": f.steps_run,
            "train_seconds": round(f.seconds, 2),
            "examples_per_second": round(f.steps_run * trained.batch_size / f.seconds, 1),
            "compiled_train_steps": f.compiles,
            "test_queries_evaluated": int(valid.sum()),
            "test_queries_without_relevant": int((~valid).sum()),
        }
        if trained.propensity is not None:
            est = [float(v) for v in trained.propensity]
            entry["propensity"] = {"estimated": est}
            warning = propensity_warning(est) if trained.steps.learns_propensity else None
            if warning:
                entry["propensity"]["warning"] = warning
            if true_curve is not None:
                entry["propensity"]["true"] = [float(v) for v in true_curve]
                entry["propensity"]["mean_relative_error"] = propensity_error(est, true_curve)
        if selection is not None:
            for c in selection["candidates"]:
                if true_curve is not None and "propensity" in c:
                    c["propensity_error"] = propensity_error(c["propensity"], true_curve)
            entry["selection"] = selection
        if fallback is not None:
            for run in fallback["runs"].values():
                if true_curve is not None:
                    run["propensity_error"] = propensity_error(run["propensity"], true_curve)
            entry["fallback"] = fallback
        if cfg["trainer"].get("checkpoint", True):
            entry["checkpoint"] = str(save_state(f.best_state, run_dir / "checkpoints" / method))
        results[method] = entry
        histories[method] = f.history
        table = pa.table({
            "method": [method] * len(test.query_id),
            "split": ["test"] * len(test.query_id),
            "query_id": test.query_id.tolist(),
            "has_relevant": valid,
            **{k: v.astype(np.float64) for k, v in test_per.items()},
        })
        per_query.append(table)
        write_parquet(table, run_dir / "methods" / f"{method}.per_query.parquet")
        write_json({"entry": entry, "history": f.history}, done)
        timing[f"{method}_seconds"] = time.perf_counter() - t
    if writer is not None:
        writer.close()

    write_parquet(pa.concat_tables(per_query), run_dir / "per_query.parquet")
    curves = {m: r["propensity"]["estimated"] for m, r in results.items() if "propensity" in r}
    if curves:
        write_json({"positions": list(range(1, list_size + 1)), "true": true_curve, "estimated": curves}, run_dir / "propensity.json")
        plot_propensity(curves, true_curve, run_dir / "propensity.png")
    plot_learning_curves(histories, run_dir / "learning_curves.png")
    timing["total_seconds"] = time.perf_counter() - t_start
    out = {
        "methods": results,
        "config": dict(cfg),
        "timing": {**{k: round(v, 2) for k, v in timing.items()}, "stages": stages.record},
        "data": {"sessions": stats["sessions"], "impressions": stats["impressions"], "clicks": stats["clicks"],
                 "zero_click_sessions": stats["zero_click_sessions"], "dropped_sessions": stats["dropped_sessions"],
                 "position_spread": stats.get("position_spread")},
        "devices": [str(d) for d in jax.devices()],
        "data_dir": str(data_dir),
        **({"resumed_from_step": next(iter(resumed.values())), "resumed_methods": resumed} if resumed else {}),
        "data_cached": cached,
    }
    write_json(out, run_dir / "results.json")
    table = results_table(results)
    ptable = propensity_table(results, true_curve)
    (run_dir / "results.md").write_text(f"# Results\n\n{table}\n\n## Propensity (relative to position 1)\n\n{ptable}\n")
    excluded = next(iter(results.values()))["test_queries_without_relevant"]
    print(f"\n{table}\n(test: {excluded} queries without a relevant document excluded)", file=sys.stdout)
    if ptable:
        print(f"\nPropensity, relative to position 1:\n{ptable}", file=sys.stdout)
    for method, r in results.items():
        if "selection" in r:
            sel = r["selection"]
            scores_text = ", ".join(f"[{i}] {c['vali_ndcg@10']:.4f}" for i, c in enumerate(sel["candidates"]))
            print(f"{method}: kept candidate [{sel['chosen']}] {sel['candidates'][sel['chosen']]['overrides']} "
                  f"by validation nDCG@10 ({scores_text})", file=sys.stdout)
        if "fallback" in r:
            fb = r["fallback"]
            print(f"note: {method}: the first run's curve diverged; trained again with {fb['overrides']} and kept the "
                  f"{'retrained' if fb['kept'] == 'fallback' else 'first'} run (results.json: {method}.fallback)", file=sys.stdout)
        if "warning" in r.get("propensity", {}):
            print(f"warning: {method}: {r['propensity']['warning']}", file=sys.stdout)
    print(f"\nrun directory: {run_dir}", file=sys.stdout)
    return out
