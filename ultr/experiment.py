"""The one-command ULTR experiment, step by step as the protocol reads: data (a simulated or
given click log through the ETL), then each method (train, select, evaluate on the test split's
expert labels), then the report. `python -m pipelines.experiment` calls `run_experiment`."""

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
from tensorboardX import SummaryWriter

from ultr import methods
from ultr.cache import cached_dir
from ultr.data.batching import QueryLists, Sessions, query_lists, read_sessions
from ultr.data.etl import print_stats, run_etl
from ultr.data.io import write_json, write_parquet
from ultr.data.letor import FeatureTable, read_features
from ultr.errors import DataError
from ultr.heldout_clicks import HeldOutClicks, heldout_lines, method_scores, simulate_heldout, true_model_scores
from ultr.metrics import evaluate_scores, propensity_error, propensity_warning
from ultr.paths import existing
from ultr.report import plot_learning_curves, plot_propensity, propensity_table, results_table
from ultr.timing import Stages
from ultr.train.checkpoint import save_state
from ultr.train.distributed import initialize as initialize_distributed
from ultr.train.loop import score_lists
from ultr.training import TrainedMethod, needs_train_lists, train_with_fallback
from ultr.workflows import etl_config, ingest, letor_splits, simulate_on

TEST_METRICS = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10", "mrr", "map")


@dataclass
class ExperimentData:
    features: FeatureTable
    features_dev: jax.Array  # the feature matrix on the device
    sessions: Sessions
    sidecar: Mapping[str, Any]  # propensities.json of the log: the simulator's truth, if any
    true_curve: list[float] | None
    stats: Mapping[str, Any]  # the ETL's
    data_dir: Path  # where the session tables are (the cache, or the run directory)
    cached: bool
    vali: QueryLists
    test: QueryLists
    train_lists: QueryLists | None  # only where a method trains on candidate lists
    heldout: HeldOutClicks | None  # test-query sessions for the click likelihood (`evaluation.click_sessions`)


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


def _given_log(cfg: Mapping[str, Any], run_dir: Path, stages: Stages, progress: bool
               ) -> tuple[Path, bool, FeatureTable | None]:
    """`clicks=PATH`: ingest the features and run the ETL on that log in the run directory."""
    with stages("ingest"):
        features = ingest(cfg["data"], run_dir, seed=int(cfg["seed"]), cache=cfg.get("cache"), progress=progress)
    clicks_path = existing(cfg["clicks"], "clicks")
    sidecar = clicks_path.parent / "propensities.json"
    write_json(json.loads(sidecar.read_text()) if sidecar.exists() else {}, run_dir / "propensities.json")
    with stages("etl"):
        run_etl(clicks_path, run_dir / "features.parquet", run_dir, etl_config(cfg["etl"]), progress=progress)
    return run_dir, False, features


def _simulated_log(cfg: Mapping[str, Any], run_dir: Path, stages: Stages, progress: bool
                   ) -> tuple[Path, bool, FeatureTable | None]:
    """Ingest, simulate and ETL once per data setting (the cache), or into the run directory. The
    features are read back afterwards (None): the build may have run in another process."""
    def build(out: Path) -> None:
        with stages("ingest"):
            table = ingest(cfg["data"], out, seed=int(cfg["seed"]), cache=cfg.get("cache"), progress=progress)
        with stages("simulate"):
            simulate_on(table, cfg, out, progress=progress)
        del table
        with stages("etl"):
            run_etl(out / "clicks.parquet", out / "features.parquet", out, etl_config(cfg["etl"]), progress=progress)

    if cfg.get("cache", {}).get("enabled", True):
        return (*cached_dir(cfg, build, letor_splits(cfg["data"]).values()), None)
    build(run_dir)
    return run_dir, False, None


