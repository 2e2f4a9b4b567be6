"""The training loop: the only place with side effects (progress bar, TensorBoard, validation,
early stopping, checkpoints, resume). Everything it calls is pure."""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ultr.data.batching import BatchIterator
from ultr.errors import DataError
from ultr.train.checkpoint import TrainCheckpoints
from ultr.train.scoring import score_lists, score_rows  # noqa: F401  (re-exported: callers import them from here)
from ultr.train.distributed import Prefetcher, RowIterator, Sharder, data_mesh, device_resident, gather_step, prefetch_depth
from ultr.train.state import TrainState
from ultr.train.steps import Steps
from ultr.train.validation import Validation, mean_score


class NonFiniteLossError(FloatingPointError):
    pass


@dataclass
class FitResult:
    best_state: TrainState  # host copy of the state with the best validation score
    best_step: int
    best_vali: float
    history: list[dict[str, float]] = field(default_factory=list)
    steps_run: int = 0
    seconds: float = 0.0
    compiles: int = 0
    final_state: TrainState | None = None
    resumed_from_step: int | None = None
    contexts: Any = None  # logged sessions a context tower's curve is averaged over (curve_contexts)


def tail_average_curve(history: list[dict[str, Any]], evaluations: int) -> np.ndarray | None:
    """Geometric mean of the propensity curves recorded at the last `evaluations` evaluations
    (Polyak-Ruppert averaging of the iterates); None when no curve was recorded.

    With a fast propensity optimiser the per-position logits keep moving by several percent between
    evaluations around where they settle; the tail average reads where they settle instead of
    wherever the last step left them. The curves come from the history, so a resumed run averages
    the same evaluations as an uninterrupted one."""
    curves = [h["propensity"] for h in history if "propensity" in h][-max(int(evaluations), 1):]
    if not curves:
        return None
    return np.exp(np.mean(np.log(np.asarray(curves, np.float64)), axis=0))


def read_propensity(steps: Steps, prop_params: Any, list_size: int, contexts: Any = None) -> np.ndarray:
    return np.asarray(steps.propensity_curve(prop_params, contexts if steps.uses_context else None))[:list_size]


CURVE_SESSIONS = 16_384  # logged sessions a context tower's curve is averaged over


def curve_contexts(steps: Steps, arrays: Mapping[str, np.ndarray], features: Any) -> Any:
    """The logged sessions a context tower's curve averages over: all of them up to
    CURVE_SESSIONS, else that many spread evenly over the log (a fixed set, so the curves of
    successive evaluations are comparable)."""
    if not steps.uses_context or "doc_index" not in arrays:
        return None
    n = len(arrays["doc_index"])
    rows = np.unique(np.linspace(0, n - 1, min(n, CURVE_SESSIONS)).astype(np.int64))
    return jnp.asarray(arrays["doc_index"][rows]), jnp.asarray(arrays["mask"][rows]), features


@dataclass
class _Watch:
    """The loop's early-stopping state (checkpointed with the model, so a resumed run stops where an
    uninterrupted one would)."""

    bad_evals: int = 0
    ranker_done: bool = False  # patience ran out: later evaluations no longer change the kept ranker
    last_vali: float = float("nan")
    last_curve: np.ndarray | None = None
    curve_change: float = math.inf
    stopped: bool = False

    def meta(self) -> dict[str, Any]:
        return {"bad_evals": self.bad_evals, "ranker_done": self.ranker_done, "last_vali": self.last_vali,
                "last_curve": None if self.last_curve is None else self.last_curve.tolist(),
                "curve_change": self.curve_change if math.isfinite(self.curve_change) else None}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "_Watch":
        w = cls(bad_evals=meta["bad_evals"], ranker_done=bool(meta.get("ranker_done", False)), last_vali=meta["last_vali"])
        if meta.get("last_curve") is not None:
            w.last_curve = np.asarray(meta["last_curve"], np.float64)
            w.curve_change = math.inf if meta.get("curve_change") is None else float(meta["curve_change"])
        return w


def _restore(ckpt: TrainCheckpoints, state: TrainState, best: FitResult, train: BatchIterator) -> tuple[TrainState, _Watch, int]:
    """Continue a killed run: its state, best state, history, early-stopping state and iterator."""
    state, best_state, meta = ckpt.restore(state)
    best.best_state = best_state
    best.best_step, best.best_vali, best.history = meta["best_step"], meta["best_vali"], meta["history"]
    train.restore(meta["iterator"])
    best.resumed_from_step = meta["step"]
    return state, _Watch.from_meta(meta), meta["step"]


