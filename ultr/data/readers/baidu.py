"""Baidu-ULTR raw training parts (`part-NNNNN.gz`; Zou et al., "A Large Scale Search Dataset for
Unbiased Learning to Rank", NeurIPS 2022) and its expert annotation file.

Each session is a query line `qid \\t query \\t query_reformulation` followed by one line per
displayed document with the dataset's published columns (below). Sessions are numbered in file
order across all given parts; `query_id` is the qid, `doc_id` the URL hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ultr.data.io import atomic_dir
from ultr.data.readers.common import LINE, PartWriter, Quarantine, ReaderPolicy, finish, iter_byte_chunks, iter_line_chunks, read_ahead
from ultr.errors import DataError

# The published document-line columns, in order ("-" columns are unnamed in the release).
DOC_COLUMNS = [
    "position", "url_md5", "title", "abstract", "multimedia_type", "click", "_unused_6", "_unused_7",
    "skip", "serp_height", "displayed_time", "displayed_time_middle", "first_click", "displayed_count",
    "serp_max_show_height", "slipoff_count_after_click", "dwelling_time", "displayed_time_top",
    "serp_to_top", "displayed_count_top", "displayed_count_bottom", "slipoff_count", "_unused_22",
    "final_click", "displayed_time_bottom", "click_count", "displayed_count_2", "_unused_27",
    "last_click", "reverse_display_count", "displayed_count_middle", "_unused_31",
]
BEHAVIOUR = {c: pl.Float32 for c in DOC_COLUMNS[8:] if not c.startswith("_")}
BEHAVIOUR.update({"multimedia_type": pl.Int32, "skip": pl.Int8, "first_click": pl.Int8, "final_click": pl.Int8, "last_click": pl.Int8})


_CSV_SCHEMA: dict[str, pl.DataType] = {f"c{i}": pl.String for i in range(len(DOC_COLUMNS) + 1)}  # +1 catches long lines
_CSV_SCHEMA.update({f"c{DOC_COLUMNS.index(c)}": t for c, t in BEHAVIOUR.items()})
_CSV_SCHEMA["c5"] = pl.Int8


def _parse_text(data: bytes) -> pl.LazyFrame:
    """Native, typed CSV parse of a piece of a part: numbers are parsed while reading (no string round trip)."""
    return pl.read_csv(data, separator="\t", has_header=False, quote_char=None, truncate_ragged_lines=True,
                       missing_columns="insert", schema=_CSV_SCHEMA, ignore_errors=True).lazy()


def _is_query_line(line: bytes) -> bool:
    # The parser's rule below: a first field, and at most 3 fields (qid, query[, reformulation]).
    return line.count(b"\t") <= 2 and line[:1] not in (b"", b"\t", b"\r")


def _session_start(block: bytes) -> int:
    """Offset of the last complete query line in a block that does not start it (the block's first
    line may continue the previous block's last), so a piece ends with whole sessions; -1 if none."""
    end = block.rfind(b"\n")  # lines after this one may be incomplete
    while end > 0:
        start = block.rfind(b"\n", 0, end) + 1
        if start == 0:
            return -1
        if _is_query_line(block[start:end]):
            return start
        end = start - 1
    return -1


def convert_baidu(paths: list[Path], out_dir: Path, policy: ReaderPolicy) -> dict[str, Any]:
    """Each part is read in pieces of about `policy.chunk_bytes` that end with whole sessions (a
    piece is cut before a query line), so peak memory follows the piece size, not the part or log
    size; each piece becomes one click-log part with its own disjoint session range."""
    quarantine = Quarantine()
    stats: dict[str, Any] = {"format": "baidu", "files": [str(p) for p in paths], "lines": 0, "sessions": 0,
                             "impressions": 0, "clicks": 0, "behaviour_values_missing": 0}
    next_session = 0
    with atomic_dir(out_dir / "clicks") as parts:
        writer = PartWriter(parts, stats)
        for path in paths:
            path = Path(path)
            if not path.exists():
                raise DataError(f"{path}: no such file")
            for data, first_line in read_ahead(iter_byte_chunks(path, policy.chunk_bytes, _session_start)):
                df, n_sessions, lines, missing = _parse_piece(str(path), data, first_line, next_session, policy, quarantine)
                del data
                stats["lines"] += lines
                stats["behaviour_values_missing"] += missing
                next_session += n_sessions
                writer.add(df, n_sessions)
    if stats["sessions"] == 0:
        raise DataError(f"{paths}: no sessions found; expected Baidu-ULTR query lines followed by document lines")
    return finish(out_dir / "clicks", quarantine, out_dir, stats)


def _parse_piece(source: str, data: bytes, first_line: int, first_session: int, policy: ReaderPolicy,
                 quarantine: Quarantine) -> tuple[pl.DataFrame, int, int, int]:
    c = pl.col
    blank = pl.all_horizontal([c(f"c{i}").is_null() for i in range(6)])
    # Query lines have 2-3 fields (qid, query[, reformulation]); document lines have 32.
    is_query = c("c0").is_not_null() & c("c3").is_null() & c("c4").is_null() & c("c5").is_null()
    lf = _parse_text(data).with_row_index(LINE, offset=first_line).filter(~blank)
    lf = lf.with_columns(is_query.alias("_isq")).with_columns(
        c("_isq").cum_sum().alias("_s"), pl.when(c("_isq")).then(c("c0")).forward_fill().alias("query_id"),
    )
    keep = {name: f"c{DOC_COLUMNS.index(name)}" for name in ("title", "abstract")} if policy.keep_text else {}
    lines = lf.select(
        LINE, "_isq", "_s", "query_id", c("c0").alias("_c0"), c("c0").cast(pl.Int16, strict=False).alias("position"),
        c("c1").alias("doc_id"), c("c4").alias("_c4"), c("c5").alias("click"), c("c32").is_not_null().alias("_long"),
        *[c(f"c{DOC_COLUMNS.index(name)}").alias(name) for name in BEHAVIOUR],
        *[c(col).alias(name) for name, col in keep.items()],
        *([c("c1").alias("query")] if policy.keep_text else []),
    )
    # One parse of the piece feeds every output (collect_all shares it): the document lines,
    # the line/session counts, and the query texts when they are kept.
    plans = [lines.filter(~c("_isq")).drop("_isq"), lf.select(pl.len().alias("lines"), c("_isq").sum().alias("sessions"))]
    if policy.keep_text:
        plans.append(lines.filter("_isq").select("_s", "query"))
    df, counts, *queries_out = pl.collect_all(plans, engine="streaming")
    n_lines, n_sessions = int(counts["lines"][0]), int(counts["sessions"][0])
    queries = queries_out[0] if queries_out else None
    if df.height and df["_s"].min() == 0:
        orphan = df.filter(c("_s") == 0)
        raise DataError(f"{source}:{orphan[LINE][0]}: document line before any query line; a Baidu-ULTR part starts with a query line")
    bad = (c("position").is_null() | (c("position") < 1) | c("doc_id").is_null() | ~c("click").is_in([0, 1]) | c("_long")).fill_null(True)
    bad_rows = df.filter(bad).select(
        LINE, pl.concat_str([c("_c0"), c("doc_id"), c("_c4").cast(pl.String), c("click").cast(pl.String)], separator="\t", ignore_nulls=True).alias("text")
    )
    quarantine.add(source, bad_rows, f"document line without {len(DOC_COLUMNS)} fields or with a missing/non-numeric position, url or click",
                   policy.on_bad_line, "check the file is a Baidu-ULTR training part, or set log.on_bad_line=quarantine")
    if bad_rows.height:
        df = df.filter(~bad)
    # Pages list their documents by increasing position; only a page that does not needs the
    # exact (hash-based) duplicate search.
    sess, pos = df["_s"].to_numpy(), df["position"].to_numpy()
    increasing = bool(((sess[1:] != sess[:-1]) | (pos[1:] > pos[:-1])).all())
    dup = df.head(0) if increasing else df.filter(pl.struct("_s", "position").is_duplicated())
    if dup.height:
        raise DataError(f"{source}:{dup[LINE][0]}: position {dup['position'][0]} appears twice in one session (lines {dup[LINE].to_list()[:5]}); positions must be unique per query")
    missing = int(df.select(pl.sum_horizontal([c(b).is_null() for b in BEHAVIOUR]).sum()).item())
    if queries is not None:
        df = df.drop("query").join(queries, on="_s", how="left")
    out = df.select(
        (c("_s").cast(pl.Int64) + first_session - 1).alias("session_id"), "query_id", "doc_id", "position", "click",
        *BEHAVIOUR, *keep, *(["query"] if policy.keep_text else []),
    )
    return out, n_sessions, n_lines, missing


def read_baidu_annotations(path: str | Path) -> pl.DataFrame:
    """Expert annotation file: query, title, abstract (token ids joined by \\x01), label 0-4,
    frequency bucket 0-9; tab-separated, one judged document per line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    names = ["query", "title", "abstract", "label", "bucket"]
    frames = []
    for chunk in iter_line_chunks(path, 64 << 20):
        chunk = chunk.filter(pl.col("text").str.len_bytes() > 0)
        n = chunk.select(pl.col("text").str.count_matches("\t", literal=True) + 1).to_series()
        wrong = chunk.filter(n != len(names))
        if wrong.height:
            raise DataError(f"{path}:{wrong[LINE][0]}: expected {len(names)} tab-separated fields (query, title, abstract, label, bucket)")
        f = chunk.with_columns(pl.col("text").str.split("\t").alias("_f")).select(LINE, *[pl.col("_f").list.get(i).alias(c) for i, c in enumerate(names)])
        bad = f.filter(pl.col("label").cast(pl.Int8, strict=False).is_null() | pl.col("bucket").cast(pl.Int8, strict=False).is_null())
        if bad.height:
            raise DataError(f"{path}:{bad[LINE][0]}: label and bucket must be integers")
        frames.append(f.with_columns(pl.col("label").cast(pl.Int8), pl.col("bucket").cast(pl.Int8)).drop(LINE))
    if not frames:
        raise DataError(f"{path}: empty annotation file")
    return pl.concat(frames)