def load_data(cfg: Mapping[str, Any], run_dir: Path, stages: Stages, names: list[str]) -> ExperimentData:
    progress = bool(cfg["trainer"].get("progress", True))
    data_dir, cached, features = (_given_log if cfg.get("clicks") else _simulated_log)(cfg, run_dir, stages, progress)
    if features is None:
        with stages("read_features", cached=cached):
            features = read_features(data_dir / "features.parquet")
    sidecar = json.loads((data_dir / "propensities.json").read_text())
    stats = json.loads((data_dir / "stats.json").read_text())
    if data_dir != run_dir:
        write_json(stats, run_dir / "stats.json")  # the run dir stays self-describing
    print_stats(stats, file=sys.stderr)
    true_curve = sidecar.get("relative")
    if true_curve is not None and len(true_curve) != int(cfg["etl"]["list_size"]):
        true_curve = None  # a sidecar for another list size says nothing about this run
    return ExperimentData(
        features, jnp.asarray(features.features), read_sessions(data_dir), sidecar, true_curve, stats, data_dir, cached,
        query_lists(features, "vali"), query_lists(features, "test"),
        query_lists(features, "train") if needs_train_lists(names, cfg) else None,
        heldout_for(cfg, features, names, stages))


def heldout_for(cfg: Mapping[str, Any], features: FeatureTable, names: list[str], stages: Stages) -> HeldOutClicks | None:
    """Held-out sessions only where a method can be scored on them."""
    if not any(methods.get(n).predicts_clicks for n in names):
        return None
    with stages("simulate_heldout"):
        return simulate_heldout(cfg, features)


def curve_entry(trained: TrainedMethod, true_curve: list[float] | None) -> dict[str, Any] | None:
    if trained.propensity is None:
        return None
    est = [float(v) for v in trained.propensity]
    entry: dict[str, Any] = {"estimated": est}
    warning = propensity_warning(est) if trained.steps.learns_propensity else None
    if warning:
        entry["warning"] = warning
    if true_curve is not None:
        entry["true"] = [float(v) for v in true_curve]
        entry["mean_relative_error"] = propensity_error(est, true_curve)
    return entry


def with_curve_errors(runs: list[dict[str, Any]], true_curve: list[float] | None) -> None:
    """Each selection candidate's or fallback run's curve error against the truth, in place."""
    for run in runs:
        if true_curve is not None and "propensity" in run:
            run["propensity_error"] = propensity_error(run["propensity"], true_curve)


def method_entry(trained: TrainedMethod, test_means: Mapping[str, float], valid: np.ndarray, data: ExperimentData,
                 selection: dict[str, Any] | None, fallback: dict[str, Any] | None) -> dict[str, Any]:
    f = trained.fit
    entry: dict[str, Any] = {
        "test": {k: test_means[k] for k in TEST_METRICS},
        "vali": {"ndcg@10": f.best_vali},
        "best_step": f.best_step,
        "steps_run": f.steps_run,
        "train_seconds": round(f.seconds, 2),
        "examples_per_second": round(f.steps_run * trained.batch_size / f.seconds, 1),
        "compiled_train_steps": f.compiles,
        "test_queries_evaluated": int(valid.sum()),
        "test_queries_without_relevant": int((~valid).sum()),
    }
    if (curve := curve_entry(trained, data.true_curve)) is not None:
        entry["propensity"] = curve
    if selection is not None:
        with_curve_errors(selection["candidates"], data.true_curve)
        entry["selection"] = selection
    if fallback is not None:
        with_curve_errors(list(fallback["runs"].values()), data.true_curve)
        entry["fallback"] = fallback
    return entry


def per_query_table(name: str, test: QueryLists, valid: np.ndarray, per: Mapping[str, np.ndarray]) -> pa.Table:
    n = len(test.query_id)
    return pa.table({"method": [name] * n, "split": ["test"] * n, "query_id": test.query_id.tolist(), "has_relevant": valid,
                     **{k: v.astype(np.float64) for k, v in per.items()}})


