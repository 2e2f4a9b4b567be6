"""The one-command ULTR experiment, step by step as the protocol reads: data (a simulated or
given click log through the ETL), then each method (train, select, evaluate on the test split's
expert labels), then the report. `python -m pipelines.experiment` calls `run_experiment`."""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from omegaconf import OmegaConf
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
from ultr.click_models.simulator import click_model_inputs
from ultr.train.selection import RunSpec, choose, fallback_spec, run_plan, selection_candidates, stand_in
from ultr.train.method import TrainedMethod, as_validation, needs_train_lists, train_method, with_overrides
from ultr.train.validation import ClickValidation, Validation, click_validation, validation_sessions
from ultr.estimation.propensity import count_impressions, pbm_em
from ultr.evaluation.propensities import read_propensities
from ultr.workflows import etl_config, ingest, letor_splits, log_features_table, log_paths, mapped_columns, prepare_log, simulate_on

TEST_METRICS = ("ndcg@1", "ndcg@3", "ndcg@5", "ndcg@10", "err@10", "mrr", "map")
PER_QUERY_METRICS = TEST_METRICS


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
    vali: QueryLists | None  # the vali split's lists (label validation only)
    validation: Validation  # what early stopping and the selection read
    test: QueryLists | None  # None where the features table has no labelled test split (a real log)
    train_lists: QueryLists | None  # only where a method trains on candidate lists
    heldout: HeldOutClicks | None  # test-query sessions for the click likelihood (`evaluation.click_sessions`)
    # Every training session, where click validation held some out and `validation.refit` trains
    # the kept number of steps again on all of them; else None.
    refit_sessions: Sessions | None = None
    validation_run: dict[str, Any] | None = None  # the REM run whose curve click validation reads


# validation.propensity values read as PBM-EM's curve at first, and those a learned curve then replaces.
PBM_EM_CURVE, LEARNED_CURVE = frozenset({"pbm_em", "rem"}), frozenset({"rem"})

# Settings a resumed run may change (the console), not what it trains.
RESUME_FREE = ("trainer.resume", "trainer.progress")


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, Mapping):
        return {prefix[:-1]: d}
    return {k: v for key, value in d.items() for k, v in _flat(value, f"{prefix}{key}.").items()}


def check_same_config(run_dir: Path, cfg: Mapping[str, Any]) -> None:
    """A resumed run continues with the configuration it started with (`.hydra/config.yaml`); one
    composed otherwise today (other defaults since) would mix two settings in one run."""
    saved_file = run_dir / ".hydra" / "config.yaml"
    if not saved_file.is_file():
        return
    saved, now = _flat(OmegaConf.to_container(OmegaConf.load(saved_file), resolve=True)), _flat(cfg)
    differ = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k) and not k.startswith(RESUME_FREE))
    if differ:
        raise DataError(f"{run_dir}: resuming would change {', '.join(f'{k} ({saved.get(k)!r} -> {now.get(k)!r})' for k in differ[:3])}"
                        f"{' and more' if len(differ) > 3 else ''} from the configuration the run started with "
                        f"({saved_file}); resume with the settings and code that started it, or start a new run directory")


def check_resumable(run_dir: Path, cfg: Mapping[str, Any]) -> None:
    """`trainer.resume=true` must find something to resume: a silent fresh start would look like one."""
    trainer = cfg["trainer"]
    check_same_config(run_dir, cfg)
    if not int(trainer.get("checkpoint_every", 0) or 0):
        raise DataError("trainer.resume=true needs trainer.checkpoint_every > 0 (training checkpoints are off)")
    ckpts = run_dir / "checkpoints"
    started = ckpts.is_dir() and any(p.name.endswith("-train") or "-train-" in p.name for p in ckpts.iterdir())
    finished = any((run_dir / "methods").glob("*.json"))
    if not (started or finished):
        raise DataError(
            f"{run_dir}: trainer.resume=true, but this run directory holds no training checkpoint (checkpoints/<method>-train) "
            "and no finished method; set hydra.run.dir to the interrupted run's directory, or drop trainer.resume")


