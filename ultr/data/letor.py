"""LETOR / SVMlight ingest: `label qid:Q idx:val ... # comment` files into the features table.

Dialects covered by one parser: MQ2007/MQ2008 (46 features, `#docid = ...` comments),
MSLR-WEB10K/30K (136, no comments), Yahoo LTR set 1 (700, sparse ids), Istella(-S) (220).
Missing feature ids are 0. The width is taken from the data unless configured.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ultr.data.io import write_parquet
from ultr.data.schema import FEATURES_METADATA_KEY, features_schema
from ultr.errors import DataError

_DOCID = re.compile(r"docid\s*=\s*(\S+)")


@dataclass
class ParsedSplit:
    """One parsed SVMlight file: parallel arrays, rows grouped by query as in the file."""

    query_ids: list[str]
    doc_ids: list[str]
    labels: np.ndarray  # int8 [N]
    features: np.ndarray  # float32 [N, F]


def _open_text(path: Path) -> Iterable[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def parse_svmlight(path: str | Path, num_features: int | None = None) -> ParsedSplit:
    """Parse one SVMlight file strictly; every malformed line fails with `file:line` and the fix."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    qids: list[str] = []
    docids: list[str] = []
    labels: list[int] = []
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    finished: set[str] = set()
    current: str | None = None
    in_query = 0
    try:
        with _open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                body, _, comment = line.partition("#")
                tokens = body.split()
                if not tokens:
                    continue
                where = f"{path}:{lineno}"
                try:
                    label = int(tokens[0])
                except ValueError:
                    raise DataError(f"{where}: label {tokens[0]!r} is not an integer; the first token must be the graded label") from None
                if not -128 <= label <= 127:
                    raise DataError(f"{where}: label {label} does not fit a graded relevance label (int8)")
                if len(tokens) < 2 or not tokens[1].startswith("qid:") or len(tokens[1]) == 4:
                    got = tokens[1] if len(tokens) > 1 else "end of line"
                    raise DataError(f"{where}: expected 'qid:<id>' as the second token, got {got!r}")
                qid = tokens[1][4:]
                if qid != current:
                    if qid in finished:
                        raise DataError(
                            f"{where}: qid {qid} appears again after other queries; "
                            "SVMlight files must keep each query's rows together (sort the file by qid)"
                        )
                    if current is not None:
                        finished.add(current)
                    current, in_query = qid, 0
                row = len(labels)
                for tok in tokens[2:]:
                    idx_s, sep, val_s = tok.partition(":")
                    try:
                        idx = int(idx_s)
                        val = float(val_s)
                    except ValueError:
                        idx, val = -1, math.nan
                    if not sep or idx < 1:
                        raise DataError(f"{where}: bad token {tok!r}; expected '<feature id >= 1>:<value>'")
                    if not math.isfinite(val):
                        raise DataError(f"{where}: feature {idx} has non-finite value {val_s!r}; replace it with a finite number")
                    if num_features is not None and idx > num_features:
                        raise DataError(f"{where}: feature id {idx} exceeds the configured width {num_features}; raise data.num_features")
                    rows.append(row)
                    cols.append(idx - 1)
                    vals.append(val)
                m = _DOCID.search(comment)
                docids.append(m.group(1) if m else f"{qid}-{in_query}")
                qids.append(qid)
                labels.append(label)
                in_query += 1
    except (EOFError, OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e}); the file is truncated or not text/gzip") from None
    if not labels:
        raise DataError(f"{path}: no data lines; expected SVMlight rows 'label qid:Q idx:val ...'")
    width = num_features if num_features is not None else (max(cols) + 1 if cols else 0)
    dense = np.zeros((len(labels), width), dtype=np.float32)
    dense[np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)] = np.asarray(vals, dtype=np.float32)
    return ParsedSplit(qids, docids, np.asarray(labels, dtype=np.int8), dense)