def run_method(name: str, cfg: Mapping[str, Any], data: ExperimentData, run_dir: Path, writer: Any,
               stages: Stages) -> tuple[dict[str, Any], list[dict[str, Any]], pa.Table, int | None]:
    """Train `name` (with selection and fallback), evaluate it on the test split, save its
    results under run_dir/methods. Returns (entry, history, per-query table, resumed-from step)."""
    known = methods.get(name).known(methods.KnownSources(cfg, data.features, data.sessions, data.true_curve, data.sidecar))
    with stages(f"train:{name}"):
        trained, selection, fallback = train_with_fallback(
            name, cfg, data.features, data.features_dev, data.sessions, data.train_lists, data.vali, writer=writer,
            known=known, checkpoint_dir=run_dir / "checkpoints" / f"{name}-train")
    f, test = trained.fit, data.test
    progress = bool(cfg["trainer"].get("progress", True))
    with stages(f"evaluate:{name}", documents=int(test.mask.sum())):
        scores = score_lists(trained.steps, f.best_state.ranker, test, data.features_dev, progress=f"test {name}" if progress else None)
        test_means, test_per, valid = evaluate_scores(scores, test.label, test.mask, float(data.features.labels.max()))
    entry = method_entry(trained, test_means, valid, data, selection, fallback)
    if data.heldout is not None and trained.steps.click_probability is not None:
        with stages(f"click_likelihood:{name}"):
            entry["click_likelihood"] = method_scores(trained.steps, f.best_state, data.heldout, data.features_dev)
    if cfg["trainer"].get("checkpoint", True):
        entry["checkpoint"] = str(save_state(f.best_state, run_dir / "checkpoints" / name))
    table = per_query_table(name, test, valid, test_per)
    write_parquet(table, run_dir / "methods" / f"{name}.per_query.parquet")
    write_json({"entry": entry, "history": f.history}, run_dir / "methods" / f"{name}.json")
    return entry, f.history, table, f.resumed_from_step


def finished_method(name: str, cfg: Mapping[str, Any], run_dir: Path) -> tuple[dict[str, Any], list, pa.Table] | None:
    """A method that finished before an interruption: with `trainer.resume` its saved results are reused."""
    done = run_dir / "methods" / f"{name}.json"
    if not (cfg["trainer"].get("resume") and done.exists()):
        return None
    saved = json.loads(done.read_text())
    return saved["entry"], saved["history"], pq.read_table(run_dir / "methods" / f"{name}.per_query.parquet")


def open_writer(cfg: Mapping[str, Any], run_dir: Path) -> Any:
    if not cfg["trainer"].get("tensorboard", True):
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def method_names(cfg: Mapping[str, Any]) -> list[str]:
    names = list(cfg["algorithm"]["methods"])
    if unknown := [m for m in names if m not in methods.names()]:
        raise DataError(f"algorithm.methods has unknown {unknown}; available: {methods.names()}")
    return names


def write_report(cfg: Mapping[str, Any], run_dir: Path, data: ExperimentData, results: dict[str, Any],
                 histories: dict[str, Any], per_query: list[pa.Table], timing: dict[str, float], stages: Stages,
                 resumed: dict[str, int]) -> dict[str, Any]:
    """results.json, per_query.parquet, propensity.{json,png}, learning_curves.png."""
    write_parquet(pa.concat_tables(per_query), run_dir / "per_query.parquet")
    list_size = int(cfg["etl"]["list_size"])
    curves = {m: r["propensity"]["estimated"] for m, r in results.items() if "propensity" in r}
    if curves:
        write_json({"positions": list(range(1, list_size + 1)), "true": data.true_curve, "estimated": curves},
                   run_dir / "propensity.json")
        plot_propensity(curves, data.true_curve, run_dir / "propensity.png")
    plot_learning_curves(histories, run_dir / "learning_curves.png")
    s = data.stats
    out = {
        "methods": results,
        "config": dict(cfg),
        "timing": {**{k: round(v, 2) for k, v in timing.items()}, "stages": stages.record},
        "data": {"sessions": s["sessions"], "impressions": s["impressions"], "clicks": s["clicks"],
                 "zero_click_sessions": s["zero_click_sessions"], "dropped_sessions": s["dropped_sessions"],
                 "position_spread": s.get("position_spread")},
        **({"heldout_clicks": true_model_scores(data.heldout)} if data.heldout is not None else {}),
        "devices": [str(d) for d in jax.devices()],
        "data_dir": str(data.data_dir),
        **({"resumed_from_step": next(iter(resumed.values())), "resumed_methods": resumed} if resumed else {}),
        "data_cached": data.cached,
    }
    write_json(out, run_dir / "results.json")
    return out