def given_log_path(cfg: Mapping[str, Any]) -> Path:
    """`clicks=PATH` (or `log.path=PATH`), checked before any long work starts."""
    log = cfg.get("log") or {}
    path = cfg.get("clicks") or log["path"]
    if log.get("format", "generic") != "generic":
        return log_paths(str(path))[0]
    return existing(path, "clicks")


def _given_log(cfg: Mapping[str, Any], run_dir: Path, stages: Stages, progress: bool
               ) -> tuple[Path, bool, FeatureTable | None]:
    """`clicks=PATH`: a real-log format is converted first; the features come from `data` (ingested
    into the run directory) or, with `log.features=[...]`, from the log's own columns (`[]`: ids
    only). Then the ETL on that log in the run directory, its columns mapped by `log.columns`."""
    given_log_path(cfg)
    log = {**(cfg.get("log") or {}), "path": str(cfg.get("clicks") or cfg["log"]["path"])}
    with stages("ingest"):
        clicks_path, _ = prepare_log(log, run_dir)
        if log.get("features") is None:
            features = ingest(cfg["data"], run_dir, seed=int(cfg["seed"]), cache=cfg.get("cache"), progress=progress)
        else:
            features = read_features(log_features_table(log, clicks_path, run_dir))
    sidecar = Path(log["path"]).parent / "propensities.json"
    write_json(json.loads(sidecar.read_text()) if sidecar.is_file() else {}, run_dir / "propensities.json")
    with stages("etl"):
        run_etl(clicks_path, run_dir / "features.parquet", run_dir, etl_config(cfg["etl"]), progress=progress,
                columns=mapped_columns(log))
    return run_dir, False, features


def simulation_inputs(cfg: Mapping[str, Any]) -> list[Path]:
    """Every file a simulated log is built from: the LETOR splits and a fitted click model."""
    return [*letor_splits(cfg["data"]).values(), *click_model_inputs(cfg["click_model"])]


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
        return (*cached_dir(cfg, build, simulation_inputs(cfg)), None)
    build(run_dir)
    return run_dir, False, None


def load_data(cfg: Mapping[str, Any], run_dir: Path, stages: Stages, names: list[str]) -> ExperimentData:
    progress = bool(cfg["trainer"].get("progress", True))
    given = cfg.get("clicks") or (cfg.get("log") or {}).get("path")
    data_dir, cached, features = (_given_log if given else _simulated_log)(cfg, run_dir, stages, progress)
    if cached or data_dir != run_dir:
        print(f"data: {data_dir} ({'cached' if cached else 'built'})", file=sys.stderr)
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
    everything = read_sessions(data_dir)
    vali, validation, sessions = choose_validation(cfg, features, everything, sidecar)
    refit = sessions is not everything and bool((cfg.get("validation") or {}).get("refit", False))
    return ExperimentData(
        features, jnp.asarray(features.features), sessions, sidecar, true_curve, stats, data_dir, cached,
        vali, validation, test_lists(features),
        query_lists(features, "train") if needs_train_lists(names, cfg) else None,
        heldout_for(cfg, features, names, stages), everything if refit else None)


def test_lists(features: FeatureTable) -> QueryLists | None:
    """The test split's lists, or None for a table without test labels (a log's own features):
    such runs report their validation and are compared on held-out logs by pipelines.evaluate."""
    rows = np.flatnonzero(features.splits == "test")
    return query_lists(features, "test") if len(rows) and (features.labels[rows] >= 0).any() else None


def has_labelled_vali(features: FeatureTable) -> bool:
    rows = np.flatnonzero(features.splits == "vali")
    return bool(len(rows)) and bool((features.labels[rows] > 0).any())


