"""Atomic writes: a killed job never leaves a half-written file that looks complete."""

from __future__ import annotations

import json
import os
import queue
import shutil
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ultr.errors import DataError


def _sibling(path: Path, kind: str) -> Path:
    # A unique hidden name beside the target: the rename stays on one file system.
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.{kind}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _sibling(path, "tmp")
    # Created by open() with mode 0666, so the finished file gets the process umask's usual mode.
    os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and swap it in whole when the block finishes.

    An existing directory is renamed aside first and removed only after the new one is in place,
    so `path` is at every moment either the old complete directory, absent, or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(path, "tmp")
    os.mkdir(tmp, 0o777)
    aside = None
    try:
        yield tmp
        if path.exists():
            aside = _sibling(path, "old")
            os.rename(path, aside)
        os.rename(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
        if aside is not None and aside.exists():
            if path.exists():
                shutil.rmtree(aside)
            else:
                os.rename(aside, path)  # the new one did not go in: keep the old one


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pl.DataFrame:
    """A Parquet file as a DataFrame, or a one-line error naming the file when it is unreadable."""
    try:
        return pl.read_parquet(path, columns=columns)
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError) as e:
        raise DataError(unreadable(path, e)) from None


def unreadable(path: str | Path, error: BaseException) -> str:
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return f"{path}: not a readable Parquet file ({first}); rebuild or re-copy it (a killed copy leaves a truncated file)"


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
