"""Training one method on one dataset: the data it trains on, model selection over settings, and
the severe-bias fallback. The experiment and the Python API both call `train_method`."""

from __future__ import annotations

import sys
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
from ultr.metrics import propensity_warning
from ultr.train.build import build_steps
from ultr.train.loop import FitResult, fit, read_propensity, tail_average_curve
from ultr.train.steps import Steps


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


def needs_train_lists(names: list[str], cfg: Mapping[str, Any]) -> bool:
    return any(methods.get(m).data_kind(cfg["algorithm"].get(m) or {}) != methods.SESSIONS for m in names)


def train_method(name: str, cfg: Mapping[str, Any], features: FeatureTable, features_dev: jax.Array,
                 sessions: Sessions | None, train_lists: QueryLists | None, vali: QueryLists, *, writer: Any = None,
                 known: Mapping[str, np.ndarray] | None = None, checkpoint_dir: Path | None = None,
                 tag: str | None = None) -> TrainedMethod:
    """`tag` names the run in progress bars and TensorBoard (default: the method)."""
    tr, list_size, seed = cfg["trainer"], int(cfg["etl"]["list_size"]), int(cfg["seed"])
    arrays, global_batch = training_arrays(name, cfg, sessions, train_lists, known)
    # Several processes: each reads its own slice of the rows and feeds its share of the batch.
    pc, pid = jax.process_count(), jax.process_index()
    if pc > 1:
        arrays = {k: v[pid::pc] for k, v in arrays.items()}
    batches = BatchIterator(arrays, global_batch // pc, seed + pid)
    steps = build_steps(name, cfg, features.num_features, list_size, known=known)
    result = fit(
        steps, batches, features_dev, vali,
        max_label=float(features.labels.max()), train_steps=int(tr["steps"]), eval_every=int(tr["eval_every"]),
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
        raise DataError(f"selection candidate override {bad[0]!r} is not key=value")
    base = OmegaConf.create(dict(cfg))
    OmegaConf.set_struct(base, True)
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist([str(o) for o in overrides]))
    except OmegaConfBaseException as e:
        raise DataError(f"selection candidate override in {list(overrides)}: {str(e).splitlines()[0]}") from e
    return OmegaConf.to_container(merged)  # type: ignore[return-value]


def _run_record(t: TrainedMethod) -> dict[str, Any]:
    return {"vali_ndcg@10": t.fit.best_vali, "best_step": t.fit.best_step,
            **({"propensity": [float(v) for v in t.propensity]} if t.propensity is not None else {})}


def train_selected(name: str, cfg: Mapping[str, Any], *args: Any, checkpoint_dir: Path, **kw: Any
                   ) -> tuple[TrainedMethod, dict[str, Any] | None]:
    """Train `name` once, or, where `selection.methods` lists it, once per `selection.candidates`
    entry (a list of overrides), keeping the candidate with the best validation nDCG@10: model
    selection on the validation split, as for the training step. Returns the kept run and a record
    of every candidate (None without selection)."""
    sel = cfg.get("selection") or {}
    candidates = [list(c or []) for c in sel.get("candidates") or []]
    if name not in (sel.get("methods") or []) or not candidates:
        return train_method(name, cfg, *args, checkpoint_dir=checkpoint_dir, **kw), None
    runs = [train_method(name, with_overrides(cfg, o), *args, tag=f"{name}[{i}]",
                         checkpoint_dir=checkpoint_dir.with_name(f"{checkpoint_dir.name}-{i}"), **kw)
            for i, o in enumerate(candidates)]
    best = max(range(len(runs)), key=lambda i: runs[i].fit.best_vali)  # first of equals
    return runs[best], {"chosen": best, "by": "vali ndcg@10", "candidates": [
        {"overrides": o, **_run_record(t)} for t, o in zip(runs, candidates)]}


def fallback_trigger(trained: TrainedMethod, fb: Mapping[str, Any]) -> tuple[str | None, bool]:
    """(why to train again, whether the curve diverged): the curve diverged (`propensity_warning`),
    or its deepest position is examined less than `fb.severe_below` as often as position 1."""
    if trained.name not in (fb.get("methods") or []) or trained.propensity is None or not trained.steps.learns_propensity:
        return None, False
    warning = propensity_warning(trained.propensity)
    deepest = float(trained.propensity[-1] / trained.propensity[0])
    if warning is not None:
        return warning, True
    if deepest < float(fb.get("severe_below") or 0.0):
        return f"severe bias: the learned examination at position {len(trained.propensity)} is {deepest:.3g} of position 1", False
    return None, False


def train_with_fallback(name: str, cfg: Mapping[str, Any], *args: Any, checkpoint_dir: Path, **kw: Any
                        ) -> tuple[TrainedMethod, dict[str, Any] | None, dict[str, Any] | None]:
    """`train_selected`; then, for a method `fallback.methods` lists, once more with
    `fallback.overrides` (the severe-bias settings) when `fallback_trigger` says so. A diverged
    first run gives way to the retrained one (unless that diverges too); otherwise the better of
    the two on validation nDCG@10 is kept. Returns (kept run, selection record, fallback record)."""
    trained, selection = train_selected(name, cfg, *args, checkpoint_dir=checkpoint_dir, **kw)
    fb = cfg.get("fallback") or {}
    trigger, diverged = fallback_trigger(trained, fb)
    if trigger is None:
        return trained, selection, None
    # On top of the selected candidate's own overrides, so retraining keeps what selection chose.
    chosen = selection["candidates"][selection["chosen"]]["overrides"] if selection else []
    overrides = [*map(str, chosen), *(str(o) for o in fb.get("overrides") or [])]
    print(f"{name}: {'the learned curve diverged' if diverged else 'severe bias'}; training again with the severe-bias "
          f"settings {overrides}", file=sys.stderr)
    again = train_method(name, with_overrides(cfg, overrides), *args, tag=f"{name}[fallback]",
                         checkpoint_dir=checkpoint_dir.with_name(f"{checkpoint_dir.name}-fallback"), **kw)
    again_diverged = propensity_warning(again.propensity) is not None
    better = again.fit.best_vali > trained.fit.best_vali
    keep_again = (not again_diverged or better) if diverged else (better and not again_diverged)
    record = {"trigger": trigger, "overrides": overrides, "kept": "fallback" if keep_again else "first",
              "runs": {k: _run_record(t) for k, t in (("first", trained), ("fallback", again))}}
    return (again if keep_again else trained), selection, record
