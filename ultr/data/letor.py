"""LETOR / SVMlight ingest: each split of a fold streamed into one features table.

The text is parsed in bounded pieces (`ultr.data.svmlight`); the train split is held in memory
(the normalisation is fitted on it, and `vali_fraction` holds some of its queries out), the other
splits go straight from a piece to a Parquet row group. Peak memory is the train split's dense
float32 array plus a piece; the table appears only when complete (atomic rename).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ultr.data.io import atomic_path, unreadable, write_behind
from ultr.data.schema import FEATURES_METADATA_KEY, features_schema
from ultr.data.svmlight import Piece, concat, iter_svmlight
from ultr.errors import DataError


@dataclass
class ParsedSplit:
    """One parsed SVMlight file: parallel arrays, rows grouped by query as in the file."""

    query_ids: list[str]
    doc_ids: list[str]
    labels: np.ndarray  # int8 [N]
    features: np.ndarray  # float32 [N, F]


def parse_svmlight(path: str | Path, num_features: int | None = None, sparse: object = "auto",
                   chunk_bytes: int = 64 << 20) -> ParsedSplit:
    """A whole file in memory (small files, tests); every malformed line fails with `file:line`."""
    p = concat(list(iter_svmlight(path, num_features, sparse, chunk_bytes)), num_features)
    return ParsedSplit(p.meta["query_id"].to_list(), p.meta["doc_id"].to_list(), p.meta["label"].to_numpy(), p.features)


NORMALIZATIONS = ("none", "minmax", "zscore")


@dataclass
class Normalization:
    """Feature transform fitted on the train split and stored with the table: x -> (f(x) - shift) / scale."""

    method: str = "none"  # none | minmax | zscore
    log1p: bool = False
    shift: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, x: np.ndarray | list[np.ndarray], method: str, log1p: bool) -> "Normalization":
        """Statistics over `x`, or over a list of row blocks merged exactly (Chan et al.)."""
        if method not in NORMALIZATIONS:
            raise DataError(f"normalization {method!r} is unknown; use none, minmax or zscore")
        blocks = [b for b in (x if isinstance(x, list) else [x]) if len(b)]
        width = blocks[0].shape[1]
        n, mean, m2 = 0, np.zeros(width), np.zeros(width)
        lo, hi = np.full(width, np.inf), np.full(width, -np.inf)
        for b in blocks:
            b = _signed_log1p(b) if log1p else b
            k, bm = len(b), b.mean(axis=0, dtype=np.float64)
            bm2 = np.square(b - bm.astype(b.dtype), dtype=np.float64).sum(axis=0)
            delta = bm - mean
            mean, m2, n = mean + delta * k / (n + k), m2 + bm2 + delta**2 * n * k / (n + k), n + k
            lo, hi = np.minimum(lo, b.min(axis=0)), np.maximum(hi, b.max(axis=0))
        if method == "minmax":
            shift, scale = lo, hi - lo
        elif method == "zscore":
            shift, scale = mean, np.sqrt(m2 / n)
        else:
            shift, scale = np.zeros(width), np.ones(width)
        scale = np.where(scale > 0, scale, 1.0)  # constant features stay finite
        return cls(method, log1p, [float(v) for v in shift], [float(v) for v in scale])

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = _signed_log1p(x) if self.log1p else x
        if self.method == "none":
            return x.astype(np.float32)
        return ((x - np.asarray(self.shift)) / np.asarray(self.scale)).astype(np.float32)


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


class SplitStats:
    """Counts of one split, accumulated piece by piece (pieces hold whole queries)."""

    def __init__(self, path: str):
        self.d: dict[str, Any] = {"path": path, "queries": 0, "documents": 0, "queries_without_relevant": 0,
                                  "queries_dropped_without_relevant": 0, "label_counts": {}}

    def add(self, meta: pl.DataFrame) -> None:
        has_rel = meta.group_by("query_id").agg((pl.col("label") > 0).any().alias("r"))["r"]
        self.d["queries"] += len(has_rel)
        self.d["documents"] += meta.height
        self.d["queries_without_relevant"] += int((~has_rel).sum())
        for label, count in meta["label"].value_counts().iter_rows():
            self.d["label_counts"][int(label)] = self.d["label_counts"].get(int(label), 0) + int(count)


def held_out_queries(train: list[Piece], fraction: float, seed: int, where: str) -> pl.Series:
    """A seeded share of the training queries for validation (ULTRA's split for folds without one)."""
    queries = pl.concat([p.meta["query_id"].unique(maintain_order=True) for p in train])
    n = int(round(fraction * len(queries)))
    if not 0 < fraction < 1 or n < 1 or n > len(queries) - 1:
        raise DataError(f"{where}: data.vali_fraction={fraction} holds out {n} of {len(queries)} training queries, "
                        "leaving a split empty; use a fraction that keeps at least one query on each side")
    return queries.gather(np.sort(np.random.default_rng(seed).permutation(len(queries))[:n]))


def _with_split(piece: Piece, name: str, held: pl.Series | None) -> Piece:
    split = pl.lit(name) if held is None else pl.when(pl.col("query_id").is_in(held)).then(pl.lit("vali")).otherwise(pl.lit(name))
    return Piece(piece.meta.with_columns(split.alias("split")), piece.features)


def _piece_table(piece: Piece, norm: "Normalization", width: int) -> pa.Table:
    feats = norm.apply(np.pad(piece.features, ((0, 0), (0, width - piece.features.shape[1]))))
    meta = piece.meta
    return pa.table({
        "query_id": meta["query_id"].to_arrow().cast(pa.string()),
        "doc_id": meta["doc_id"].to_arrow().cast(pa.string()),
        "label": meta["label"].to_arrow(),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1), pa.float32()), width),
        "split": meta["split"].to_arrow().cast(pa.string()),
    }, schema=features_schema(width))


