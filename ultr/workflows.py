"""Library functions behind each pipeline: plain dict config in, files in `run_dir` out.

The Hydra entry points in `pipelines/` only compose the config and call one of these, so tests
and notebooks run the same code without Hydra.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from tqdm import tqdm

from ultr.cache import cached_features, link_or_copy
from ultr.data.etl import EtlConfig, print_stats, run_etl
from ultr.data.batching import BatchIterator, Sessions, read_sessions, session_arrays
from ultr.data.io import atomic_path, write_json
from ultr.data.readers import ReaderPolicy, convert_log
from ultr.errors import DataError
from ultr.data.letor import FeatureTable, ingest_letor, read_features
from ultr.data.clicklog import scan_click_log
from ultr.data.log_features import features_from_log
from ultr.estimation.propensity import adjacent_chain, all_pairs, count_impressions, pairwise_ratios, pbm_em
from ultr.paths import existing, resolve
from ultr.report import plot_propensity
from ultr.click_models.simulator import click_model_from_config
from ultr.simulation.simulate import run_simulation
from ultr.train.build import build_steps
from ultr.train.loop import fit, read_propensity


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


def simulate(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """LETOR fold -> features.parquet -> clicks.parquet + propensities.json + simulation.json."""
    return simulate_on(ingest(cfg["data"], run_dir, seed=int(cfg["seed"])), cfg, run_dir, announce_path=True)


def simulate_on(features: FeatureTable, cfg: Mapping[str, Any], run_dir: str | Path, progress: bool = True,
                announce_path: bool = False) -> dict[str, Any]:
    """Simulate clicks on an ingested features table (see `simulate`). `announce_path` prints where
    the log went (not for a cache entry's build folder, which is renamed once complete)."""
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
            progress=bar.update, session_split=sim.get("session_split"), stream=int(sim.get("stream", 1)),
        )
    where = f" -> {run_dir / 'clicks.parquet'}" if announce_path else ""
    print(f"simulated {summary['sessions']} sessions, {summary['impressions']} impressions, "
          f"{summary['clicks']} clicks in {summary['seconds_simulate']}s{where}", file=sys.stderr)
    return summary


def etl_config(etl: Mapping[str, Any]) -> EtlConfig:
    return EtlConfig(**{k: v for k, v in etl.items() if k in EtlConfig.__dataclass_fields__})


