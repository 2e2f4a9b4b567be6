"""Checkpoints with orbax: the whole train state (both towers, optimiser states, step, PRNG key),
the best state so far, and the loop's bookkeeping (iterator position, history, early stopping)."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from ultr.train.state import TrainState

# Orbax logs every save step at INFO through absl; Hydra's INFO root logger would print them all.
logging.getLogger("absl").setLevel(logging.WARNING)


_GLOB_CHARACTERS = re.compile(r"[*?\[\]]")


def glob_safe(path: Path) -> tuple[Path, Callable[[], None]]:
    """(a path orbax can use for `path`, a cleanup). Orbax finalises a save by globbing the
    checkpoint directory for its per-process files; where the path holds glob characters (a
    sweep's run directory `algorithm.methods=[dla],...`) the glob finds nothing and the saved
    checkpoint cannot be restored. Such a path is reached through a symlink to its parent folder
    from a temporary folder without them; writes land in the real folder."""
    if not _GLOB_CHARACTERS.search(str(path)):
        return path, lambda: None
    root = Path(tempfile.mkdtemp(prefix="ultr-ckpt-"))
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(path.parent, root / "parent")
    return root / "parent" / path.name, lambda: shutil.rmtree(root, ignore_errors=True)  # removes the link, not its target


def save_state(state: TrainState, path: str | Path) -> Path:
    """Write `state` to `path` (replacing an older checkpoint there). Orbax writes to a temporary
    directory and renames it when complete, so a killed job never leaves a checkpoint that looks whole."""
    path = Path(path).absolute()
    alias, cleanup = glob_safe(path)
    try:
        with ocp.StandardCheckpointer() as ckpt:
            ckpt.save(alias, state, force=True)
            ckpt.wait_until_finished()
    finally:
        cleanup()
    return path


def restore_state(path: str | Path, like: TrainState) -> TrainState:
    """Restore into the structure (and dtypes/shapes) of `like`, e.g. a freshly initialised state."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    alias, cleanup = glob_safe(Path(path).absolute())
    try:
        with ocp.StandardCheckpointer() as ckpt:
            return ckpt.restore(alias, abstract)
    finally:
        cleanup()


class TrainCheckpoints:
    """Periodic training checkpoints (the latest one kept), written atomically by orbax."""

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory).absolute()
        # A killed save leaves an unfinalised temporary step, never read back; orbax would remove it
        # with a warning on the console at the next save.
        for stale in directory.glob("*.orbax-checkpoint-tmp*"):
            shutil.rmtree(stale, ignore_errors=True)
        alias, cleanup = glob_safe(directory)
        weakref.finalize(self, cleanup)
        self.manager = ocp.CheckpointManager(
            alias,
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
