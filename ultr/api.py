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
from ultr.training import TrainedMethod, needs_train_lists, train_method
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
    work_dir: str | Path | None = None,
) -> FittedRanker:
    """Train `method` (any of `ultr.methods.names()` that needs no known inputs: dla, naive,
    oracle, pairwise, rem, two_tower, ...) on a click log whose documents are in `features`.

    Model selection uses the features table's `vali` split. Only sessions on `train` queries are
    trained on (the others are dropped, counted in `etl_stats`, and warned about) unless the
    overrides say `etl.allow_eval_queries=true`. `overrides` are `key=value` (or `group=option`)
    overrides of the experiment config (e.g. ["model.hidden=[64]", "trainer.batch_size=128"]).
    """
    methods.get(method)
    cfg = compose("experiment", list(overrides or []) + [f"algorithm.methods=[{method}]", "trainer.progress=false",
                                                         "trainer.checkpoint=false"])
    if steps is not None:
        cfg["trainer"]["steps"] = int(steps)
    cfg = copy.deepcopy(cfg)
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="ultr-fit-"))
    clicks, features = existing(clicks, "clicks"), existing(features, "features")
    table = read_features(features)
    stats = run_etl(clicks, features, work, etl_config(cfg["etl"]))
    sessions = read_sessions(work)
    train_lists = query_lists(table, "train") if needs_train_lists([method], cfg) else None
    trained = train_method(method, cfg, table, jnp.asarray(table.features), sessions, train_lists, query_lists(table, "vali"))
    return FittedRanker(trained, cfg, table.meta.get("normalization", {}), stats)
