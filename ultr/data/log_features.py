"""A features table built from the click log itself: logs such as Baidu-ULTR carry per-impression
feature columns (BM25 and other lexical scores, or an embedding list column) beside query,
document, position and click, and logs such as the Yandex sample carry ids only.

`log.features=[col, ...]` names the columns (scalars and list columns, concatenated in that
order); an empty list builds an ID table, one row per (query, document) pair for the ID ranker.
A pair must carry the same features wherever it appears: pairs that do not are counted and
reported, and the first impression's values are kept (`on_conflict=error` stops instead)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from ultr.data.clicklog import ROW
from ultr.data.io import write_parquet
from ultr.data.letor import Normalization
from ultr.data.schema import FEATURES_METADATA_KEY, features_schema
from ultr.errors import DataError

# Parquet has no fixed-size list of width 0, so an ID table stores one zero column and says
# `num_features: 0` in its metadata (read_features returns [N, 0]).
ID_WIDTH = 1


def _kinds(lf: pl.LazyFrame, columns: Sequence[str], source: str) -> dict[str, bool]:
    """Per named column: whether it is a list column (else a scalar); unknown or non-numeric columns are errors."""
    schema = lf.collect_schema()
    if missing := [c for c in columns if c not in schema]:
        raise DataError(f"{source}: log.features names column(s) {missing} the log does not have; its columns: {[c for c in schema if c != ROW]}")
    kinds = {}
    for c in columns:
        dtype = schema[c]
        if not (isinstance(dtype, (pl.List, pl.Array)) or dtype.is_numeric() or dtype in (pl.Boolean, pl.String)):
            raise DataError(f"{source}: log.features column {c!r} is {dtype}; use numeric columns or lists of numbers")
        kinds[c] = isinstance(dtype, (pl.List, pl.Array))
    return kinds


def _number(c: str, is_list: bool) -> pl.Expr:
    return pl.col(c).cast(pl.List(pl.Float32), strict=False) if is_list else pl.col(c).cast(pl.Float32, strict=False)


def _check_values(lf: pl.LazyFrame, kinds: dict[str, bool], source: str) -> None:
    """A missing or non-numeric feature value is an error naming its row (nothing is imputed)."""
    def bad(c: str, is_list: bool) -> pl.Expr:
        x = _number(c, is_list)
        return (x.is_null() | x.list.eval(pl.element().is_null()).list.any()) if is_list else x.is_null()

    found = (lf.select(ROW, *[bad(c, k).alias(c) for c, k in kinds.items()])
             .filter(pl.any_horizontal(list(kinds))).head(1).collect())
    if found.height:
        col = next(c for c in kinds if found[c][0])
        raise DataError(f"{source}: row {int(found[ROW][0]) + 1}: log.features column {col!r} is missing or not a number; "
                        "fill it in the log, or leave the column out of log.features")


def features_from_log(lf: pl.LazyFrame, columns: Sequence[str], out_path: Path, *, source: str,
                      normalization: str = "zscore", log1p: bool = True, on_conflict: str = "first",
                      fitted: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write `out_path` (a features table, split `train`, no labels) from the log's (query, document)
    pairs; returns its stats. Normalisation statistics come from the table's rows (one per pair),
    or are `fitted` ones (a training table's, for a log a trained ranker is evaluated on)."""
    if on_conflict not in ("first", "error"):
        raise DataError(f"log.on_feature_conflict={on_conflict!r}; use first or error")
    columns = list(columns)
    keys = [pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String)]
    if columns:
        kinds = _kinds(lf, columns, source)
        _check_values(lf, kinds, source)
        vec = pl.concat_list([_number(c, k) for c, k in kinds.items()]).alias("_f")
        pairs = (lf.select(*keys, vec).group_by("query_id", "doc_id", maintain_order=True)
                 .agg(pl.col("_f").first(), pl.col("_f").hash().n_unique().alias("_variants")))
    else:
        pairs = lf.select(*keys).unique(maintain_order=True).with_columns(pl.lit(1, pl.UInt32).alias("_variants"))
    pairs = pairs.sort("query_id", "doc_id").collect(engine="streaming")
    conflicts = int((pairs["_variants"] > 1).sum())
    if conflicts and on_conflict == "error":
        q, d = pairs.filter(pl.col("_variants") > 1).row(0)[:2]
        raise DataError(f"{source}: (query_id={q!r}, doc_id={d!r}) carries different features in different impressions "
                        f"({conflicts} pairs do); log.on_feature_conflict=first keeps each pair's first impression")
    x, width = _matrix(pairs, columns, source)
    norm = Normalization(**fitted) if fitted else Normalization.fit(x, normalization, log1p) if columns else Normalization()
    stats = {"source": source, "columns": columns, "pairs": pairs.height, "queries": pairs["query_id"].n_unique(),
             "num_features": width if columns else 0, "conflicting_pairs": conflicts, "kept_on_conflict": "first impression"}
    _write(pairs, norm.apply(x) if columns else x, out_path, {**stats, "ids": not columns, "normalization": norm.__dict__})
    print(f"features from {source}: {stats['pairs']} (query, document) pairs, "
          f"{f'{width} features from {columns}' if columns else 'ids only (ID ranker)'}; "
          f"pairs with conflicting features: {conflicts}" + (" (first impression kept)" if conflicts else ""), file=sys.stderr)
    return stats


