"""Generic click logs (Parquet/CSV/JSONL with session, query, document, position, click) as lazy
Polars frames in the one click-log schema, plus the writer the simulator uses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from ultr.data.io import atomic_path, unreadable
from ultr.data.schema import CLICK_LOG_COLUMNS, CLICK_LOG_SCHEMA
from ultr.errors import DataError

ROW = "_row"  # 0-based input row, kept so every error can name the row it found


def scan_click_log(path: str | Path, columns: Mapping[str, str] | None = None) -> pl.LazyFrame:
    """Lazily scan a generic log; `columns` maps schema names to the file's names (e.g. {click: clicked})."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: click log not found")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if path.is_dir() or path.suffix.lower() == ".parquet":
        lf = pl.scan_parquet(path / "*.parquet" if path.is_dir() else path)
        try:
            lf.collect_schema()  # reads the footer: a truncated or foreign file fails here
        except (pl.exceptions.PolarsError, OSError) as e:
            raise DataError(unreadable(path, e)) from None
    elif path.suffix.lower() in (".csv", ".tsv") or suffixes in (".csv.gz", ".tsv.gz"):
        # Read every column as text: the cast below reports non-numeric values with their row.
        sep = "\t" if ".tsv" in suffixes else ","
        lf = pl.scan_csv(path, separator=sep, infer_schema=False)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        lf = pl.scan_ndjson(path)
    else:
        raise DataError(f"{path}: unknown click-log format {path.suffix!r}; use .parquet, .csv, .tsv or .jsonl")
    if columns:
        rename = {src: dst for dst, src in columns.items() if src != dst}
        lf = lf.rename(rename, strict=False)
    schema = lf.collect_schema()
    missing = [c for c in CLICK_LOG_COLUMNS if c not in schema]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; found {list(schema)}. "
            f"Name them {list(CLICK_LOG_COLUMNS)} or map yours with log.columns.<name>=<your column>"
        )
    return lf.with_row_index(ROW)


def _lines(path: Path) -> pl.LazyFrame:
    """The file's lines, one string column (a separator and quote that text lines do not hold)."""
    return pl.scan_csv(path, has_header=False, new_columns=["line"], separator="\x1f", quote_char=None,
                       infer_schema=False).with_row_index("line_number", offset=1)


def _first_ragged_line(path: Path, sep: str) -> tuple[int, int, int] | None:
    counts = _lines(path).select("line_number", pl.col("line").str.count_matches(sep, literal=True).alias("n")).collect()
    if counts.height < 2:
        return None
    header = counts["n"][0]
    bad = counts.slice(1).filter(pl.col("n") != header).head(1)
    return None if bad.is_empty() else (int(bad["line_number"][0]), int(bad["n"][0]) + 1, header + 1)


def _first_bad_json_line(path: Path, block: int = 1 << 20) -> tuple[int, str] | None:
    """Decode blocks of lines at once (streamed: memory is one block); only a failing block is
    searched line by line."""
    for part in _lines(path).filter(pl.col("line").str.strip_chars() != "").collect_batches(chunk_size=block):
        try:
            part["line"].str.json_decode(infer_schema_length=None)
            continue
        except pl.exceptions.PolarsError:
            pass
        for number, text in part.iter_rows():
            try:
                json.loads(text)
            except ValueError as e:
                return number, str(e)
    return None


def explain_read_error(path: str | Path, error: BaseException) -> str:
    """A one-line message for a log Polars could not parse: the line at fault where it can be found."""
    path = Path(path)
    name = "".join(path.suffixes[-2:]).lower()
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    if path.is_file() and (".csv" in name or ".tsv" in name) and not name.endswith(".gz"):
        sep = "\t" if ".tsv" in name else ","
        found = _first_ragged_line(path, sep)
        if found:
            line, n, want = found
            return f"{path}:{line}: {n} fields where the header has {want}; fix or remove that line (a quoted separator counts as one)"
    if path.is_file() and path.suffix.lower() in (".jsonl", ".ndjson"):
        found = _first_bad_json_line(path)
        if found:
            return f"{path}:{found[0]}: not a JSON object ({found[1]}); write one JSON object per line"
    if path.is_dir() or path.suffix.lower() == ".parquet":
        return unreadable(path, error)
    return f"{path}: could not be parsed ({first}); check that it is a complete {path.suffix or 'text'} click log"


@dataclass
class ClickLogBlock:
    """Impressions as integer codes: rows of the query and document vocabularies."""

    session_id: np.ndarray
    query_index: np.ndarray
    doc_index: np.ndarray
    position: np.ndarray
    click: np.ndarray


def write_click_log(path: str | Path, query_ids: np.ndarray, doc_ids: np.ndarray, blocks: Iterable[ClickLogBlock]) -> int:
    """Write impressions block by block into string vocabularies (no per-row Python work; memory
    is a block plus the vocabularies). Returns the rows written; the file appears when complete."""
    queries, docs = pa.array(query_ids, pa.string()), pa.array(doc_ids, pa.string())

    def decode(vocab: pa.Array, codes: np.ndarray) -> pa.Array:
        return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), vocab).dictionary_decode()

    rows = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, CLICK_LOG_SCHEMA) as writer:
        for b in blocks:
            writer.write_table(pa.table({
                "session_id": pa.array(b.session_id, pa.int64()),
                "query_id": decode(queries, b.query_index),
                "doc_id": decode(docs, b.doc_index),
                "position": pa.array(b.position, pa.int16()),
                "click": pa.array(b.click, pa.int8()),
            }, schema=CLICK_LOG_SCHEMA), row_group_size=1 << 20)
            rows += len(b.session_id)
    return rows