def _start(steps: Steps, train: BatchIterator, seed: int, checkpoint_dir: str | Path | None, checkpoint_every: int,
           resume: bool) -> tuple[TrainState, FitResult, _Watch, int, TrainCheckpoints | None]:
    """The initial state, or with `resume` a killed run's; a fresh run clears older checkpoints."""
    state = steps.init(jax.random.PRNGKey(seed), train.batch_size)
    best = FitResult(best_state=jax.device_get(state), best_step=0, best_vali=-math.inf)
    if checkpoint_dir and checkpoint_every and not resume:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # a fresh run must not mix with an older one's steps
    ckpt = TrainCheckpoints(checkpoint_dir) if checkpoint_dir and checkpoint_every else None
    if resume and ckpt is not None and ckpt.latest_step() is not None:
        state, watch, start = _restore(ckpt, state, best, train)
        return state, best, watch, start, ckpt
    return state, best, _Watch(), 0, ckpt


def _save(ckpt: TrainCheckpoints, step: int, state: TrainState, best: FitResult, it_state: Any, watch: _Watch,
          finished: bool) -> None:
    ckpt.save(step, jax.device_get(state), best.best_state, {
        "step": step, "best_step": best.best_step, "best_vali": best.best_vali, "history": best.history,
        "iterator": it_state, **watch.meta(), "finished": bool(finished)})


def _batch_source(steps: Steps, train: BatchIterator, sharder: Sharder, features: Any, device_data_mb: float | None):
    """(batches, step function): training arrays under `device_data_mb` stay on the device and the
    step gathers its rows there; larger ones are batched on the host in a background thread."""
    if device_resident(train.arrays, device_data_mb):
        arrays_dev = sharder.replicate(dict(train.arrays))
        step_fn = gather_step(steps.train_step, sharder)
        # Shipping 1 KB of indices needs no background thread.
        batches = Prefetcher(RowIterator(train), lambda rows: jax.device_put(rows, sharder.batch), 0)
        return batches, lambda state, rows: step_fn(state, arrays_dev, rows, features)
    batches = Prefetcher(train, sharder.put_batch, prefetch_depth())
    return batches, lambda state, batch: steps.train_step(state, batch, features)


def _log_metrics(pending: list, name: str, step: int, best: FitResult, writer: Any, bar: Any, last_vali: float) -> None:
    """Read the pending steps' metrics back (this blocks on the device), fail on a non-finite loss,
    and log the last one."""
    host = jax.device_get(pending)
    for s, m in host:
        loss = float(m["loss"])
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"{name}: loss became {loss} at step {s}; lower optim.learning_rate, set optim.clip_norm, "
                "or check the input features for extreme values"
            )
    if writer is not None:
        for k, v in host[-1][1].items():
            writer.add_scalar(f"{name}/{k}", float(v), step)
    vali = f"{last_vali:.4f}" if math.isfinite(last_vali) else "-"  # "-" until the first evaluation
    bar.set_postfix(loss=f"{float(host[-1][1]['loss']):.4f}", vali_ndcg10=vali, refresh=False)
    bar.update(len(host))
    best.history.append({"step": step, "loss": float(host[-1][1]["loss"])})


def _evaluate(steps: Steps, state: TrainState, step: int, vali: Validation, features: Any, list_size: int, contexts: Any,
              best: FitResult, watch: _Watch, patience: int | None, propensity_tol: float | None, writer: Any, name: str) -> None:
    """The validation score (`vali.metric`) and the learned curve into the history; keep the best
    state; decide whether to stop (patience, and with `propensity_tol` a settled curve)."""
    score = mean_score(*vali.per_query(steps, state.ranker, features))
    if not math.isfinite(score):
        # Kept silently, this would return the untrained initial state as the "best" model.
        raise DataError(f"{name}: validation {vali.metric} is {score} at step {step}: the ranker's scores are not "
                        "finite (lower optim.learning_rate or set optim.clip_norm), or no validation query counts "
                        f"({vali.source})")
    watch.last_vali = score
    best.history[-1][f"vali_{vali.metric}"] = watch.last_vali
    curve = _watch_curve(steps, state, list_size, contexts, best, watch, propensity_tol)
    if writer is not None:
        writer.add_scalar(f"{name}/vali_{vali.metric.replace('@', '_at_')}", watch.last_vali, step)
        for k, v in enumerate(curve if curve is not None else [], start=1):
            writer.add_scalar(f"{name}/propensity/position_{k}", float(v), step)
    _keep_or_count(state, step, best, watch, patience)
    if watch.ranker_done:
        settled = propensity_tol is None or not steps.learns_propensity or watch.curve_change < propensity_tol
        watch.stopped = settled