def log_paths(path: str, what: str = "log.path") -> list[Path]:
    """A file, a directory of parts, or a glob pattern -> the files, sorted."""
    p = resolve(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
    elif any(ch in str(path) for ch in "*?["):
        files = sorted(Path(f) for f in glob.glob(str(p)))
    else:
        files = [p]
    if not files or not files[0].exists():
        raise DataError(f"{what} {path!r}: no such click-log file(s): looked for {p} (relative paths resolve against "
                        f"the current directory, {Path.cwd()}); fix the path")
    return files


def reader_policy(log: Mapping[str, Any]) -> ReaderPolicy:
    return ReaderPolicy(**{k: v for k, v in log.items() if k in ReaderPolicy.__dataclass_fields__})


def mapped_columns(log: Mapping[str, Any]) -> dict[str, str] | None:
    """`log.columns` as scan_click_log takes it: only the names set (the config lists every one, null
    = as is); none for real-log formats, whose readers write the schema's names."""
    if log.get("format", "generic") != "generic":
        return None
    return {k: v for k, v in (log.get("columns") or {}).items() if v} or None


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


def log_features_table(log: Mapping[str, Any], clicks: Path, run_dir: Path,
                       fitted: Mapping[str, Any] | None = None) -> Path:
    """run_dir/features.parquet from the log's own columns (`log.features`; [] = ids only),
    normalised by `fitted` statistics where given (a trained ranker's)."""
    features_from_log(scan_click_log(clicks, mapped_columns(log)), list(log["features"]), run_dir / "features.parquet",
                      source=str(log["path"]), normalization=str(log.get("feature_normalization", "zscore")),
                      log1p=bool(log.get("feature_log1p", True)), on_conflict=str(log.get("on_feature_conflict", "first")),
                      fitted=fitted)
    return run_dir / "features.parquet"


def log_to_sessions(cfg: Mapping[str, Any], run_dir: Path, training: bool = True) -> dict[str, Any]:
    """The configured click log (`log`, converted from its format) and optional features table
    (`features.path`) through the ETL into run_dir; returns the ETL stats (with the reader's)."""
    log = cfg["log"]
    path, reader = prepare_log(log, run_dir)
    fpath = (cfg.get("features") or {}).get("path")
    if not fpath and log.get("features") is not None:
        fpath = log_features_table(log, path, run_dir)
    stats = run_etl(path, existing(fpath, "features.path") if fpath else None, run_dir, etl_config(cfg["etl"]),
                    columns=log.get("columns") or None)
    if reader is not None:
        stats["reader"], stats["quarantined"] = reader, reader["quarantined"]
        write_json(stats, run_dir / "stats.json")
    print_stats(stats, file=sys.stderr, training=training)
    return stats


def etl(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """Click log (+ features table) -> run_dir/sessions/*.parquet + stats.json."""
    return log_to_sessions(cfg, Path(run_dir))


def dla_propensity(sessions: Sessions, cfg: Mapping[str, Any]) -> np.ndarray:
    """DLA with an ID ranker (one score per query-document pair): the propensity read-out."""
    clicked = sessions.click.sum(axis=1) > 0  # zero-click sessions carry no DLA gradient
    if not clicked.any():
        raise DataError("no session has a click: DLA cannot estimate position bias from this log")
    arrays = {k: v[clicked] for k, v in session_arrays(sessions).items()}
    d, K = cfg["dla"], sessions.list_size
    steps = build_steps("dla", cfg, 0, K, num_items=int(sessions.doc_index.max()) + 1)
    result = fit(
        steps, BatchIterator(arrays, int(d["batch_size"]), int(cfg["seed"])), None, None,
        train_steps=int(d["steps"]), eval_every=int(d["steps"]), patience=None,
        seed=int(cfg["seed"]), list_size=K, progress=bool(d.get("progress", True)), name="dla",
    )
    return read_propensity(steps, result.final_state.propensity, K, result.contexts)


# Position-bias estimators by name: (sessions, impression counts, harvested ratios and weights, cfg) -> curve.
ESTIMATORS: dict[str, Callable[..., np.ndarray]] = {
    "pbm_em": lambda s, counts, ratio, weight, cfg: pbm_em(counts, iterations=int(cfg.get("em_iterations", 200))),
    "harvest_adjacent": lambda s, counts, ratio, weight, cfg: adjacent_chain(ratio),
    "harvest_all_pairs": lambda s, counts, ratio, weight, cfg: all_pairs(ratio, weight),
    "dla": lambda s, counts, ratio, weight, cfg: dla_propensity(s, cfg),
}


def write_propensity_estimates(curves: Mapping[str, np.ndarray], stats: Mapping[str, Any], pairs_with_evidence: int,
                               run_dir: Path) -> dict[str, Any]:
    """propensities.{json,csv,png} and a Markdown table on stdout."""
    K = len(next(iter(curves.values())))
    out = {
        "positions": list(range(1, K + 1)),
        "estimators": {k: [None if not np.isfinite(x) else float(x) for x in v] for k, v in curves.items()},
        "ctr": [float(x) for x in stats["ctr_per_position"]],
        "harvest_pairs_with_evidence": pairs_with_evidence,
        "sessions": stats["sessions"],
    }
    write_json(out, run_dir / "propensities.json")
    header = "position," + ",".join(curves) + ",ctr"
    rows = [f"{k + 1}," + ",".join(f"{curves[e][k]:.4f}" for e in curves) + f",{out['ctr'][k]:.4f}" for k in range(K)]
    with atomic_path(run_dir / "propensities.csv") as tmp:
        tmp.write_text("\n".join([header, *rows]) + "\n")
    ctr = np.asarray(out["ctr"])
    plot_propensity({k: list(v) for k, v in curves.items()}, None, run_dir / "propensities.png",
                    reference={"CTR relative to position 1 (not debiased)": list(ctr / ctr[0])})
    print("\n| " + " | ".join(header.split(",")) + " |\n|" + "---|" * (len(curves) + 2), file=sys.stdout)
    for r in rows:
        print("| " + " | ".join(r.split(",")) + " |", file=sys.stdout)
    print(f"\n{pairs_with_evidence} of {K * (K - 1)} position pairs have intervention evidence; run directory: {run_dir}",
          file=sys.stdout)
    return out


def estimate_bias(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """One log in, every position-bias estimator side by side out: propensities.{json,csv,png}
    ({"positions": [1..K], "estimators": {name: [relative examination]}}) and the ETL outputs."""
    run_dir = Path(run_dir)
    wanted = list(cfg["estimators"])
    if unknown := [e for e in wanted if e not in ESTIMATORS]:
        raise DataError(f"estimators {unknown} unknown; choose from {list(ESTIMATORS)}")
    stats = log_to_sessions(cfg, run_dir)
    sessions = read_sessions(run_dir)
    if (cfg.get("features") or {}).get("path"):
        # Propensity estimators work per (query, document): re-key feature rows to pair ids.
        sessions.doc_index = np.where(sessions.mask, sessions.doc_index, -1)
    counts = count_impressions(sessions)
    ratio, weight = pairwise_ratios(counts)
    curves = {name: ESTIMATORS[name](sessions, counts, ratio, weight, cfg) for name in wanted}
    return write_propensity_estimates(curves, stats, int((weight > 0).sum()), run_dir)
