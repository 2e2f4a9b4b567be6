"""A small Python API for notebooks and other tools: fit on a click log + features table, score
documents, read the propensity curve. It drives the same ETL and training code as the pipelines.

    from ultr.api import fit
    model = fit("clicks.parquet", "features.parquet", method="dla", steps=2000)
    scores = model.predict("features.parquet", split="test")   # one score per row of that split
    model.propensity()                                          # examination relative to position 1

    from ultr.api import load
    ranker = load("outputs/experiment/RUN", "dla")  # a run's checkpoint (or RUN:dla, RUN/checkpoints/dla)
    ranker.evaluate("outputs/experiment/RUN/features.parquet", split="test")   # nDCG@10 etc. on labels
    ranker.evaluate(log="heldout.parquet", propensity="SIM_DIR")                # IPS/SNIPS/DR from clicks
"""

from __future__ import annotations

import copy
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ultr.data.batching import query_lists, read_sessions
from ultr.data.etl import run_etl
from ultr.data.letor import FeatureTable, read_features, read_features_meta, table_rows
from ultr import methods
from ultr.config import compose
from ultr.errors import DataError
from ultr.evaluation.compare import compare
from ultr.metrics import evaluate_scores
from ultr.paths import existing
from ultr.train.build import build_steps
from ultr.train.checkpoint import restore_state
from ultr.train.loop import score_lists, score_rows
from ultr.train.method import TrainedMethod, needs_train_lists, train_method, with_overrides
from ultr.train.steps import Steps
from ultr.workflows import etl_config


@dataclass
class Ranker:
    """A trained ranker: its scoring function and parameters, with the run's config and the
    features table's normalisation (which `predict` expects its inputs to have had)."""

    name: str
    steps: Steps
    params: Any
    config: Mapping[str, Any]
    normalization: Mapping[str, Any]
    features_path: str | None = None  # the features table it was trained on (its rows are what it scores)

    def predict(self, features: str | Path | FeatureTable | np.ndarray, split: str | None = None) -> np.ndarray:
        """Scores for feature rows: an array [N, F] (already transformed like the training table),
        or a features table (optionally one split), in its row order."""
        if isinstance(features, (str, Path)):
            features = read_features(features)
        if isinstance(features, FeatureTable):
            x = features.features if split is None else features.features[features.rows(split)]
        else:
            x = np.asarray(features, dtype=np.float32)
        return self.score_rows(np.arange(len(x)), jnp.asarray(x))

    def score_rows(self, rows: np.ndarray, features: jax.Array | None) -> np.ndarray:
        """Scores of rows of a features array already on the device (or id-vocabulary indices)."""
        return score_rows(self.steps, self.params, rows, features)

    def evaluate(self, features: str | Path | FeatureTable | None = None, split: str = "test", *,
                 log: str | Path | None = None, propensity: str | Path | None = None,
                 overrides: Sequence[str] = (), out_dir: str | Path | None = None) -> dict[str, Any]:
        """On labels: mean nDCG@1/3/5/10, ERR@10, MRR and MAP on a labelled split (queries with a
        relevant document). On a click log (`log=PATH`, `propensity=` a source as pipelines.evaluate
        reads it): the counterfactual estimates with their intervals, what evaluation.json holds
        (`overrides`: evaluate-config settings such as "log.format=pyclick"; the report files go
        to `out_dir`, by default a temporary directory)."""
        if log is not None:
            return self._evaluate_log(log, propensity, overrides, out_dir)
        if features is None:
            raise DataError("evaluate: pass a labelled features table, or log=<click log> and propensity=<source>")
        table = read_features(features) if isinstance(features, (str, Path)) else features
        lists = query_lists(table, split)
        scores = score_lists(self.steps, self.params, lists, jnp.asarray(table.features))
        means, _, valid = evaluate_scores(scores, lists.label, lists.mask, float(table.labels.max()))
        return {**means, "queries": int(valid.sum())}


    def _evaluate_log(self, log: str | Path, propensity: str | Path | None, overrides: Sequence[str],
                      out_dir: str | Path | None) -> dict[str, Any]:
        if propensity is None:
            raise DataError("evaluate(log=...) needs propensity=<a simulate folder, click model, estimate_bias or experiment run>")
        cfg = compose("evaluate", [f"log.path={log}", f"propensity.source={propensity}", *overrides])
        if out_dir is not None:
            return compare([self], [self.name], cfg, out_dir)
        with tempfile.TemporaryDirectory(prefix="ultr-evaluate-") as tmp:
            return compare([self], [self.name], cfg, tmp)


@dataclass
class FittedRanker(Ranker):
    trained: TrainedMethod | None = None
    etl_stats: Mapping[str, Any] | None = None  # what the ETL kept and dropped (e.g. sessions on vali/test queries)

    def propensity(self) -> np.ndarray | None:
        """Estimated examination of positions 1..K relative to position 1 (DLA only, else None)."""
        return None if self.trained is None or self.trained.propensity is None else np.asarray(self.trained.propensity)


def load(path: str | Path, method: str | None = None) -> Ranker:
    """The ranker a `pipelines.experiment` run trained: `path` is the run directory (with `method`,
    or `RUN:method`, when it trained several) or one of its `checkpoints/<label>` folders."""
    run_dir, label = _run_and_label(Path(str(path)), method)
    results = json.loads((run_dir / "results.json").read_text())
    entries = results.get("methods", {})
    if label not in entries or "checkpoint" not in entries[label]:
        trained = [k for k, v in entries.items() if "checkpoint" in v]
        raise DataError(f"{run_dir}: no checkpoint of {label!r}; checkpoints here: {trained} "
                        "(runs with trainer.checkpoint=false keep none)")
    entry = entries[label]
    run = entry.get("run") or {}
    name = run.get("method", label)
    cfg = with_overrides(results["config"], list(run.get("overrides", []))) if run.get("overrides") else results["config"]
    features = Path(results.get("data_dir") or run_dir) / "features.parquet"
    meta = read_features_meta(features)
    list_size = int(cfg["etl"]["list_size"])
    placeholders = {k: np.ones(list_size, np.float32) for k in methods.get(name).needs}  # shapes only: not restored
    steps = build_steps(name, cfg, int(meta["num_features"]), list_size, num_items=table_rows(features), known=placeholders)
    like = steps.init(jax.random.PRNGKey(0), 1)
    state = restore_state(entry["checkpoint"], like)
    return Ranker(label, steps, state.ranker, cfg, meta.get("normalization", {}), str(features))


def _run_and_label(path: Path, method: str | None) -> tuple[Path, str]:
    text = str(path)
    if method is None and ":" in text and not Path(text).exists():
        text, method = text.rsplit(":", 1)
    path = existing(text, "ranker")
    if path.parent.name == "checkpoints":
        return path.parent.parent, method or path.name
    if not (path / "results.json").is_file():
        raise DataError(f"{path}: not a finished `pipelines.experiment` run (no results.json); point at its run directory")
    if method is None:
        trained = [k for k, v in json.loads((path / "results.json").read_text())["methods"].items() if "checkpoint" in v]
        if len(trained) != 1:
            raise DataError(f"{path} trained {trained}: name one as {path}:<method>")
        method = trained[0]
    return path, method


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
    return FittedRanker(method, trained.steps, trained.fit.best_state.ranker, cfg, table.meta.get("normalization", {}),
                        str(features), trained=trained, etl_stats=stats)