def _drop_without_relevant(piece: Piece) -> tuple[Piece, dict[str, int]]:
    """Evaluation queries without a relevant document say nothing about a ranking; train keeps them."""
    drop = piece.meta.select(((pl.col("label") <= 0).all().over("query_id") & (pl.col("split") != "train")).alias("d"))
    drop = drop.to_series().to_numpy()
    dropped = piece.meta.filter(pl.Series(drop)).group_by("split").agg(pl.col("query_id").n_unique())
    return piece.take(~drop), dict(dropped.iter_rows())


def _write_piece(piece: Piece, put: Callable[[pa.Table], None], split_stats: dict[str, SplitStats],
                 norm: "Normalization", width: int, drop_without_relevant: bool) -> None:
    for (split,), part in piece.meta.group_by("split", maintain_order=True):
        split_stats[split].add(part)
    if drop_without_relevant:
        piece, dropped = _drop_without_relevant(piece)
        for split, n in dropped.items():
            split_stats[split].d["queries_dropped_without_relevant"] += n
    if len(piece):
        put(_piece_table(piece, norm, width))


def ingest_letor(
    splits: dict[str, str | Path],
    out_path: str | Path,
    *,
    num_features: int | None = None,
    normalization: str = "none",
    log1p: bool = False,
    drop_eval_queries_without_relevant: bool = False,
    sparse: object = "auto",
    vali_fraction: float = 0.0,
    seed: int = 0,
    chunk_bytes: int = 64 << 20,
    on_bytes: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Parse each split, normalise with train statistics, stream one features table; return its stats.

    Without `num_features` the width comes from the data, so every split is parsed before writing
    (small datasets); the presets of the large ones set it, and only the train split is held."""
    if normalization not in NORMALIZATIONS:
        raise DataError(f"normalization {normalization!r} is unknown; use none, minmax or zscore")
    names = list(splits)
    fit_name = "train" if "train" in splits else names[0]
    read = lambda name: iter_svmlight(splits[name], num_features, sparse, chunk_bytes, on_bytes)  # noqa: E731
    held_pieces = {name: list(read(name)) for name in names if name == fit_name or num_features is None}
    width = num_features or max(p.features.shape[1] for ps in held_pieces.values() for p in ps)
    held_pieces = {name: [concat([p], width) for p in ps] for name, ps in held_pieces.items()}
    held = None
    if vali_fraction:
        if "vali" in splits:
            raise DataError(f"{splits['vali']}: data.vali_fraction={vali_fraction} holds validation queries out of train, "
                            "but the fold has a vali split too; set data.vali_fraction=0 or leave vali out of data.splits")
        held = held_out_queries(held_pieces[fit_name], vali_fraction, seed, str(splits[fit_name]))
    train_rows = [p.features if held is None else p.features[~p.meta["query_id"].is_in(held).to_numpy()]
                  for p in held_pieces[fit_name]]
    norm = Normalization.fit(train_rows, normalization, log1p)
    del train_rows

    stats: dict[str, Any] = {"num_features": width, "splits": {}}
    split_stats = {name: SplitStats(str(splits[name])) for name in names}
    if held is not None:
        split_stats["vali"] = SplitStats(str(splits[fit_name]))
        split_stats = {n: split_stats[n] for n in dict.fromkeys([fit_name, "vali", *names])}
        stats["held_out"] = {"split": "vali", "from": fit_name, "fraction": vali_fraction, "seed": seed, "queries": len(held)}
    with atomic_path(out_path) as tmp, pq.ParquetWriter(tmp, features_schema(width), use_dictionary=["query_id", "split"]) as writer:
        with write_behind(writer.write_table) as put:
            for name in names:
                pieces = held_pieces.pop(name) if name in held_pieces else read(name)
                for piece in pieces:
                    _write_piece(_with_split(piece, name, held if name == fit_name else None), put, split_stats,
                                 norm, width, drop_eval_queries_without_relevant)
        stats["splits"] = {name: s.d for name, s in split_stats.items()}
        meta = {"num_features": width, "normalization": norm.__dict__, "stats": stats}
        writer.add_key_value_metadata({FEATURES_METADATA_KEY: json.dumps(meta).encode()})
    return stats


@dataclass
class FeatureTable:
    """The features table in memory: row i of `features` is document index i everywhere downstream."""

    query_ids: np.ndarray  # str [N]
    doc_ids: np.ndarray  # str [N]
    labels: np.ndarray  # int8 [N] (-1 where unlabelled)
    features: np.ndarray  # float32 [N, F]
    splits: np.ndarray  # str [N]
    meta: dict[str, Any]
    path: str

    @property
    def num_features(self) -> int:
        return self.features.shape[1]

    def rows(self, split: str) -> np.ndarray:
        idx = np.flatnonzero(self.splits == split)
        if len(idx) == 0:
            raise DataError(f"{self.path}: no rows with split={split!r}; splits present: {sorted(set(self.splits))}")
        return idx


def _table_meta(path: Path, schema: pa.Schema) -> dict[str, Any] | None:
    """The ingest metadata: in the file's key-value metadata (streamed tables) or the schema's."""
    raw = (pq.ParquetFile(path).metadata.metadata or {}).get(FEATURES_METADATA_KEY) or (schema.metadata or {}).get(FEATURES_METADATA_KEY)
    return json.loads(raw) if raw else None


def read_features_meta(path: str | Path) -> dict[str, Any]:
    """The ingest metadata of a features table (its width at least), without reading its rows."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: features table not found")
    schema = pq.read_schema(path)
    return _table_meta(path, schema) or {"num_features": schema.field("features").type.list_size}


