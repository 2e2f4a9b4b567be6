"""The training loop: the only place with side effects (progress bar, TensorBoard, validation,
early stopping, checkpoints). Everything it calls is pure."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ultr.data.batching import BatchIterator, QueryLists
from ultr.metrics import evaluate_scores
from ultr.train.state import TrainState
from ultr.train.steps import Steps


class NonFiniteLossError(FloatingPointError):
    pass


@dataclass
class FitResult:
    best_state: TrainState  # host copy of the state with the best validation nDCG@10
    best_step: int
    best_vali: float
    history: list[dict[str, float]] = field(default_factory=list)
    steps_run: int = 0
    seconds: float = 0.0
    compiles: int = 0
    final_state: TrainState | None = None


def score_lists(steps: Steps, ranker_params: Any, lists: QueryLists, features: jax.Array, chunk: int = 512) -> np.ndarray:
    """Scores for every candidate of every list, in fixed-size chunks (one compiled shape)."""
    n = len(lists.doc_index)
    out = []
    for i in range(0, n, chunk):
        idx = lists.doc_index[i : i + chunk]
        pad = chunk - len(idx) if n > chunk else 0
        if pad:
            idx = np.concatenate([idx, np.zeros((pad, idx.shape[1]), idx.dtype)])
        out.append(np.asarray(steps.score(ranker_params, jnp.asarray(idx), features))[: len(idx) - pad])
    return np.concatenate(out)


def read_propensity(steps: Steps, prop_params: Any, list_size: int) -> np.ndarray:
    return np.asarray(steps.propensity_curve(prop_params))[:list_size]


def fit(
    steps: Steps,
    train: BatchIterator,
    features: jax.Array,
    vali: QueryLists | None,
    *,
    max_label: float,
    train_steps: int,
    eval_every: int,
    patience: int | None,
    seed: int,
    list_size: int,
    log_every: int = 50,
    writer: Any = None,
    progress: bool = True,
    name: str = "",
) -> FitResult:
    """Train for up to `train_steps`, validating nDCG@10 every `eval_every` steps; keep the best.
    With `vali=None` (a log without expert labels) it trains all steps and keeps the last state."""
    state = steps.init(jax.random.PRNGKey(seed), train.batch_size)
    best = FitResult(best_state=jax.device_get(state), best_step=0, best_vali=-math.inf)
    bad_evals = 0
    t0 = time.perf_counter()
    bar = tqdm(total=train_steps, desc=name, disable=not progress, file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
    last_vali = float("nan")
    pending: list[tuple[int, dict[str, jax.Array]]] = []
    step = 0
    for step in range(1, train_steps + 1):
        batch = next(train)
        state, metrics = steps.train_step(state, batch, features)
        pending.append((step, metrics))
        # Reading metrics back blocks on the device, so do it only every `log_every` steps.
        if step % log_every == 0 or step % eval_every == 0 or step == train_steps:
            host = jax.device_get(pending)
            pending = []
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
            bar.set_postfix(loss=f"{float(host[-1][1]['loss']):.4f}", vali_ndcg10=f"{last_vali:.4f}", refresh=False)
            bar.update(len(host))
            best.history.append({"step": step, "loss": float(host[-1][1]["loss"])})
        if vali is None:
            continue  # unlabelled log: no model selection, the final state is the result
        if step % eval_every == 0 or step == train_steps:
            scores = score_lists(steps, state.ranker, vali, features)
            means, _, _ = evaluate_scores(scores, vali.label, vali.mask, max_label)
            last_vali = means["ndcg@10"]
            best.history[-1]["vali_ndcg@10"] = last_vali
            if writer is not None:
                writer.add_scalar(f"{name}/vali_ndcg_at_10", last_vali, step)
                if steps.learns_propensity:
                    for k, v in enumerate(read_propensity(steps, state.propensity, list_size), start=1):
                        writer.add_scalar(f"{name}/propensity/position_{k}", float(v), step)
            if last_vali > best.best_vali:
                best.best_state, best.best_step, best.best_vali = jax.device_get(state), step, last_vali
                bad_evals = 0
            else:
                bad_evals += 1
                if patience is not None and bad_evals >= patience:
                    break
    bar.close()
    best.final_state = jax.device_get(state)
    if vali is None:
        best.best_state, best.best_step = best.final_state, step
    best.steps_run = step
    best.seconds = time.perf_counter() - t0
    best.compiles = steps.train_step._cache_size()
    return best