def choose_validation(cfg: Mapping[str, Any], features: FeatureTable, sessions: Sessions, sidecar: Mapping[str, Any]
                      ) -> tuple[QueryLists | None, Validation, Sessions]:
    """(vali lists, the validation, the sessions to train on): with clicks a share of the training
    sessions is held out and not trained on."""
    v = cfg.get("validation") or {"source": "labels"}
    source = str(v.get("source", "auto"))
    if source == "auto":
        source = "labels" if has_labelled_vali(features) else "clicks"
    if source == "labels":
        vali = query_lists(features, "vali")
        return vali, as_validation(vali, features), sessions
    if source != "clicks":
        raise DataError(f"validation.source={source!r}: use auto, labels or clicks")
    # An ID ranker scores only the pairs it was trained on: hold out sessions, never whole queries.
    by = str(v.get("by", "auto"))
    by = ("session" if features.num_features == 0 else "query") if by == "auto" else by
    train, held = validation_sessions(sessions, float(v.get("fraction", 0.2)), by, int(cfg["seed"]))
    alpha, what = validation_propensity(v, train, sidecar)
    validation = click_validation(held, alpha, v, what)
    print(f"validation: {validation.metric} on {validation.source}; these sessions are not trained on", file=sys.stderr)
    return None, validation, train