def _matrix(pairs: pl.DataFrame, columns: list[str], source: str) -> tuple[np.ndarray, int]:
    if not columns:
        return np.zeros((pairs.height, ID_WIDTH), np.float32), ID_WIDTH
    lengths = pairs["_f"].list.len()
    width = int(lengths[0]) if pairs.height else 0
    if pairs.height and (lengths != width).any():
        i = int((lengths != width).arg_true()[0])
        raise DataError(f"{source}: (query_id={pairs['query_id'][i]!r}, doc_id={pairs['doc_id'][i]!r}) has "
                        f"{int(lengths[i])} features, others {width}; list columns in log.features must have one length")
    if width == 0:
        raise DataError(f"{source}: log.features={columns} yields no feature values; name numeric or list columns")
    return np.asarray(pairs["_f"].explode().to_numpy(), np.float32).reshape(-1, width), width


def _write(pairs: pl.DataFrame, x: np.ndarray, out_path: Path, meta: dict[str, Any]) -> None:
    width = x.shape[1]
    schema = features_schema(width).with_metadata({FEATURES_METADATA_KEY: json.dumps(meta).encode()})
    table = pa.table({
        "query_id": pairs["query_id"].to_arrow(), "doc_id": pairs["doc_id"].to_arrow(),
        "label": pa.nulls(pairs.height, pa.int8()),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), width),
        "split": pairs["split"].to_arrow() if "split" in pairs.columns else pa.array(["train"] * pairs.height, pa.string()),
    }, schema=schema)
    write_parquet(table, out_path)


def extend_id_table(table: str | Path, lf: pl.LazyFrame, out_path: Path) -> tuple[int, int]:
    """An ID table with another log's unseen (query, document) pairs appended after its own rows
    (split `test`), so that log's sessions can be indexed; returns (rows before, rows added). The
    existing rows keep their indices: they are what the ID ranker learned scores for."""
    known = pl.read_parquet(table, columns=["query_id", "doc_id"])
    pairs = lf.select(pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String)).unique()
    new = pairs.join(known.lazy(), on=["query_id", "doc_id"], how="anti").sort("query_id", "doc_id").collect(engine="streaming")
    rows = pl.concat([known.with_columns(pl.lit("train").alias("split")), new.with_columns(pl.lit("test").alias("split"))])
    meta = {"ids": True, "num_features": 0, "source": f"{table} + unseen pairs of an evaluation log", "normalization": {}}
    _write(rows, np.zeros((rows.height, ID_WIDTH), np.float32), out_path, meta)
    return known.height, new.height
