"""Shared machinery of the line-based readers: bounded chunks of whole lines (plain or gzip),
numbered so every error names its file and line, and the click-log part writer."""

from __future__ import annotations

import gzip
import queue
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

import polars as pl

from ultr.data.io import write_parquet
from ultr.errors import DataError

LINE = "_line"  # 1-based line number in its file


@dataclass
class ReaderPolicy:
    chunk_bytes: int = 64 << 20  # raw text per piece (every reader): bounds memory whatever the file size
    on_bad_line: str = "error"  # error | quarantine (wrong field counts, non-numeric fields, ...)
    on_unshown_click: str = "quarantine"  # error | quarantine (real logs do contain a few)
    repeated_clicks: str = "binarize"  # binarize (click=1, click_count kept) | error
    keep_text: bool = False  # Baidu: keep query/title/abstract token strings in the click log


@dataclass
class Quarantine:
    """Lines set aside by policy, with the reason; written beside the click log and counted."""

    frames: list[pl.DataFrame] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, source: str, lines: pl.DataFrame, reason: str, policy_value: str, fix: str) -> None:
        """`lines` has LINE and `text` columns. Raise on the first if the policy says error."""
        if lines.height == 0:
            return
        if policy_value == "error":
            first = lines.sort(LINE).row(0, named=True)
            raise DataError(f"{source}:{first[LINE]}: {reason} ({lines.height} such lines in this chunk): {first['text'][:200]!r}; {fix}")
        self.counts[reason] = self.counts.get(reason, 0) + lines.height
        self.frames.append(lines.select(pl.lit(source).alias("source"), pl.col(LINE).cast(pl.Int64).alias("line"), pl.lit(reason).alias("reason"), pl.col("text").cast(pl.String)))


def iter_byte_chunks(path: Path, chunk_bytes: int, cut: Callable[[bytes], int]) -> Iterator[tuple[bytes, int]]:
    """Yield (data, first line number) for consecutive pieces of a plain or gzip file, about
    `chunk_bytes` each. `cut(block)` gives the offset in a block read from the file (> 0, at a line
    start) where the next piece may begin, or -1 to read on; every piece but the last ends with a
    newline. Memory follows `chunk_bytes`, whatever the file size."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    line_no = 1
    pending: list[bytes] = []  # read but not yet yielded
    try:
        with opener(path, "rb") as fh:
            while True:
                block = fh.read(chunk_bytes)
                if len(block) < chunk_bytes:  # a short read is the end of the file: no cut needed
                    pending.append(block)
                    break
                at = cut(block)
                if at < 0:
                    pending.append(block)
                    continue
                # One copy into the piece (join takes the view), not a concatenation and a slice.
                data = b"".join([*pending, memoryview(block)[:at]])
                pending = [block[at:]]
                del block
                yield data, line_no
                line_no += data.count(b"\n")
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: truncated or corrupt gzip after line {line_no - 1} ({e}); re-download or re-compress the file") from None
    rest = b"".join(pending)
    if rest:
        yield rest, line_no


T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterable[T]) -> Iterator[T]:
    """Produce the next item on a worker thread while the caller works on this one (the gzip
    inflate of the next piece overlaps the parse of this one; zlib releases the GIL). One item
    is held ahead, so memory grows by one piece. Errors surface in the caller at the item where
    they happened; a caller that stops early stops the worker."""
    q: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                q.put((item, None))  # the caller's drain below unblocks this once it has stopped
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as e:  # handed to the caller, raised there
            q.put((_DONE, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # a generator over a file closes the file here, not at garbage collection

    worker = threading.Thread(target=work, name="ultr-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = q.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # drain so a blocked put returns, then let the worker finish
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            worker.join(timeout=0.05)


def _after_last_newline(block: bytes) -> int:
    return block.rfind(b"\n") + 1 or -1


def iter_line_chunks(path: Path, chunk_bytes: int) -> Iterator[pl.DataFrame]:
    """Yield frames of (LINE, text) holding whole lines, about `chunk_bytes` of text each."""
    for data, first_line in iter_byte_chunks(path, chunk_bytes, _after_last_newline):
        if data.endswith(b"\n"):
            yield line_frame(data[:-1], path, first_line)
        elif data.strip():
            yield line_frame(data, path, first_line)


def line_frame(data: bytes, path: Path, first_line: int) -> pl.DataFrame:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + data[: e.start].count(b"\n")
        raise DataError(f"{path}:{line}: not UTF-8 text ({e.reason}); convert the file to UTF-8") from None
    s = pl.Series("text", [text]).str.split("\n").explode()
    return s.to_frame().with_row_index(LINE, offset=first_line).with_columns(pl.col("text").str.strip_suffix("\r"))


def write_part(df: pl.DataFrame, out: Path, index: int) -> None:
    df.drop(LINE, strict=False).write_parquet(out / f"part-{index:05d}.parquet")


class PartWriter:
    """Numbers click-log parts and keeps the running counts every reader reports."""

    def __init__(self, out: Path, stats: dict[str, Any]) -> None:
        self.out, self.stats, self.parts = out, stats, 0

    def add(self, df: pl.DataFrame, sessions: int, repeated: int = 0) -> None:
        self.stats["sessions"] += sessions
        if "repeated_clicks" in self.stats:
            self.stats["repeated_clicks"] += repeated
        if df.height:
            self.stats["impressions"] += df.height
            self.stats["clicks"] += int(df["click"].sum())
            write_part(df, self.out, self.parts)
            self.parts += 1


def finish(parts_dir: Path, quarantine: Quarantine, out_dir: Path, stats: dict[str, Any]) -> dict[str, Any]:
    if quarantine.frames:
        write_parquet(pl.concat(quarantine.frames).to_arrow(), out_dir / "quarantine.parquet")
        stats["quarantine_file"] = str(out_dir / "quarantine.parquet")
    stats["quarantined"] = dict(quarantine.counts)
    stats["click_log"] = str(parts_dir)
    return stats
