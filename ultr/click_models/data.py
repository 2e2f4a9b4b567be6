"""Session tables as click-model input: each log's (query, document) pairs mapped to the parameter
rows of the training log, streamed in fixed-shape batches.

Rows are the training log's pair vocabulary (the ETL's doc_vocab.parquet); past `buckets` pairs
they are hashed into `buckets` rows as the ID ranker does, so memory is bounded whatever the log.
A pair of another log (the test log) is found in the training vocabulary by a join on its ids;
one that is not there gets row -1, which the models answer with their learned baseline (prior)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from ultr.data.batching import fixed_lists
from ultr.errors import DataError

Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]  # rows int32 [n, K], click int8 [n, K], mask bool [n, K]


def hashed(index: np.ndarray, buckets: int, vocabulary: int) -> np.ndarray:
    """Vocabulary index -> parameter row: itself when the vocabulary fits, else a multiplicative hash."""
    if vocabulary <= buckets:
        return index.astype(np.int32)
    return ((index.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(1 << 32) % np.uint64(buckets)).astype(np.int32)


def train_rows(run_dir: Path, buckets: int) -> tuple[np.ndarray, int]:
    """(row of each training pair, number of parameter rows)."""
    n = pq.read_metadata(run_dir / "doc_vocab.parquet").num_rows
    return hashed(np.arange(n), buckets, n), min(n, buckets)


def rows_in(train_dir: Path, other_dir: Path, buckets: int) -> np.ndarray:
    """Row of each pair of another log's vocabulary in the training rows; -1 where training never saw it."""
    train = pl.read_parquet(train_dir / "doc_vocab.parquet", columns=["query_id", "doc_id", "doc_index"])
    other = pl.read_parquet(other_dir / "doc_vocab.parquet", columns=["query_id", "doc_id", "doc_index"])
    found = other.join(train.rename({"doc_index": "train_index"}), on=["query_id", "doc_id"], how="left")
    out = np.full(other.height, -1, np.int64)
    hit = found.filter(pl.col("train_index").is_not_null())
    out[hit["doc_index"].to_numpy()] = hit["train_index"].to_numpy()
    rows = hashed(np.maximum(out, 0), buckets, train.height)
    return np.where(out >= 0, rows, -1).astype(np.int32)


class _Batched:
    """Fixed-size batching over `chunks()`, shared by logs on disk and in memory."""

    def chunks(self) -> Iterator[Chunk]:
        raise NotImplementedError

    def batches(self, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[Chunk]:
        """Fixed-size batches (the last one padded with masked rows), shuffled within chunks when
        `rng` is given. Each chunk is copied once (joined to the previous chunk's remainder)."""
        carry: Chunk | None = None
        for chunk in self.chunks():
            if rng is not None:
                order = rng.permutation(len(chunk[0]))
                chunk = tuple(a[order] for a in chunk)
            if carry is not None:
                chunk = tuple(np.concatenate(pair) for pair in zip(carry, chunk))
            full = len(chunk[0]) // batch_size * batch_size
            for i in range(0, full, batch_size):
                yield tuple(a[i : i + batch_size] for a in chunk)
            carry = tuple(a[full:] for a in chunk)
        if carry is not None and len(carry[0]):
            pad = ((0, batch_size - len(carry[0])), (0, 0))
            yield np.pad(carry[0], pad), np.pad(carry[1], pad), np.pad(carry[2], pad, constant_values=False)


@dataclass
class SessionLog(_Batched):
    """Sessions [start, stop) (in table order) of the session shards under `run_dir/sessions`.
    Chunks are read shard by shard; they are kept in memory after the first pass when they fit in
    `cache_bytes`, so later epochs do not decode Parquet again."""

    run_dir: Path
    row_of: np.ndarray
    start: int = 0
    stop: int | None = None
    cache_bytes: int = 2 << 30
    _cache: list[Chunk] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.files = sorted((Path(self.run_dir) / "sessions").glob("*.parquet"))
        if not self.files:
            raise DataError(f"{self.run_dir}/sessions: no session shards")
        self.counts = np.array([pq.read_metadata(f).num_rows for f in self.files])
        total = int(self.counts.sum())
        self.stop = total if self.stop is None else min(self.stop, total)

    def __len__(self) -> int:
        return max(0, int(self.stop) - self.start)

    def part(self, start: int, stop: int | None) -> "SessionLog":
        return SessionLog(self.run_dir, self.row_of, start, stop, self.cache_bytes)

    def _read(self) -> Iterator[Chunk]:
        offset = 0
        for f, n in zip(self.files, self.counts):
            lo, hi = max(self.start - offset, 0), min(int(self.stop) - offset, int(n))
            offset += int(n)
            if lo >= hi:
                continue
            t = pq.read_table(f, columns=["doc_index", "click", "mask"]).slice(lo, hi - lo)
            mask = fixed_lists(t.column("mask"), bool)
            doc = fixed_lists(t.column("doc_index"), np.int64)
            rows = np.where(mask, self.row_of[np.maximum(doc, 0)], 0).astype(np.int32)
            yield rows, fixed_lists(t.column("click"), np.int8), mask

    def chunks(self) -> Iterator[Chunk]:
        if self._cache is not None:
            yield from self._cache
            return
        keep, size = [], 0
        for chunk in self._read():
            size += sum(a.nbytes for a in chunk)
            if keep is not None:
                keep = keep + [chunk] if size <= self.cache_bytes else None
            yield chunk
        if keep is not None:
            self._cache = keep


@dataclass
class ArrayLog(_Batched):
    """Sessions already in memory (tests, benchmarks, simulated logs)."""

    rows: np.ndarray
    click: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def chunks(self) -> Iterator[Chunk]:
        yield self.rows, self.click, self.mask

    def subset(self, keep: np.ndarray) -> "ArrayLog":
        return ArrayLog(self.rows[keep], self.click[keep], self.mask[keep])
