"""Session tables and candidate lists as fixed-shape NumPy arrays, and the batch iterator that feeds
training. No JAX here: batches are plain arrays, so input preparation runs anywhere."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ultr.data.letor import FeatureTable, shared_strings
from ultr.errors import DataError


@dataclass
class Sessions:
    """All sessions of a session table: lists on the last axis, slot k = position k+1."""

    session_id: np.ndarray  # int64 [S]
    query_id: np.ndarray  # object [S]
    doc_index: np.ndarray  # int32 [S, K], -1 = padding
    position: np.ndarray  # int16 [S, K]
    click: np.ndarray  # int8 [S, K]
    mask: np.ndarray  # bool [S, K]

    def __len__(self) -> int:
        return len(self.session_id)

    @property
    def list_size(self) -> int:
        return self.doc_index.shape[1]

    def with_clicks(self) -> "Sessions":
        """Only the sessions with at least one click (self when that is all of them)."""
        keep = self.click.any(axis=1)
        if keep.all():
            return self
        return Sessions(self.session_id[keep], self.query_id[keep], self.doc_index[keep], self.position[keep],
                        self.click[keep], self.mask[keep])


def fixed_lists(col: pa.ChunkedArray, dtype) -> np.ndarray:
    """A fixed-size-list column as one [rows, list_size] array."""
    arr = col.combine_chunks()
    k = arr.type.list_size
    return arr.flatten().to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(-1, k)


def read_sessions(path: str | Path) -> Sessions:
    """Read every shard of `path/sessions` (or a directory of shards, or one shard file)."""
    path = Path(path)
    if path.is_dir() and (path / "sessions").is_dir():
        path = path / "sessions"
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no session shards (*.parquet); run `python -m pipelines.etl` first")
    table = pa.concat_tables(pq.read_table(f) for f in files)
    for col in ("session_id", "query_id", "doc_index", "position", "click", "mask"):
        if col not in table.column_names:
            raise DataError(f"{files[0]}: column {col!r} missing; not a session table written by ultr")
    return Sessions(
        session_id=table.column("session_id").to_numpy(),
        query_id=shared_strings(table.column("query_id")),
        doc_index=fixed_lists(table.column("doc_index"), np.int32),
        position=fixed_lists(table.column("position"), np.int16),
        click=fixed_lists(table.column("click"), np.int8),
        mask=fixed_lists(table.column("mask"), bool),
    )


class BatchIterator:
    """Endless fixed-size batches over the rows of equally long arrays, reshuffled each epoch with a
    seeded PRNG. Every batch has exactly `batch_size` rows (epochs wrap), so jitted steps see one
    shape only and never recompile."""

    def __init__(self, arrays: Mapping[str, np.ndarray], batch_size: int, seed: int, shuffle: bool = True) -> None:
        n = {len(v) for v in arrays.values()}
        if len(n) != 1:
            raise DataError(f"arrays differ in length: { {k: len(v) for k, v in arrays.items()} }")
        self.n = n.pop()
        if self.n == 0:
            raise DataError("no sessions to train on (all were dropped or the log is empty)")
        if batch_size < 1:
            raise DataError(f"trainer.batch_size gives {batch_size} rows per step and process; use a batch size >= 1 "
                            "(and at least the number of processes)")
        self.arrays = dict(arrays)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self._order = self._new_order()
        self._pos = 0

    def _new_order(self) -> np.ndarray:
        # Each epoch's order depends only on (seed, epoch), so (epoch, position) is the whole
        # iterator state: a resumed run sees exactly the batches an uninterrupted one would.
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self._pos}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])
        self._order = self._new_order()
        self._pos = int(state["pos"])

    def next_indices(self) -> np.ndarray:
        out = np.empty(self.batch_size, dtype=np.int64)
        filled = 0
        while filled < self.batch_size:
            take = min(self.batch_size - filled, len(self._order) - self._pos)
            out[filled : filled + take] = self._order[self._pos : self._pos + take]
            filled += take
            self._pos += take
            if self._pos == len(self._order):
                self.epoch += 1
                self._order, self._pos = self._new_order(), 0
        return out

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        i = self.next_indices()
        return {k: v[i] for k, v in self.arrays.items()}


def session_arrays(s: Sessions) -> dict[str, np.ndarray]:
    """Training arrays of click sessions: targets are clicks; padding points at row 0, hidden by the mask."""
    return {
        "doc_index": np.maximum(s.doc_index, 0),
        "position": s.position.astype(np.int32),
        "targets": s.click.astype(np.float32),
        "mask": s.mask,
    }


@dataclass
class QueryLists:
    """Each query's full candidate list padded to the longest one (evaluation and the oracle)."""

    query_id: np.ndarray  # object [Q]
    doc_index: np.ndarray  # int32 [Q, L], 0 where padded
    label: np.ndarray  # float32 [Q, L]
    mask: np.ndarray  # bool [Q, L]


