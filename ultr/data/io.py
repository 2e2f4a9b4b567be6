"""Atomic writes: a killed job never leaves a half-written file that looks complete."""

from __future__ import annotations

import json
import os
import queue
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; finished files get the usual mode
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it in whole when the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_UMASK)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_parquet(table: pa.Table, path: str | Path, **kwargs: Any) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)


def write_json(obj: Any, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


@contextmanager
def write_behind(write: Callable[[Any], None]) -> Iterator[Callable[[Any], None]]:
    """Yield `put(item)`: `write(item)` runs on a worker thread while the caller prepares the next
    item (Parquet encoding releases the GIL). One item waits at most, so memory grows by one item;
    a worker error is raised in the caller at the next put or at the end of the block."""
    q: queue.Queue = queue.Queue(maxsize=1)
    errors: list[BaseException] = []

    def work() -> None:
        while (item := q.get()) is not None:
            if not errors:
                try:
                    write(item)
                except BaseException as e:  # handed to the caller
                    errors.append(e)

    worker = threading.Thread(target=work, name="ultr-write-behind", daemon=True)
    worker.start()

    def put(item: Any) -> None:
        if errors:
            raise errors[0]
        q.put(item)

    try:
        yield put
    finally:
        q.put(None)
        worker.join()
    if errors:
        raise errors[0]
