"""Library functions behind each pipeline: plain dict config in, files in `run_dir` out.

The Hydra entry points in `pipelines/` only compose the config and call one of these, so tests
and notebooks run the same code without Hydra.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from typing import Any, Mapping

from ultr.data.etl import EtlConfig, print_stats, run_etl
from ultr.data.io import write_json
from ultr.data.readers import ReaderPolicy, convert_log
from ultr.errors import DataError
from ultr.data.letor import FeatureTable, ingest_letor, read_features
from ultr.paths import resolve
from ultr.simulation.click_models import make_click_model
from ultr.simulation.simulate import run_simulation


def letor_splits(data: Mapping[str, Any]) -> dict[str, Path]:
    """Paths of the configured LETOR fold: `root/Fold{fold}/{split}.txt[.gz]`."""
    root = resolve(data["root"])
    fold_dir = root / f"Fold{data['fold']}" if data.get("fold") is not None else root
    out = {}
    for split in data.get("splits", ["train", "vali", "test"]):
        for name in (f"{split}.txt.gz", f"{split}.txt"):
            if (fold_dir / name).exists():
                out[split] = fold_dir / name
                break
        else:
            raise DataError(f"{fold_dir}: no {split}.txt or {split}.txt.gz; set data.root to a LETOR fold directory")
    return out


def ingest(data: Mapping[str, Any], run_dir: str | Path) -> FeatureTable:
    """Write `run_dir/features.parquet` from the configured LETOR fold and read it back."""
    out = Path(run_dir) / "features.parquet"
    stats = ingest_letor(
        letor_splits(data),
        out,
        num_features=data.get("num_features"),
        normalization=data.get("normalization", "none"),
        log1p=bool(data.get("log1p", False)),
        drop_eval_queries_without_relevant=bool(data.get("drop_eval_queries_without_relevant", False)),
    )
    for split, s in stats["splits"].items():
        note = f", {s['queries_without_relevant']} without a relevant document" + (
            f" ({s['queries_dropped_without_relevant']} dropped)" if s["queries_dropped_without_relevant"] else ""
        )
        print(f"ingest {split}: {s['queries']} queries, {s['documents']} documents{note}", file=sys.stderr)
    return read_features(out)


def click_model_from_config(cm: Mapping[str, Any], features: FeatureTable):
    params = {k: v for k, v in cm.items() if k != "name"}
    y_max = int(features.labels[features.labels >= 0].max())
    return make_click_model(cm["name"], y_max=y_max, **params)


def simulate(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """LETOR fold -> features.parquet -> clicks.parquet + propensities.json + simulation.json."""
    return simulate_on(ingest(cfg["data"], run_dir), cfg, run_dir)


def simulate_on(features: FeatureTable, cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Simulate clicks on an ingested features table (see `simulate`)."""
    run_dir = Path(run_dir)
    model = click_model_from_config(cfg["click_model"], features)
    sim = cfg["simulation"]
    summary = run_simulation(
        features, model, run_dir,
        sessions=int(sim["sessions"]), list_size=int(sim["list_size"]), seed=int(cfg["seed"]),
        policy_fraction=float(sim["policy_fraction"]), policy_min_queries=int(sim["policy_min_queries"]),
        config=dict(cfg), logging_policies=int(sim.get("logging_policies", 1)),
    )
    print(
        f"simulated {summary['sessions']} sessions, {summary['impressions']} impressions, "
        f"{summary['clicks']} clicks in {summary['seconds_simulate']}s -> {run_dir / 'clicks.parquet'}",
        file=sys.stderr,
    )
    return summary


def etl_config(etl: Mapping[str, Any]) -> EtlConfig:
    return EtlConfig(**{k: v for k, v in etl.items() if k in EtlConfig.__dataclass_fields__})


def log_paths(path: str) -> list[Path]:
    """A file, a directory of parts, or a glob pattern -> the files, sorted."""
    p = resolve(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
    elif any(ch in str(path) for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(p)))
    else:
        files = [p]
    if not files or not files[0].exists():
        raise DataError(f"{path}: no such click-log file(s)")
    return files


def reader_policy(log: Mapping[str, Any]) -> ReaderPolicy:
    return ReaderPolicy(**{k: v for k, v in log.items() if k in ReaderPolicy.__dataclass_fields__})


def prepare_log(log: Mapping[str, Any], run_dir: Path) -> tuple[Path, dict[str, Any] | None]:
    """Real-log formats are converted to click-log Parquet parts under run_dir/clicks first."""
    fmt = log.get("format", "generic")
    if log.get("path") is None:
        raise DataError("log.path is not set; pass log.path=<click log> (and features.path=<features table>)")
    if fmt == "generic":
        return resolve(log["path"]), None
    reader = convert_log(fmt, log_paths(log["path"]), run_dir, reader_policy(log))
    print(f"read {fmt}: {reader['sessions']} sessions, {reader['impressions']} impressions; quarantined {reader['quarantined']}", file=sys.stderr)
    return run_dir / "clicks", reader


def etl(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Click log (+ features table) -> run_dir/sessions/*.parquet + stats.json."""
    run_dir = Path(run_dir)
    log = cfg["log"]
    path, reader = prepare_log(log, run_dir)
    fpath = cfg.get("features", {}).get("path")
    stats = run_etl(
        path,
        resolve(fpath) if fpath else None,
        run_dir,
        etl_config(cfg["etl"]),
        columns=log.get("columns") or None,
    )
    if reader is not None:
        stats["reader"] = reader
        stats["quarantined"] = reader["quarantined"]
        write_json(stats, run_dir / "stats.json")
    print_stats(stats, file=sys.stderr)
    return stats
