"""Training one method on one dataset: the data it trains on, and a run's settings as overrides of
the config. The experiment and the Python API both call `train_method`; `ultr.train.selection` chooses
among the runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import jax
import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ultr import methods
from ultr.data.batching import BatchIterator, QueryLists, Sessions, exposure_arrays, list_arrays, session_arrays
from ultr.data.letor import FeatureTable
from ultr.errors import DataError
from ultr.train.build import build_steps
from ultr.train.loop import FitResult, fit, read_propensity, tail_average_curve
from ultr.train.steps import Steps
from ultr.train.validation import LabelValidation, Validation


@dataclass
class TrainedMethod:
    name: str
    steps: Steps
    fit: FitResult
    propensity: np.ndarray | None  # relative examination per position, for methods that learn or read one
    batch_size: int  # rows per step: sessions, or candidate lists for list methods


def training_arrays(name: str, cfg: Mapping[str, Any], sessions: Sessions | None, train_lists: QueryLists | None,
                    known: Mapping[str, np.ndarray] | None) -> tuple[dict[str, np.ndarray], int]:
    """(arrays, global batch size) of what method `name` trains on: sessions, candidate lists with
    aggregated click evidence, or labelled candidate lists."""
    method, tr = methods.get(name), cfg["trainer"]
    kind = method.data_kind(cfg["algorithm"].get(name) or {})
    if sessions is not None and not method.unclicked_evidence:
        # A session without clicks adds nothing to these losses (all targets 0): skip its batch slots.
        sessions = sessions.with_clicks()
    list_batch = int(tr.get("oracle_batch_size", 32))
    if kind == methods.SESSIONS:
        if sessions is None or len(sessions) == 0:
            raise DataError(f"{name}: no training sessions with clicks; simulate more sessions or check the click log")
        return session_arrays(sessions), int(tr["batch_size"])
    if kind == methods.LISTS:
        if sessions is None or len(sessions) == 0 or train_lists is None:
            raise DataError(f"{name}: needs training sessions with clicks and the training split's candidate lists")
        return exposure_arrays(train_lists, sessions, known["alpha"], known.get("beta")), list_batch
    if train_lists is None:
        raise DataError(f"{name}: needs labelled training lists (a LETOR features table with a train split)")
    return list_arrays(train_lists), list_batch


def as_validation(vali: QueryLists | Validation | None, features: FeatureTable) -> Validation | None:
    """Labelled vali lists become label validation (nDCG@10), checked to have a relevant document:
    without one the score is undefined and training would silently return the untrained state."""
    if not isinstance(vali, QueryLists):
        return vali
    if not ((vali.label > 0) & vali.mask).any():
        raise DataError(f"{features.path}: the vali split has no query with a relevant document, so validation nDCG@10 "
                        "is undefined; hold out labelled training queries with data.vali_fraction=0.2, or use a fold whose "
                        "vali split has labels, or validate on held-out clicks: validation.source=clicks")
    return LabelValidation(vali, float(features.labels.max()))


def needs_train_lists(names: list[str], cfg: Mapping[str, Any]) -> bool:
    return any(methods.get(m).data_kind(cfg["algorithm"].get(m) or {}) != methods.SESSIONS for m in names)


def train_method(name: str, cfg: Mapping[str, Any], features: FeatureTable, features_dev: jax.Array,
                 sessions: Sessions | None, train_lists: QueryLists | None, vali: QueryLists | Validation, *, writer: Any = None,
                 known: Mapping[str, np.ndarray] | None = None, checkpoint_dir: Path | None = None,
                 tag: str | None = None) -> TrainedMethod:
    """`tag` names the run in progress bars and TensorBoard (default: the method)."""
    tr, list_size, seed = cfg["trainer"], int(cfg["etl"]["list_size"]), int(cfg["seed"])
    vali = as_validation(vali, features)
    arrays, global_batch = training_arrays(name, cfg, sessions, train_lists, known)
    # Several processes: each reads its own slice of the rows and feeds its share of the batch.
    pc, pid = jax.process_count(), jax.process_index()
    if pc > 1:
        arrays = {k: v[pid::pc] for k, v in arrays.items()}
    batches = BatchIterator(arrays, global_batch // pc, seed + pid)
    steps = build_steps(name, cfg, features.num_features, list_size, num_items=len(features.query_ids), known=known)
    result = fit(
        steps, batches, features_dev, vali,
        train_steps=int(tr["steps"]), eval_every=int(tr["eval_every"]),
        patience=tr.get("patience"), propensity_tol=tr.get("propensity_tol"),
        device_data_mb=tr.get("device_data_mb", 1024), seed=seed, list_size=list_size, log_every=int(tr.get("log_every", 50)),
        writer=writer, progress=bool(tr.get("progress", True)), name=tag or name, global_batch=global_batch,
        checkpoint_dir=checkpoint_dir, checkpoint_every=int(tr.get("checkpoint_every", 0) or 0), resume=bool(tr.get("resume", False)),
    )
    return TrainedMethod(name, steps, result, final_curve(steps, result, tr, list_size), global_batch)


def final_curve(steps: Steps, result: FitResult, trainer: Mapping[str, Any], list_size: int) -> np.ndarray | None:
    """The reported curve: the tail average of the evaluations' curves (`trainer.propensity_average`),
    else the final state's read-out; None for methods without one."""
    average = int(trainer.get("propensity_average") or 1)
    if steps.learns_propensity and average > 1 and (curve := tail_average_curve(result.history, average)) is not None:
        return curve
    if steps.propensity_curve is None:
        return None
    return read_propensity(steps, result.final_state.propensity, list_size, result.contexts)


def with_overrides(cfg: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of `cfg` with `key.path=value` overrides applied (values parsed as on the command
    line). Only existing keys can be set (struct mode), so a typo fails instead of training the
    default."""
    if bad := [o for o in overrides if "=" not in str(o)]:
        raise DataError(f"run override {bad[0]!r} is not key=value")
    base = OmegaConf.create(dict(cfg))
    OmegaConf.set_struct(base, True)
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist([str(o) for o in overrides]))
    except OmegaConfBaseException as e:
        raise DataError(f"run override in {list(overrides)}: {str(e).splitlines()[0]}") from e
    return OmegaConf.to_container(merged)  # type: ignore[return-value]
