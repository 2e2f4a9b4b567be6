"""Library functions behind each pipeline: plain dict config in, files in `run_dir` out.

The Hydra entry points in `pipelines/` only compose the config and call one of these, so tests
and notebooks run the same code without Hydra.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path
from typing import Any, Mapping

from tqdm import tqdm

from ultr.cache import cached_features, link_or_copy
from ultr.data.etl import EtlConfig, print_stats, run_etl
from ultr.data.io import write_json
from ultr.data.readers import ReaderPolicy, convert_log
from ultr.errors import DataError
from ultr.data.letor import FeatureTable, ingest_letor, read_features
from ultr.paths import existing, resolve
from ultr.simulation.click_models import make_click_model
from ultr.simulation.simulate import run_simulation


def letor_splits(data: Mapping[str, Any]) -> dict[str, Path]:
    """Paths of the configured LETOR splits: `root/Fold{fold}/{split}.txt[.gz]`, or `data.files`
    (split -> path under root, `{fold}` filled in) for datasets laid out otherwise. With
    `data.vali_fraction` the vali split comes from train, so no vali file is read."""
    if data.get("root") is None:
        raise DataError(f"data.root is not set; point it at the {data.get('name', 'LETOR')} dataset as it was unpacked "
                        "(data.root=/path/to/it)")
    root = existing(data["root"], "data.root")
    fold = data.get("fold")
    files = dict(data.get("files") or {})
    held_out = float(data.get("vali_fraction") or 0) > 0
    out = {}
    for split in data.get("splits", ["train", "vali", "test"]):
        if split == "vali" and held_out:
            continue
        pattern = files.get(split) or (f"Fold{fold}/{split}.txt" if fold is not None else f"{split}.txt")
        base = root / str(pattern).format(fold=fold)
        tried = [base] if base.suffix == ".gz" else [base, base.with_name(base.name + ".gz")]
        found = next((p for p in tried if p.exists()), None)
        if found is None:
            raise DataError(f"{tried[0]}: no such file (nor .gz) for the {split} split; set data.root to the dataset "
                            "as it ships (or data.files.<split>), or data.vali_fraction for a fold without vali")
        out[split] = found
    return out


def _ingest_stats_line(split: str, s: Mapping[str, Any]) -> str:
    note = f", {s['queries_without_relevant']} without a relevant document" + (
        f" ({s['queries_dropped_without_relevant']} dropped)" if s["queries_dropped_without_relevant"] else "")
    return f"ingest {split}: {s['queries']} queries, {s['documents']} documents{note}"


def build_features(data: Mapping[str, Any], out: Path, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Ingest the configured fold into `out` (a features table), with a progress bar over the text."""
    splits = letor_splits(data)
    total = sum(p.stat().st_size for p in splits.values()) if all(p.suffix != ".gz" for p in splits.values()) else None
    with tqdm(total=total, unit="B", unit_scale=True, desc="ingest", disable=not progress, file=sys.stderr,
              mininterval=1.0, dynamic_ncols=True) as bar:
        return ingest_letor(
            splits, out,
            num_features=data.get("num_features"),
            normalization=data.get("normalization", "none"),
            log1p=bool(data.get("log1p", False)),
            drop_eval_queries_without_relevant=bool(data.get("drop_eval_queries_without_relevant", False)),
            sparse=data.get("sparse", "auto"),
            vali_fraction=float(data.get("vali_fraction") or 0),
            seed=seed,
            on_bytes=bar.update,
        )


def ingest(data: Mapping[str, Any], run_dir: str | Path, *, seed: int = 0, cache: Mapping[str, Any] | None = None,
           progress: bool = True) -> FeatureTable:
    """`run_dir/features.parquet` from the configured LETOR fold, read back. With `cache` enabled
    the table is built once per (data settings, input files) and linked into run_dir."""
    out = Path(run_dir) / "features.parquet"
    if cache is not None and cache.get("enabled", True):
        splits = letor_splits(data)
        entry, hit = cached_features(data, seed, cache, splits.values(), lambda tmp: write_json(
            build_features(data, tmp / "features.parquet", seed, progress), tmp / "ingest.json"))
        stats = json.loads((entry / "ingest.json").read_text())
        link_or_copy(entry / "features.parquet", out)
        print(f"ingest: {'cached' if hit else 'built'} {entry / 'features.parquet'}", file=sys.stderr)
    else:
        stats = build_features(data, out, seed, progress)
    for split, s in stats["splits"].items():
        print(_ingest_stats_line(split, s), file=sys.stderr)
    return read_features(out)


def click_model_from_config(cm: Mapping[str, Any], features: FeatureTable):
    params = {k: v for k, v in cm.items() if k != "name"}
    y_max = int(features.labels[features.labels >= 0].max())
    return make_click_model(cm["name"], y_max=y_max, **params)


def simulate(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """LETOR fold -> features.parquet -> clicks.parquet + propensities.json + simulation.json."""
    return simulate_on(ingest(cfg["data"], run_dir, seed=int(cfg["seed"])), cfg, run_dir)


def simulate_on(features: FeatureTable, cfg: Mapping[str, Any], run_dir: str | Path, progress: bool = True) -> dict[str, Any]:
    """Simulate clicks on an ingested features table (see `simulate`)."""
    run_dir = Path(run_dir)
    model = click_model_from_config(cfg["click_model"], features)
    sim = cfg["simulation"]
    with tqdm(total=int(sim["sessions"]), unit="session", unit_scale=True, desc="simulate", file=sys.stderr,
              disable=not progress, mininterval=1.0, dynamic_ncols=True) as bar:
        summary = run_simulation(
            features, model, run_dir,
            sessions=int(sim["sessions"]), list_size=int(sim["list_size"]), seed=int(cfg["seed"]),
            policy_fraction=float(sim["policy_fraction"]), policy_min_queries=int(sim["policy_min_queries"]),
            config=dict(cfg), logging_policies=int(sim.get("logging_policies", 1)),
            logging=str(sim.get("logging", "deterministic")), temperature=float(sim.get("temperature", 1.0)),
            progress=bar.update,
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
        return existing(log["path"], "log.path"), None
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
        existing(fpath, "features.path") if fpath else None,
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