@dataclass
class Normalization:
    """Feature transform fitted on the train split and stored with the table: x -> (f(x) - shift) / scale."""

    method: str = "none"  # none | minmax | zscore
    log1p: bool = False
    shift: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, x: np.ndarray, method: str, log1p: bool) -> "Normalization":
        if method not in ("none", "minmax", "zscore"):
            raise DataError(f"normalization {method!r} is unknown; use none, minmax or zscore")
        x = _signed_log1p(x) if log1p else x
        if method == "minmax":
            lo, hi = x.min(axis=0), x.max(axis=0)
            shift, scale = lo, hi - lo
        elif method == "zscore":
            shift, scale = x.mean(axis=0), x.std(axis=0)
        else:
            shift, scale = np.zeros(x.shape[1]), np.ones(x.shape[1])
        scale = np.where(scale > 0, scale, 1.0)  # constant features stay finite
        return cls(method, log1p, [float(v) for v in shift], [float(v) for v in scale])

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = _signed_log1p(x) if self.log1p else x
        if self.method == "none":
            return x.astype(np.float32)
        return ((x - np.asarray(self.shift)) / np.asarray(self.scale)).astype(np.float32)


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def ingest_letor(
    splits: dict[str, str | Path],
    out_path: str | Path,
    *,
    num_features: int | None = None,
    normalization: str = "none",
    log1p: bool = False,
    drop_eval_queries_without_relevant: bool = False,
) -> dict[str, Any]:
    """Parse each split, normalise with train statistics, write one features table; return its stats."""
    parsed = {name: parse_svmlight(p, num_features) for name, p in splits.items()}
    width = num_features or max(s.features.shape[1] for s in parsed.values())
    for s in parsed.values():  # splits may see different max feature ids; missing ids are 0
        if s.features.shape[1] < width:
            s.features = np.pad(s.features, ((0, 0), (0, width - s.features.shape[1])))
    fit_on = parsed.get("train") or next(iter(parsed.values()))
    norm = Normalization.fit(fit_on.features, normalization, log1p)

    stats: dict[str, Any] = {"num_features": width, "splits": {}}
    tables = []
    for name, s in parsed.items():
        qids = np.asarray(s.query_ids)
        uq, inv = np.unique(qids, return_inverse=True)
        has_rel = np.zeros(len(uq), dtype=bool)
        np.logical_or.at(has_rel, inv, s.labels > 0)
        keep = np.ones(len(qids), dtype=bool)
        dropped = 0
        if drop_eval_queries_without_relevant and name != "train":
            keep = has_rel[inv]
            dropped = int((~has_rel).sum())
        stats["splits"][name] = {
            "path": str(splits[name]),
            "queries": int(len(uq)),
            "documents": int(len(qids)),
            "queries_without_relevant": int((~has_rel).sum()),
            "queries_dropped_without_relevant": dropped,
            "label_counts": {int(k): int(v) for k, v in zip(*np.unique(s.labels, return_counts=True))},
        }
        feats = norm.apply(s.features[keep])
        tables.append(
            pa.table(
                {
                    "query_id": pa.array(qids[keep].tolist(), pa.string()),
                    "doc_id": pa.array(np.asarray(s.doc_ids)[keep].tolist(), pa.string()),
                    "label": pa.array(s.labels[keep], pa.int8()),
                    "features": pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1), pa.float32()), width),
                    "split": pa.array([name] * int(keep.sum()), pa.string()),
                },
                schema=features_schema(width),
            )
        )
    meta = {"num_features": width, "normalization": norm.__dict__, "stats": stats}
    table = pa.concat_tables(tables).replace_schema_metadata({FEATURES_METADATA_KEY: json.dumps(meta).encode()})
    write_parquet(table, out_path)
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


def read_features(path: str | Path) -> FeatureTable:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: features table not found; run `python -m pipelines.simulate` or ingest a LETOR dataset first")
    table = pq.read_table(path)
    for col in ("query_id", "doc_id", "label", "features", "split"):
        if col not in table.column_names:
            raise DataError(f"{path}: column {col!r} missing; not a features table written by ultr")
    ftype = table.schema.field("features").type
    if not pa.types.is_fixed_size_list(ftype):
        raise DataError(f"{path}: column 'features' must be a fixed-size list<float32>, got {ftype}")
    width = ftype.list_size
    raw_meta = (table.schema.metadata or {}).get(FEATURES_METADATA_KEY)
    meta = json.loads(raw_meta) if raw_meta else {"num_features": width}
    feats = table.column("features").combine_chunks().flatten().to_numpy().reshape(-1, width).astype(np.float32, copy=False)
    labels = table.column("label").to_numpy(zero_copy_only=False)
    labels = np.where(np.isnan(labels.astype(float)), -1, labels).astype(np.int8) if labels.dtype.kind == "f" else labels.astype(np.int8)
    return FeatureTable(
        query_ids=np.asarray(table.column("query_id").to_pylist(), dtype=object),
        doc_ids=np.asarray(table.column("doc_id").to_pylist(), dtype=object),
        labels=labels,
        features=feats,
        splits=np.asarray(table.column("split").to_pylist(), dtype=object),
        meta=meta,
        path=str(path),
    )
