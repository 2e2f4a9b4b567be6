"""`pipelines.evaluate`: trained rankers named by their runs, compared on held-out sessions of a
click log by `ultr.evaluation.compare` (counterfactual estimates with bootstrap intervals)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ultr.api import Ranker, load
from ultr.errors import DataError
from ultr.evaluation.compare import compare


def evaluate(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """`pipelines.evaluate`: the rankers named by `cfg["rankers"]` (RUN:method, checkpoints) compared
    on the held-out log (`ultr.evaluation.compare`)."""
    specs = [str(s) for s in cfg.get("rankers") or []]
    if not specs:
        raise DataError("rankers=[RUN_DIR:method, ...] is empty: name the experiment runs (or checkpoints) to evaluate")
    rankers = [load(s) for s in specs]
    return compare(rankers, ranker_labels(specs, rankers), cfg, run_dir)


def ranker_labels(specs: list[str], rankers: list[Ranker]) -> list[str]:
    """Each ranker's name, made unique by its run directory where two share one."""
    names = [r.name for r in rankers]
    return [n if names.count(n) == 1 else f"{n} ({Path(str(s).split(':')[0]).name})" for n, s in zip(names, specs)]