def query_lists(features: FeatureTable, split: str, pad_to: int | None = None) -> QueryLists:
    rows = features.rows(split)
    qids = features.query_ids[rows]
    uq, qidx = np.unique(qids, return_inverse=True)
    order = np.lexsort((rows, qidx))
    q_sorted, r_sorted = qidx[order], rows[order]
    starts = np.searchsorted(q_sorted, np.arange(len(uq)))
    rank = np.arange(len(order)) - starts[q_sorted]
    width = int(rank.max()) + 1
    if pad_to is not None:
        width = max(width, pad_to)
    doc = np.zeros((len(uq), width), dtype=np.int32)
    mask = np.zeros((len(uq), width), dtype=bool)
    doc[q_sorted, rank] = r_sorted
    mask[q_sorted, rank] = True
    label = np.where(mask, features.labels[doc].astype(np.float32), 0.0).astype(np.float32)
    return QueryLists(uq, doc, label, mask)


def list_arrays(q: QueryLists) -> dict[str, np.ndarray]:
    """Training arrays of full candidate lists (the oracle): targets are graded labels."""
    return {"doc_index": q.doc_index, "position": _list_positions(q), "targets": q.label, "mask": q.mask}


def _list_positions(q: QueryLists) -> np.ndarray:
    """Slot order as positions 1..L of every candidate list (only the first item matters to losses)."""
    return np.ascontiguousarray(np.broadcast_to(np.arange(1, q.doc_index.shape[1] + 1, dtype=np.int32), q.doc_index.shape))


def exposure_arrays(q: QueryLists, s: Sessions, alpha: np.ndarray, beta: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Training arrays of whole candidate lists with their logged click evidence (the doubly-robust
    estimator): per document C = clicks, A = sum of alpha_k over the sessions that showed it,
    B = sum of beta_k, and N = the number of logged sessions of its query. Labels are not read.

    `alpha`/`beta` [K] are the click model's P(c | k, d) = alpha_k R_d + beta_k (PBM: beta = 0)."""
    K = s.list_size
    alpha = np.asarray(alpha, dtype=np.float64)
    beta = np.zeros(K) if beta is None else np.asarray(beta, dtype=np.float64)
    if alpha.shape[0] < K or beta.shape[0] < K:
        raise DataError(f"exposure_arrays: click-model parameters cover {alpha.shape[0]} positions, the sessions show {K}")
    rows = s.doc_index[s.mask].astype(np.int64)
    slot = s.position[s.mask].astype(np.int64) - 1
    size = max(int(q.doc_index.max()) + 1, int(rows.max()) + 1 if rows.size else 0)
    clicks = np.bincount(rows, weights=s.click[s.mask].astype(np.float64), minlength=size)
    exposure = np.bincount(rows, weights=alpha[slot], minlength=size)
    bias = np.bincount(rows, weights=beta[slot], minlength=size)
    # Sessions per query, matched to the candidate lists by query id (queries without sessions: 0).
    uq, counts = np.unique(s.query_id.astype(str), return_counts=True)
    where = np.searchsorted(uq, q.query_id.astype(str))
    found = (where < len(uq)) & (uq[np.minimum(where, len(uq) - 1)] == q.query_id.astype(str))
    n_q = np.where(found, counts[np.minimum(where, len(uq) - 1)], 0).astype(np.float32)

    def per_doc(v: np.ndarray) -> np.ndarray:
        return np.where(q.mask, v[q.doc_index], 0.0).astype(np.float32)

    return {
        "doc_index": q.doc_index,
        "position": _list_positions(q),
        "targets": per_doc(clicks),
        "exposure": per_doc(exposure),
        "bias": per_doc(bias),
        "sessions": np.where(q.mask, n_q[:, None], 0.0).astype(np.float32),
        "mask": q.mask,
    }
