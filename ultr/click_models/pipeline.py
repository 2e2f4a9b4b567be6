"""`python -m pipelines.click_models`: fit click models on a training log, score them on a test
log by click likelihood, save each (model.json, propensities.json, orbax params)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np

from ultr.click_models.models import get, names as model_names
from ultr.click_models.module import FitModule as ClickModel, module
from ultr.click_models.data import SessionLog, rows_in, train_rows
from ultr.click_models.em import check_em, fit_em
from ultr.click_models.evaluate import evaluate
from ultr.click_models.fit import FitSettings, Fitted, fit
from ultr.click_models.saved import save
from ultr.data.etl import print_stats, run_etl
from ultr.data.io import write_json
from ultr.errors import DataError
from ultr.report import click_model_table, plot_perplexity
from ultr.paths import existing
from ultr.workflows import etl_config, log_paths, prepare_log


def ingest_log(log: Mapping[str, Any], etl: Mapping[str, Any], out: Path, role: str) -> dict[str, Any]:
    """A log (any format the ETL reads) -> out/sessions + out/doc_vocab.parquet; its ETL stats."""
    path, reader = prepare_log(log, out)
    stats = run_etl(path, None, out, etl_config(etl), columns=log.get("columns") or None)
    if reader is not None:
        stats["reader"] = reader
    print(f"{role}:", end=" ", file=sys.stderr)
    print_stats(stats, file=sys.stderr)
    if stats.get("clicks", 1) == 0:
        raise DataError(f"{log['path']}: no session of the {role} log has a click; click models learn from clicks, "
                        "so point log.path at a log with clicks")
    return stats


def settings(cfg: Mapping[str, Any]) -> FitSettings:
    f = cfg["fit"]
    return FitSettings(**{k: f[k] for k in FitSettings.__dataclass_fields__ if k in f and k != "seed"},
                       seed=int(cfg["seed"]))


def examination_curve(model: ClickModel, params: Any, log: SessionLog, batch_size: int) -> np.ndarray:
    """Mean marginal examination probability per rank over the log's sessions: the model's
    position-bias curve (PBM's gamma_k exactly; for the list-dependent models, averaged over lists)."""
    marginal = jax.jit(lambda p, r, m: model.apply(p, r, m, method="marginal")[1] * m)
    total, count = 0.0, 0.0
    for rows, _, mask in log.batches(batch_size):
        total = total + np.asarray(marginal(params, rows, mask), np.float64).sum(0)
        count = count + mask.sum(0)
    return total / np.maximum(count, 1)


def parameter_count(params: Any) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(params)))


@dataclass
class Prepared:
    """The training log split for early stopping, and the test log, mapped to one set of rows."""

    train: SessionLog
    val: SessionLog
    test: SessionLog
    rows: int
    positions: int
    stats: dict[str, Any]


def test_log_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    if not (cfg.get("test") or {}).get("path"):
        raise DataError("test.path is not set; pass the held-out log the models are scored on (test.path=<log>)")
    return {**cfg["log"], "path": cfg["test"]["path"], "format": cfg["test"].get("format") or cfg["log"].get("format")}


def check_inputs(cfg: Mapping[str, Any], names: list[str]) -> None:
    """Everything that can be checked before the logs are read: model names, the fit method, and
    that both logs exist (each named with where it was looked for)."""
    how = cfg["fit"].get("method", "gradient")
    if how not in ("gradient", "em"):
        raise DataError(f"fit.method={how!r}; use gradient or em")
    for n in names:
        model = module(get(n), 1, int(cfg["etl"]["list_size"]))  # an unknown name fails here
        if not model.model.fittable:
            raise DataError(f"click model {n} describes simulated users and is not fitted to logs; "
                            f"fit one of {', '.join(model_names(fittable=True))}")
        if how == "em":
            check_em(model, n)
    for log, what in ((cfg["log"], "log.path"), (test_log_config(cfg), "test.path")):
        if log.get("path") is None:
            raise DataError(f"{what} is not set; pass {what}=<click log>")
        if log.get("format", "generic") == "generic":
            existing(log["path"], what)
        else:
            log_paths(log["path"], what)


