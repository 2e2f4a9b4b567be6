"""Content-addressed cache of simulated data: runs that share (dataset, fold, click model,
simulation, seed, ETL settings) share one features table, click log and session table, so a sweep
over methods repeats only training."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from ultr.paths import PROJECT_ROOT

CACHE_VERSION = 2  # bump when the simulation or ETL output format changes (2: stats.json position_spread)


def cache_key(cfg: Mapping[str, Any]) -> str:
    data = dict(cfg["data"])
    data["root"] = str(Path(data["root"]).resolve()) if Path(data["root"]).exists() else data["root"]
    spec = {
        "version": CACHE_VERSION, "data": data, "click_model": cfg["click_model"], "simulation": cfg["simulation"],
        "seed": cfg["seed"], "etl": cfg["etl"],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cache_root(cfg: Mapping[str, Any]) -> Path:
    root = Path(os.environ.get("ULTR_CACHE") or cfg.get("cache", {}).get("dir") or ".cache/ultr").expanduser()
    return root if root.is_absolute() else PROJECT_ROOT / root


def cached_dir(cfg: Mapping[str, Any], build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The cache entry for cfg, built by `build(tmp_dir)` if missing. Returns (dir, was_cached).

    Entries appear by an atomic rename of a finished directory; parallel sweep jobs that build the
    same entry race harmlessly (the loser discards its copy)."""
    root = cache_root(cfg)
    final = root / cache_key(cfg)
    if (final / "DONE").exists():
        return final, True
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        build(tmp)
        (tmp / "DONE").write_text(json.dumps({"key": final.name}) + "\n")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "DONE").exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final, False
