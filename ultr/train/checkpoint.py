"""Checkpoints with orbax: the whole train state (both towers, optimiser states, step, PRNG key),
the best state so far, and the loop's bookkeeping (iterator position, history, early stopping)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from ultr.train.state import TrainState

# Orbax logs every save step at INFO through absl; Hydra's INFO root logger would print them all.
logging.getLogger("absl").setLevel(logging.WARNING)


def save_state(state: TrainState, path: str | Path) -> Path:
    """Write `state` to `path` (replacing an older checkpoint there). Orbax writes to a temporary
    directory and renames it when complete, so a killed job never leaves a checkpoint that looks whole."""
    path = Path(path).absolute()
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(path, state, force=True)
        ckpt.wait_until_finished()
    return path


def restore_state(path: str | Path, like: TrainState) -> TrainState:
    """Restore into the structure (and dtypes/shapes) of `like`, e.g. a freshly initialised state."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    with ocp.StandardCheckpointer() as ckpt:
        return ckpt.restore(Path(path).absolute(), abstract)


class TrainCheckpoints:
    """Periodic training checkpoints (the latest one kept), written atomically by orbax."""

    def __init__(self, directory: str | Path) -> None:
        self.manager = ocp.CheckpointManager(
            Path(directory).absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=False),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: TrainState, best: TrainState, meta: dict[str, Any]) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), best=ocp.args.StandardSave(best), meta=ocp.args.JsonSave(meta),
        ), force=True)
        self.manager.wait_until_finished()

    def restore(self, like: TrainState) -> tuple[TrainState, TrainState, dict[str, Any]]:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, jax.device_get(like))
        out = self.manager.restore(self.manager.latest_step(), args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), best=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore(),
        ))
        return out["state"], out["best"], out["meta"]

    def finished(self) -> bool:
        step = self.manager.latest_step()
        if step is None:
            return False
        meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        return bool(meta.get("finished"))