def validation_propensity(v: Mapping[str, Any], train: Sessions, sidecar: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    how = v.get("propensity", "pbm_em")
    how = "true" if how is True else str(how)  # YAML reads a bare `true` as a boolean
    if how in PBM_EM_CURVE:  # rem: REM's own run stops on PBM-EM's curve (rem_validation)
        curve = pbm_em(count_impressions(train))
        return curve / curve[0], "propensities by PBM-EM on the training sessions"
    if how == "true":
        if "examination" not in sidecar:
            raise DataError("validation.propensity=true needs the simulator's propensities (a simulated log); "
                            "use pbm_em, rem or a propensity file")
        return np.asarray(sidecar["examination"], float), "the simulator's true propensities"
    p = read_propensities(how, v.get("propensity_key"))
    return p.alpha, f"propensities from {p.source}"


def rem_validation(cfg: Mapping[str, Any], data: ExperimentData, run_dir: Path, stages: Stages) -> ExperimentData:
    """`validation.propensity=rem`: Regression-EM is trained first on the training sessions, stopped
    on the held-out clicks scored with PBM-EM's curve, and its learned curve then scores the held-out
    clicks for every run. With one ranking per query PBM-EM cannot tell position from document;
    REM's relevance is a function of the features, which can (RESULTS, issue 26)."""
    v = cfg.get("validation") or {}
    if not isinstance(data.validation, ClickValidation) or str(v.get("propensity")) not in LEARNED_CURVE:
        return data
    saved = run_dir / "validation_propensity.json"
    if cfg["trainer"].get("resume") and saved.exists():
        record = json.loads(saved.read_text())
        print("resumed: validation.propensity=rem had finished; its curve is reused", file=sys.stderr)
    else:
        spec = RunSpec("validation_rem", "rem")
        trained = train_run(spec, cfg, data, run_dir, None, stages)
        record = {"method": "rem", "metric": data.validation.metric, "source": data.validation.source,
                  "best_step": trained.fit.best_step, "steps_run": trained.fit.steps_run,
                  "vali": float(trained.fit.best_vali), "propensity": curve_entry(trained, data.true_curve)}
        write_json(record, saved)
    curve = np.asarray(record["propensity"]["estimated"], float)
    validation = click_validation(data.validation.sessions, curve, v,
                                  f"propensities by REM (trained on the training sessions, kept step {record['best_step']})")
    print(f"validation: REM's curve {' '.join(f'{a:.3f}' for a in curve)} (kept step {record['best_step']}) "
          "replaces PBM-EM's for every run", file=sys.stderr)
    if warning := record["propensity"].get("warning"):
        print(f"warning: validation.propensity=rem: {warning}", file=sys.stderr)
    return replace(data, validation=validation, validation_run=record)


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


def method_entry(spec: RunSpec, trained: TrainedMethod, test_means: Mapping[str, float], valid: np.ndarray,
                 data: ExperimentData) -> dict[str, Any]:
    f = trained.fit
    entry: dict[str, Any] = {
        "test": {k: test_means[k] for k in TEST_METRICS} if test_means else None,
        "vali": {data.validation.metric: f.best_vali},
        "best_step": f.best_step,
        "steps_run": f.steps_run,
        "train_seconds": round(f.seconds, 2),
        "examples_per_second": round(f.steps_run * trained.batch_size / f.seconds, 1),
        "compiled_train_steps": f.compiles,
        "test_queries_evaluated": int(valid.sum()),
        "test_queries_without_relevant": int((~valid).sum()),
    }
    if spec.label != spec.method or spec.overrides:
        entry["run"] = {"method": spec.method, "overrides": list(spec.overrides),
                        **({"variant_of": spec.variant_of, "trigger": spec.trigger} if spec.variant_of else {})}
    if (curve := curve_entry(trained, data.true_curve)) is not None:
        entry["propensity"] = curve
    return entry


def per_query_table(name: str, split: str, query_id: np.ndarray, valid: np.ndarray, per: Mapping[str, np.ndarray],
                    validation: np.ndarray | None = None) -> pa.Table:
    """Per query: the label metrics (test rows; NaN on vali rows) and the validation score (vali
    rows: what the selection compares; NaN on test rows)."""
    n = len(query_id)
    nan = np.full(n, np.nan)
    text = lambda values: pa.array(values, pa.string())  # typed, so an empty test table concatenates
    return pa.table({"method": text([name] * n), "split": text([split] * n), "query_id": text([str(q) for q in query_id]),
                     "has_relevant": pa.array(np.asarray(valid, bool)),
                     **{k: np.asarray(per.get(k, nan), np.float64) for k in PER_QUERY_METRICS},
                     "validation": nan if validation is None else np.asarray(validation, np.float64)})


@dataclass
class RunResult:
    entry: dict[str, Any]  # results.json's methods.<label>
    history: list[dict[str, Any]]
    per_query: pa.Table  # test and vali metrics per query
    resumed_from: int | None = None


def evaluate_split(trained: TrainedMethod, lists: QueryLists | None, data: ExperimentData, progress: str | None
                   ) -> tuple[dict[str, float], dict[str, np.ndarray], np.ndarray]:
    if lists is None:  # no test labels: nothing to report here
        return {}, {}, np.zeros(0, bool)
    scores = score_lists(trained.steps, trained.fit.best_state.ranker, lists, data.features_dev, progress=progress)
    return evaluate_scores(scores, lists.label, lists.mask, float(data.features.labels.max()))


def train_run(spec: RunSpec, cfg: Mapping[str, Any], data: ExperimentData, run_dir: Path, writer: Any,
              stages: Stages) -> TrainedMethod:
    run_cfg = with_overrides(cfg, list(spec.overrides)) if spec.overrides else cfg
    known = methods.get(spec.method).known(methods.KnownSources(run_cfg, data.features, data.sessions, data.true_curve,
                                                                data.sidecar))
    with stages(f"train:{spec.label}"):
        trained = train_method(spec.method, run_cfg, data.features, data.features_dev, data.sessions, data.train_lists,
                               data.validation, writer=writer, known=known, tag=spec.label,
                               checkpoint_dir=run_dir / "checkpoints" / f"{spec.label}-train")
    if trained.fit.resumed_from_step is not None:
        print(f"resumed {spec.label} from step {trained.fit.resumed_from_step}", file=sys.stderr)
    return trained


def refit_run(spec: RunSpec, cfg: Mapping[str, Any], data: ExperimentData, trained: TrainedMethod, run_dir: Path,
              stages: Stages) -> TrainedMethod | None:
    """The number of steps click validation kept, trained again from the start on every training
    session (the held-out share included), as a label-validated run trains on all of them. No
    validation runs here: the held-out sessions are now training data."""
    kept = int(trained.fit.best_step or 0)
    if data.refit_sessions is None or kept < 1:
        return None
    run_cfg = with_overrides(cfg, [*spec.overrides, f"trainer.steps={kept}"])
    known = methods.get(spec.method).known(methods.KnownSources(run_cfg, data.features, data.refit_sessions,
                                                                data.true_curve, data.sidecar))
    with stages(f"refit:{spec.label}"):
        return train_method(spec.method, run_cfg, data.features, data.features_dev, data.refit_sessions, data.train_lists,
                            None, known=known, tag=f"{spec.label} refit",
                            checkpoint_dir=run_dir / "checkpoints" / f"{spec.label}-refit")


def run_method(spec: RunSpec, cfg: Mapping[str, Any], data: ExperimentData, run_dir: Path, writer: Any,
               stages: Stages) -> RunResult:
    """Train one run, evaluate it on the test split (and per query on vali, for the selection),
    save its results under run_dir/methods/<label>."""
    trained = train_run(spec, cfg, data, run_dir, writer, stages)
    f, label = trained.fit, spec.label
    progress = bool(cfg["trainer"].get("progress", True))
    # Read before a refit: the selection compares the runs on sessions none of them trained on.
    vali_values, vali_valid = data.validation.per_query(trained.steps, f.best_state.ranker, data.features_dev)
    kept = refit_run(spec, cfg, data, trained, run_dir, stages) or trained
    with stages(f"evaluate:{label}", documents=int(data.test.mask.sum()) if data.test is not None else 0):
        test_means, test_per, valid = evaluate_split(kept, data.test, data, f"test {label}" if progress else None)
    entry = method_entry(spec, trained, test_means, valid, data)
    if kept is not trained:
        entry["refit"] = {"steps": kept.fit.steps_run, "sessions": len(data.refit_sessions),
                          "train_seconds": round(kept.fit.seconds, 2)}
        if (curve := curve_entry(kept, data.true_curve)) is not None:
            entry["propensity"] = curve
    if data.heldout is not None and kept.steps.click_probability is not None:
        with stages(f"click_likelihood:{label}"):
            entry["click_likelihood"] = method_scores(kept.steps, kept.fit.best_state, data.heldout, data.features_dev)
    if cfg["trainer"].get("checkpoint", True):
        entry["checkpoint"] = str(save_state(kept.fit.best_state, run_dir / "checkpoints" / label))
    table = pa.concat_tables([per_query_table(label, "test", data.test.query_id if data.test is not None else [], valid, test_per),
                              per_query_table(label, "vali", data.validation.query_ids, vali_valid, {}, vali_values)])
    write_parquet(table, run_dir / "methods" / f"{label}.per_query.parquet")
    write_json({"entry": entry, "history": f.history}, run_dir / "methods" / f"{label}.json")
    return RunResult(entry, f.history, table, f.resumed_from_step)


def finished_method(label: str, cfg: Mapping[str, Any], run_dir: Path) -> RunResult | None:
    """A run that finished before an interruption: with `trainer.resume` its saved results are reused."""
    done = run_dir / "methods" / f"{label}.json"
    if not (cfg["trainer"].get("resume") and done.exists()):
        return None
    saved = json.loads(done.read_text())
    print(f"resumed: {label} had finished; its saved results are reused", file=sys.stderr)
    return RunResult(saved["entry"], saved["history"], pq.read_table(run_dir / "methods" / f"{label}.per_query.parquet"))


class _Writer:
    """TensorBoard with tags it accepts as they are: run labels such as `dla+severe_bias` hold
    characters tensorboardX renames with an INFO log line per scalar."""

    def __init__(self, path: Path) -> None:
        self._w = SummaryWriter(str(path))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self._w.add_scalar(re.sub(r"[^-/\w.]", "_", tag), value, step)

    def close(self) -> None:
        self._w.close()


def open_writer(cfg: Mapping[str, Any], run_dir: Path) -> Any:
    if not cfg["trainer"].get("tensorboard", True):
        return None
    return _Writer(run_dir / "tensorboard")


def train_all(cfg: Mapping[str, Any], plan: list[RunSpec], data: ExperimentData, run_dir: Path,
              stages: Stages, timing: dict[str, float]) -> tuple[dict[str, RunResult], list[RunSpec]]:
    """Every run of the plan, each followed by its severe-bias retraining where the fallback fires."""
    runs: dict[str, RunResult] = {}
    trained: list[RunSpec] = []
    queue = list(plan)
    writer = open_writer(cfg, run_dir)
    while queue:
        spec = queue.pop(0)
        t = time.perf_counter()
        runs[spec.label] = finished_method(spec.label, cfg, run_dir) or run_method(spec, cfg, data, run_dir, writer, stages)
        timing[f"{spec.label}_seconds"] = time.perf_counter() - t
        trained.append(spec)
        curve = runs[spec.label].entry.get("propensity", {}).get("estimated")
        if (again := fallback_spec(spec, curve, cfg)) is not None:
            print(f"{spec.label}: {again.trigger}; training {again.label} with {list(again.overrides)}", file=sys.stderr)
            queue.insert(0, again)
    if writer is not None:
        writer.close()
    return runs, trained


def vali_per_query(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    vali = table.filter(pc.equal(table["split"], "vali"))
    return vali["validation"].to_numpy(), vali["has_relevant"].to_numpy()


def add_selection(cfg: Mapping[str, Any], runs: dict[str, RunResult], trained: list[RunSpec]) -> None:
    """The selection's row (`selection.name`): the kept run's test metrics, which run it is, and
    the record of the choice. It carries no propensity curve: curves belong to the runs."""
    reference, candidates = selection_candidates(cfg, trained)
    if reference is None:
        return
    name = str(cfg["selection"].get("name") or "selected")
    if name in runs:
        raise DataError(f"selection.name={name} is also a run's name; choose another")
    incumbent, candidates, why = stand_in(reference, candidates, {k: runs[k].entry for k in [reference, *candidates]})
    record = choose(incumbent, candidates, {k: vali_per_query(runs[k].per_query) for k in [incumbent, *candidates]},
                    float(cfg["selection"].get("alpha", 0.05)), metric=next(iter(runs[reference].entry["vali"])))
    if why:
        record["stand_in"] = why
    kept = runs[record["kept"]]
    entry = {"kept": record["kept"], "test": kept.entry["test"], "vali": kept.entry["vali"],
             "test_queries_evaluated": kept.entry["test_queries_evaluated"],
             "test_queries_without_relevant": kept.entry["test_queries_without_relevant"], "selection": record}
    table = kept.per_query.set_column(0, "method", pa.array([name] * kept.per_query.num_rows))
    runs[name] = RunResult(entry, [], table)


def write_report(cfg: Mapping[str, Any], run_dir: Path, data: ExperimentData, runs: Mapping[str, RunResult],
                 timing: dict[str, float], stages: Stages, resumed: dict[str, int]) -> dict[str, Any]:
    """results.json, per_query.parquet, propensity.{json,png}, learning_curves.png."""
    results = {k: r.entry for k, r in runs.items()}
    write_parquet(pa.concat_tables([r.per_query for r in runs.values()]), run_dir / "per_query.parquet")
    list_size = int(cfg["etl"]["list_size"])
    curves = {m: r["propensity"]["estimated"] for m, r in results.items() if "propensity" in r}
    if curves:
        write_json({"positions": list(range(1, list_size + 1)), "true": data.true_curve, "estimated": curves},
                   run_dir / "propensity.json")
        plot_propensity(curves, data.true_curve, run_dir / "propensity.png")
    plot_learning_curves({k: r.history for k, r in runs.items() if r.history}, run_dir / "learning_curves.png")
    s = data.stats
    out = {
        "methods": results,
        "config": dict(cfg),
        "timing": {**{k: round(v, 2) for k, v in timing.items()}, "stages": stages.record},
        "data": {"sessions": s["sessions"], "impressions": s["impressions"], "clicks": s["clicks"],
                 "zero_click_sessions": s["zero_click_sessions"], "dropped_sessions": s["dropped_sessions"],
                 "position_spread": s.get("position_spread")},
        "validation": {"metric": data.validation.metric, "source": data.validation.source,
                       **({"propensity_run": data.validation_run} if data.validation_run else {})},
        **({"heldout_clicks": true_model_scores(data.heldout)} if data.heldout is not None else {}),
        "devices": [str(d) for d in jax.devices()],
        "data_dir": str(data.data_dir),
        **({"resumed_from_step": next(iter(resumed.values())), "resumed_methods": resumed} if resumed else {}),
        "data_cached": data.cached,
    }
    write_json(out, run_dir / "results.json")
    return out


def selection_note(name: str, r: Mapping[str, Any]) -> str:
    sel = r["selection"]
    ref = sel["runs"][0]
    key = f"vali_{sel.get('metric', 'ndcg@10')}"
    others = "; ".join(f"{c['run']} {c[key]:.4f} ({c['difference']:+.4f}, p={c['p']:.3g}"
                       f"{', beats it' if c['beats_reference'] else ''})" for c in sel["runs"][1:])
    why = "no candidate beats the reference beyond noise" if sel["kept"] == sel["reference"] else "it beats the reference beyond noise"
    why = f"{sel['stand_in']}; {why}" if sel.get("stand_in") else why
    shown = "nDCG@10" if key == "vali_ndcg@10" else sel["metric"]
    return (f"{name}: kept {sel['kept']}, {why}. Validation {shown}: {ref['run']} (reference) {ref[key]:.4f}; "
            f"{others or 'no candidates'} (one-sided paired t-test over {sel['validation_queries']} validation queries, "
            f"alpha {sel['alpha']:g} / {max(len(sel['runs']) - 1, 1)})")


def method_notes(results: Mapping[str, Any]) -> list[str]:
    """What the results table does not show: the selection's choice, fallback runs, warnings."""
    notes = []
    for name, r in results.items():
        if "selection" in r:
            notes.append(selection_note(name, r))
        if (run := r.get("run") or {}).get("variant_of"):
            notes.append(f"note: {name} retrains {run['variant_of']} with {run['overrides']} because {run['trigger']}")
        if "warning" in r.get("propensity", {}):
            notes.append(f"warning: {name}: {r['propensity']['warning']}")
    return notes


def print_report(results: Mapping[str, Any], true_curve: list[float] | None, run_dir: Path,
                 heldout: Mapping[str, Any] | None = None) -> None:
    """results.md, and the same tables on stdout."""
    table, ptable = results_table(results), propensity_table(results, true_curve)
    (run_dir / "results.md").write_text(f"# Results\n\n{table}\n\n## Propensity (relative to position 1)\n\n{ptable}\n")
    first = next(iter(results.values()))
    excluded = (f"test: {first['test_queries_without_relevant']} queries without a relevant document excluded"
                if first["test"] is not None else "no test labels: compare these rankers on a held-out log with pipelines.evaluate")
    print(f"\n{table}\n({excluded})", file=sys.stdout)
    if ptable:
        print(f"\nPropensity, relative to position 1:\n{ptable}", file=sys.stdout)
    for line in [*heldout_lines(results, heldout), *method_notes(results)]:
        print(line, file=sys.stdout)
    print(f"\nrun directory: {run_dir}", file=sys.stdout)


def run_experiment(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Writes results.json, results.md, per_query.parquet, propensity.{json,png}, learning_curves.png,
    checkpoints/<run>, tensorboard/ and stats.json under run_dir; prints the results table."""
    run_dir, t_start, stages = Path(run_dir), time.perf_counter(), Stages()
    plan = run_plan(cfg)
    if cfg["trainer"].get("resume"):
        check_resumable(run_dir, cfg)
    initialize_distributed(cfg.get("distributed"))
    data = rem_validation(cfg, load_data(cfg, run_dir, stages, [s.method for s in plan]), run_dir, stages)
    timing = {"data_seconds": time.perf_counter() - t_start}
    runs, trained = train_all(cfg, plan, data, run_dir, stages, timing)
    add_selection(cfg, runs, trained)
    timing["total_seconds"] = time.perf_counter() - t_start
    resumed = {k: r.resumed_from for k, r in runs.items() if r.resumed_from is not None}
    out = write_report(cfg, run_dir, data, runs, timing, stages, resumed)
    print_report(out["methods"], data.true_curve, run_dir, out.get("heldout_clicks"))
    return out