def table_rows(path: str | Path) -> int:
    """The number of documents (rows) of a features table, from its footer."""
    return int(pq.ParquetFile(path).metadata.num_rows)


def read_features(path: str | Path) -> FeatureTable:
    """Read row group by row group into one preallocated float32 array (peak: the array plus a
    row group); query and split ids share their string objects (dictionary-decoded)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: features table not found; run `python -m pipelines.simulate` or ingest a LETOR dataset first")
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(unreadable(path, e)) from None
    schema = pf.schema_arrow
    for col in ("query_id", "doc_id", "label", "features", "split"):
        if col not in schema.names:
            raise DataError(f"{path}: column {col!r} missing; not a features table written by ultr")
    ftype = schema.field("features").type
    if not pa.types.is_fixed_size_list(ftype):
        raise DataError(f"{path}: column 'features' must be a fixed-size list<float32>, got {ftype}")
    width = ftype.list_size
    meta = _table_meta(path, schema) or {"num_features": width}
    feats = np.empty((pf.metadata.num_rows, width), dtype=np.float32)
    at = 0
    for batch in pf.iter_batches(columns=["features"], batch_size=1 << 16):
        block = batch.column(0).flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
        feats[at:at + len(block)] = block
        at += len(block)
    if meta.get("ids"):
        feats = feats[:, :0]  # an ID table (ultr.data.log_features): its stored column is a placeholder
    table = pq.read_table(path, columns=["query_id", "doc_id", "label", "split"])
    labels = table.column("label").fill_null(-1).to_numpy().astype(np.int8)
    return FeatureTable(
        query_ids=shared_strings(table.column("query_id")),
        doc_ids=table.column("doc_id").to_numpy(),
        labels=labels,
        features=feats,
        splits=shared_strings(table.column("split")),
        meta=meta,
        path=str(path),
    )


def shared_strings(column: pa.ChunkedArray) -> np.ndarray:
    """Object array whose repeated values are one Python string each (8 bytes a row, not ~60)."""
    encoded = column.combine_chunks().dictionary_encode()
    return encoded.dictionary.to_numpy(zero_copy_only=False)[encoded.indices.to_numpy()]
