"""Content-addressed cache of built data: runs that share (dataset, fold, click model, simulation,
seed, ETL settings) share one click log and session table, and runs that share the data settings
share one features table, so a sweep over methods repeats only training.

Keys cover the settings, the identity of each input file (size, mtime and a hash of its first and
last MiB: a replaced file gives a new key) and a hash of the code that builds the entries."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import ultr

CACHE_VERSION = 3  # bump when an entry's layout changes (3: features entries of their own)
_BUILDERS = ("data", "simulation")  # packages under ultr/ whose source is part of every key


def file_identity(path: str | Path, edge: int = 1 << 20) -> dict[str, Any]:
    """Size, mtime and a hash of the first and last `edge` bytes: cheap on multi-GB files, and a
    replaced or edited file changes at least its mtime."""
    path = Path(path)
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        h.update(fh.read(edge))
        if st.st_size > edge:
            fh.seek(max(edge, st.st_size - edge))
            h.update(fh.read(edge))
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "edges": h.hexdigest()[:16]}


def code_version() -> str:
    """The package version plus a hash of the code that builds cache entries: an edited simulator
    or ETL never reuses entries the old code built."""
    h = hashlib.sha256(ultr.__version__.encode())
    for pkg in _BUILDERS:
        for src in sorted((Path(ultr.__file__).parent / pkg).rglob("*.py")):
            h.update(src.read_bytes())
    return h.hexdigest()[:16]


def _digest(spec: Mapping[str, Any]) -> str:
    spec = {"version": CACHE_VERSION, "code": code_version(), **spec}
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:20]


def features_key(data: Mapping[str, Any], seed: int, inputs: Iterable[str | Path]) -> str:
    """The features table depends on the data settings, the input files, and the seed only
    through `vali_fraction`'s held-out queries."""
    spec = {"data": {k: v for k, v in data.items() if k != "root"}, "inputs": [file_identity(p) for p in inputs],
            "seed": seed if float(data.get("vali_fraction") or 0) > 0 else None}
    return "features-" + _digest(spec)


def cache_key(cfg: Mapping[str, Any], inputs: Iterable[str | Path] = ()) -> str:
    spec = {
        "features": features_key(cfg["data"], int(cfg["seed"]), inputs), "click_model": cfg["click_model"],
        "simulation": cfg["simulation"], "seed": cfg["seed"], "etl": cfg["etl"],
    }
    return _digest(spec)


def cache_root(cfg: Mapping[str, Any]) -> Path:
    root = Path(os.environ.get("ULTR_CACHE") or cfg.get("cache", {}).get("dir") or ".cache/ultr").expanduser()
    return root if root.is_absolute() else Path.cwd() / root


def cached_features(data: Mapping[str, Any], seed: int, cache: Mapping[str, Any], inputs: Iterable[str | Path],
                    build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The features entry for these data settings and input files (see `cached_dir`)."""
    return cached_entry(cache_root({"cache": cache}) / features_key(data, seed, inputs), build)


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (a multi-GB table is not copied per run), or a copy across file systems."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def cached_dir(cfg: Mapping[str, Any], build: Callable[[Path], None], inputs: Iterable[str | Path] = ()) -> tuple[Path, bool]:
    """The cache entry for cfg and its input files (see `cached_entry`)."""
    return cached_entry(cache_root(cfg) / cache_key(cfg, list(inputs)), build)


def cached_entry(final: Path, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """The cache entry at `final`, built by `build(tmp_dir)` if missing. Returns (dir, was_cached).

    Entries appear by an atomic rename of a finished directory; parallel sweep jobs that build the
    same entry race harmlessly (the loser discards its copy)."""
    root = final.parent
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
