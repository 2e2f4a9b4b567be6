"""Checkpoints with orbax: the whole train state (both towers, optimiser states, step, PRNG key)."""

from __future__ import annotations

import logging
from pathlib import Path

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