def prepare(cfg: Mapping[str, Any], run_dir: Path) -> Prepared:
    test_log = test_log_config(cfg)
    stats = {"train": ingest_log(cfg["log"], cfg["etl"], run_dir / "train", "train"),
             "test": ingest_log(test_log, cfg["etl"], run_dir / "test", "test")}
    buckets = int(cfg["model"]["buckets"])
    row_of, rows = train_rows(run_dir / "train", buckets)
    everything = SessionLog(run_dir / "train", row_of)
    cut = int(round(len(everything) * (1.0 - float(cfg["fit"]["validation_fraction"]))))
    test = SessionLog(run_dir / "test", rows_in(run_dir / "train", run_dir / "test", buckets))
    return Prepared(everything.part(0, cut), everything.part(cut, None), test, rows, int(cfg["etl"]["list_size"]), stats)


def fit_one(name: str, cfg: Mapping[str, Any], data: Prepared) -> tuple[ClickModel, Fitted]:
    model = module(get(name), data.rows, data.positions)
    how = cfg["fit"].get("method", "gradient")
    if how == "em":
        return model, fit_em(model, data.train, settings(cfg), name)
    if how != "gradient":
        raise DataError(f"fit.method={how!r}; use gradient or em")
    return model, fit(model, data.train, data.val, settings(cfg), name)


def fit_and_score(name: str, cfg: Mapping[str, Any], data: Prepared) -> tuple[ClickModel, Fitted, dict[str, Any]]:
    model, fitted = fit_one(name, cfg, data)
    scores = evaluate(model, fitted.params, data.test, int(cfg["fit"]["batch_size"]))
    record = {**scores, "parameters": parameter_count(fitted.params), "train_seconds": fitted.train_seconds,
              "sessions_per_second": fitted.sessions_per_second, "epochs": fitted.epochs,
              "validation_log_likelihood": fitted.validation}
    return model, fitted, record


def click_models(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    names = list(cfg["models"])
    check_inputs(cfg, names)  # before any log is read
    data = prepare(cfg, run_dir)
    results: dict[str, Any] = {}
    for name in names:
        model, fitted, results[name] = fit_and_score(name, cfg, data)
        curve = examination_curve(model, fitted.params, data.train, int(cfg["fit"]["batch_size"]))
        save(model, fitted.params, run_dir / name, {"source": str(cfg["log"]["path"]), "fit": dict(cfg["fit"]),
                                                      "test": results[name]}, curve)
        r = results[name]
        print(f"{name}: perplexity {r['perplexity']:.5f}, LL {r['log_likelihood']:.5f} "
              f"({r['epochs']} epochs, {r['train_seconds']:.1f}s)", file=sys.stderr)
    unseen = int((data.test.row_of < 0).sum())
    out = {"models": results, "data": {
        "train": {"path": str(cfg["log"]["path"]), "sessions": len(data.train), "validation_sessions": len(data.val),
                  "pairs": len(data.train.row_of), "parameter_rows": data.rows, "clicks": data.stats["train"].get("clicks")},
        "test": {"path": str(cfg["test"]["path"]), "sessions": len(data.test), "clicks": data.stats["test"].get("clicks"),
                 "pairs": len(data.test.row_of), "unseen_pairs": unseen}}}
    write_json(out, run_dir / "click_models.json")
    plot_perplexity({n: r["perplexity_at"] for n, r in results.items()}, run_dir / "perplexity_at.png")
    print("\n" + click_model_table(results), file=sys.stdout)
    print(f"\nunseen test pairs: {unseen} of {len(data.test.row_of)}; run directory: {run_dir}", file=sys.stdout)
    return out