def method_notes(results: Mapping[str, Any]) -> list[str]:
    """What the results table does not show: kept selection candidates, fallbacks, warnings."""
    notes = []
    for name, r in results.items():
        if "selection" in r:
            sel = r["selection"]
            scores_text = ", ".join(f"[{i}] {c['vali_ndcg@10']:.4f}" for i, c in enumerate(sel["candidates"]))
            notes.append(f"{name}: kept candidate [{sel['chosen']}] {sel['candidates'][sel['chosen']]['overrides']} "
                         f"by validation nDCG@10 ({scores_text})")
        if "fallback" in r:
            fb = r["fallback"]
            notes.append(f"note: {name}: the first run's curve diverged; trained again with {fb['overrides']} and kept the "
                         f"{'retrained' if fb['kept'] == 'fallback' else 'first'} run (results.json: {name}.fallback)")
        if "warning" in r.get("propensity", {}):
            notes.append(f"warning: {name}: {r['propensity']['warning']}")
    return notes


def print_report(results: Mapping[str, Any], true_curve: list[float] | None, run_dir: Path,
                 heldout: Mapping[str, Any] | None = None) -> None:
    """results.md, and the same tables on stdout."""
    table, ptable = results_table(results), propensity_table(results, true_curve)
    (run_dir / "results.md").write_text(f"# Results\n\n{table}\n\n## Propensity (relative to position 1)\n\n{ptable}\n")
    excluded = next(iter(results.values()))["test_queries_without_relevant"]
    print(f"\n{table}\n(test: {excluded} queries without a relevant document excluded)", file=sys.stdout)
    if ptable:
        print(f"\nPropensity, relative to position 1:\n{ptable}", file=sys.stdout)
    for line in [*heldout_lines(results, heldout), *method_notes(results)]:
        print(line, file=sys.stdout)
    print(f"\nrun directory: {run_dir}", file=sys.stdout)


def run_experiment(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Writes results.json, results.md, per_query.parquet, propensity.{json,png}, learning_curves.png,
    checkpoints/<method>, tensorboard/ and stats.json under run_dir; prints the results table."""
    run_dir, t_start, stages = Path(run_dir), time.perf_counter(), Stages()
    if cfg["trainer"].get("resume"):
        check_resumable(run_dir, cfg["trainer"])
    initialize_distributed(cfg.get("distributed"))
    names = method_names(cfg)
    data = load_data(cfg, run_dir, stages, names)
    timing = {"data_seconds": time.perf_counter() - t_start}
    results, histories, per_query, resumed = {}, {}, [], {}
    writer = open_writer(cfg, run_dir)
    for name in names:
        t = time.perf_counter()
        if (saved := finished_method(name, cfg, run_dir)) is not None:
            results[name], histories[name], table = saved
            per_query.append(table)
            continue
        results[name], histories[name], table, resumed_from = run_method(name, cfg, data, run_dir, writer, stages)
        per_query.append(table)
        if resumed_from is not None:
            resumed[name] = resumed_from
        timing[f"{name}_seconds"] = time.perf_counter() - t
    if writer is not None:
        writer.close()
    timing["total_seconds"] = time.perf_counter() - t_start
    out = write_report(cfg, run_dir, data, results, histories, per_query, timing, stages, resumed)
    print_report(results, data.true_curve, run_dir, out.get("heldout_clicks"))
    return out