def _watch_curve(steps: Steps, state: TrainState, list_size: int, contexts: Any, best: FitResult, watch: _Watch,
                 propensity_tol: float | None) -> np.ndarray | None:
    """The learned curve into the history, and its largest relative change since the last evaluation."""
    if not steps.learns_propensity:
        return None
    curve = read_propensity(steps, state.propensity, list_size, contexts).astype(np.float64)
    best.history[-1]["propensity"] = [round(float(v), 7) for v in curve]
    if propensity_tol is not None:
        if watch.last_curve is not None:
            watch.curve_change = float(np.max(np.abs(curve - watch.last_curve) / np.maximum(np.abs(watch.last_curve), 1e-12)))
            best.history[-1]["propensity_change"] = watch.curve_change
        watch.last_curve = curve
    return curve


def _keep_or_count(state: TrainState, step: int, best: FitResult, watch: _Watch, patience: int | None) -> None:
    """Keep the state if it is the best so far, else count an evaluation without improvement.
    Every method's ranker follows this one rule: once `patience` evaluations pass without
    improvement the kept ranker is final, even where training goes on to settle a propensity curve
    (`propensity_tol`). A method evaluated longer would otherwise get more draws at a noisy
    validation maximum, which a selection among methods would then reward."""
    if watch.ranker_done:
        return
    if watch.last_vali > best.best_vali:
        best.best_state, best.best_step, best.best_vali = jax.device_get(state), step, watch.last_vali
        watch.bad_evals = 0
        return
    watch.bad_evals += 1
    watch.ranker_done = patience is not None and watch.bad_evals >= patience


def fit(
    steps: Steps,
    train: BatchIterator,
    features: jax.Array | None,
    vali: Validation | None,
    *,
    train_steps: int,
    eval_every: int,
    patience: int | None,
    seed: int,
    list_size: int,
    log_every: int = 50,
    writer: Any = None,
    progress: bool = True,
    name: str = "",
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    global_batch: int | None = None,
    propensity_tol: float | None = None,
    device_data_mb: float | None = 1024,
) -> FitResult:
    """Train for up to `train_steps`, validating every `eval_every` steps (`vali`: labels or held-out
    clicks, `ultr.train.validation`); keep the best.

    With `vali=None` it trains all steps and keeps the last state.
    Batches are sharded over every device (data parallel; `_batch_source`). With `checkpoint_dir`
    and `checkpoint_every`, `resume=True` continues where a killed run stopped (bitwise on CPU).

    Early stopping follows the ranker's validation score, but a method that learns a propensity
    curve also waits (`propensity_tol`) until the curve has settled: its largest relative change
    between two evaluations is below the tolerance. The ranker's peak often comes long before the
    propensity tower converges (severe bias: the deepest positions see a handful of clicks per
    step), and the curve is read from the final state. The ranker kept is the best one up to where
    `patience` ran out, for every method alike (`_keep_or_count`).
    """
    sharder = Sharder(data_mesh(), global_batch or train.batch_size)
    state, best, watch, start, ckpt = _start(steps, train, seed, checkpoint_dir, checkpoint_every, resume)
    state = sharder.replicate(state)
    features = None if features is None else sharder.replicate(features)
    best.contexts = contexts = curve_contexts(steps, train.arrays, features)
    done_before = start >= train_steps or (resume and ckpt is not None and ckpt.finished())
    t0 = time.perf_counter()
    bar = tqdm(total=train_steps, initial=start, desc=name, disable=not progress, file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
    batches, run_step = _batch_source(steps, train, sharder, features, device_data_mb)
    pending: list[tuple[int, dict[str, jax.Array]]] = []
    step = start
    try:
        for step in range(start + 1, train_steps + 1):
            if done_before:
                break
            batch, it_state = next(batches)
            state, metrics = run_step(state, batch)
            pending.append((step, metrics))
            if step % log_every == 0 or step % eval_every == 0 or step == train_steps:
                _log_metrics(pending, name, step, best, writer, bar, watch.last_vali)
                pending = []
            if vali is not None and (step % eval_every == 0 or step == train_steps):
                _evaluate(steps, state, step, vali, features, list_size, contexts, best, watch, patience, propensity_tol,
                          writer, name)
            if ckpt is not None and (step % checkpoint_every == 0 or watch.stopped or step == train_steps):
                _save(ckpt, step, state, best, it_state, watch, finished=watch.stopped or step == train_steps)
            if watch.stopped:
                break
    finally:
        batches.close()
        bar.close()
    best.final_state = jax.device_get(state)
    if vali is None:
        best.best_state, best.best_step = best.final_state, step
    best.steps_run, best.seconds, best.compiles = step, time.perf_counter() - t0, steps.traces[0]
    return best
