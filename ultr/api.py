"""A small Python API for notebooks and other tools: fit on a click log + features table, score
documents, read the propensity curve. It drives the same ETL and training code as the pipelines.

    from ultr.api import fit
    model = fit("clicks.parquet", "features.parquet", method="dla", steps=2000)
    scores = model.predict("features.parquet", split="test")   # one score per row of that split
    model.propensity()                                          # examination relative to position 1
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np
from ultr.data.batching import query_lists, read_sessions
from ultr.data.etl import run_etl
from ultr.data.letor import FeatureTable, read_features
from ultr import methods
from ultr.config import compose
from ultr.paths import existing
from ultr.train.method import TrainedMethod, needs_train_lists, train_method
from ultr.workflows import etl_config


@dataclass
class FittedRanker:
    trained: TrainedMethod
    config: Mapping[str, Any]
    normalization: Mapping[str, Any]
    etl_stats: Mapping[str, Any]  # what the ETL kept and dropped (e.g. sessions on vali/test queries)

    def predict(self, features: str | Path | FeatureTable | np.ndarray, split: str | None = None) -> np.ndarray:
        """Scores for feature rows: an array [N, F] (already transformed like the training table),
        or a features table (optionally one split), in its row order."""
        if isinstance(features, (str, Path)):
            features = read_features(features)
        if isinstance(features, FeatureTable):
            x = features.features if split is None else features.features[features.rows(split)]
        else:
            x = np.asarray(features, dtype=np.float32)
        params = self.trained.fit.best_state.ranker
        idx = jnp.arange(len(x), dtype=jnp.int32)[None, :]
        return np.asarray(self.trained.steps.score(params, idx, jnp.asarray(x)))[0]

    def propensity(self) -> np.ndarray | None:
        """Estimated examination of positions 1..K relative to position 1 (DLA only, else None)."""
        return None if self.trained.propensity is None else np.asarray(self.trained.propensity)


def fit(
    clicks: str | Path,
    features: str | Path,
    *,
    method: str = "dla",
    steps: int | None = None,
    overrides: list[str] | None = None,
    columns: Mapping[str, str] | None = None,
    work_dir: str | Path | None = None,
) -> FittedRanker:
    """Train `method` (any of `ultr.methods.names()` that needs no known inputs: dla, naive,
    oracle, pairwise, rem, two_tower, ...) on a click log whose documents are in `features`.

    This is one run of the method, the same as the row of that name in `python -m
    pipelines.experiment clicks=... algorithm.methods=[<method>]` with the same overrides: the same
    data, settings, seed and early stopping give the same model. The command line's `selected` row
    (the reference DLA, or the naive ranker where it beats DLA on validation beyond noise) is a
    choice between two such runs, not a method: train both here and compare them on validation.

    Model selection uses the features table's `vali` split. Only sessions on `train` queries are
    trained on (the others are dropped, counted in `etl_stats`, and warned about) unless the
    overrides say `etl.allow_eval_queries=true`. `overrides` are `key=value` (or `group=option`)
    overrides of the experiment config (e.g. ["model.hidden=[64]", "trainer.batch_size=128"]).
    `columns` maps the log's column names (e.g. {"click": "clicked"}), as `log.columns.<name>=...`
    does in the overrides. The session tables are built in `work_dir`, or in a temporary folder
    that is removed before `fit` returns, whether it succeeds or fails.
    """
    methods.get(method)
    cfg = compose("experiment", list(overrides or []) + [f"algorithm.methods=[{method}]", "trainer.progress=false",
                                                         "trainer.checkpoint=false"])
    if steps is not None:
        cfg["trainer"]["steps"] = int(steps)
    cfg = copy.deepcopy(cfg)
    mapping = {**cfg["log"]["columns"], **(columns or {})}
    clicks, features = existing(clicks, "clicks"), existing(features, "features")
    if work_dir is not None:
        return _fit_in(Path(work_dir), clicks, features, method, cfg, mapping)
    with tempfile.TemporaryDirectory(prefix="ultr-fit-") as work:
        return _fit_in(Path(work), clicks, features, method, cfg, mapping)


def _fit_in(work: Path, clicks: Path, features: Path, method: str, cfg: dict[str, Any],
            columns: Mapping[str, str | None]) -> FittedRanker:
    table = read_features(features)
    stats = run_etl(clicks, features, work, etl_config(cfg["etl"]), columns=columns)
    sessions = read_sessions(work)  # in memory: the folder may go once this returns
    train_lists = query_lists(table, "train") if needs_train_lists([method], cfg) else None
    trained = train_method(method, cfg, table, jnp.asarray(table.features), sessions, train_lists, query_lists(table, "vali"))
    return FittedRanker(trained, cfg, table.meta.get("normalization", {}), stats)
