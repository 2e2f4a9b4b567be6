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
from ultr.data.readers.common import LINE, Quarantine, ReaderPolicy, bad_numbers, finish, iter_line_chunks, write_part
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
QUERY_FIELDS = (2, 3)  # qid, query[, reformulation]
BEHAVIOUR = {c: pl.Float32 for c in DOC_COLUMNS[8:] if not c.startswith("_")}
BEHAVIOUR.update({"multimedia_type": pl.Int32, "skip": pl.Int8, "first_click": pl.Int8, "final_click": pl.Int8, "last_click": pl.Int8})
REQUIRED = {"position": pl.Int16, "click": pl.Int8}


def convert_baidu(paths: list[Path], out_dir: Path, policy: ReaderPolicy) -> dict[str, Any]:
    quarantine = Quarantine()
    stats = {"format": "baidu", "files": [str(p) for p in paths], "lines": 0, "sessions": 0, "impressions": 0, "clicks": 0}
    next_session = 0
    part = 0
    with atomic_dir(out_dir / "clicks") as parts:
        for path in paths:
            carry: pl.DataFrame | None = None
            chunks = iter_line_chunks(Path(path), policy.chunk_bytes)
            for chunk in _with_sentinel(chunks):
                last = chunk is None
                lines = carry if last else (chunk if carry is None else pl.concat([carry, chunk]))
                if lines is None or lines.height == 0:
                    continue
                lines = lines.with_columns(pl.col("text").str.count_matches("\t", literal=True).alias("_tabs") + 1)
                is_query = pl.col("_tabs").is_in(QUERY_FIELDS)
                if not last:
                    # A session may continue into the next chunk: keep it back from its query line on.
                    q_at = lines.select(pl.arg_where(is_query)).to_series()
                    if len(q_at) <= 1:
                        carry = lines.drop("_tabs")
                        continue
                    cut = int(q_at[-1])
                    carry, lines = lines[cut:].drop("_tabs"), lines[:cut]
                df, n_sessions = _parse(lines, str(path), next_session, policy, quarantine)
                stats["lines"] += lines.height
                next_session += n_sessions
                stats["sessions"] += n_sessions
                if df.height:
                    stats["impressions"] += df.height
                    stats["clicks"] += int(df["click"].sum())
                    write_part(df, parts, part)
                    part += 1
                if last:
                    break
    if stats["sessions"] == 0:
        raise DataError(f"{paths}: no sessions found; expected Baidu-ULTR query lines followed by document lines")
    return finish(out_dir / "clicks", quarantine, out_dir, stats)


def _with_sentinel(it):
    yield from it
    yield None


def _parse(lines: pl.DataFrame, source: str, first_session: int, policy: ReaderPolicy, quarantine: Quarantine) -> tuple[pl.DataFrame, int]:
    is_query = pl.col("_tabs").is_in(QUERY_FIELDS)
    lines = lines.filter(pl.col("text").str.len_bytes() > 0)
    lines = lines.with_columns(is_query.cum_sum().alias("_s"))
    orphan = lines.filter(pl.col("_s") == 0)
    if orphan.height:
        raise DataError(f"{source}:{orphan[LINE][0]}: document line before any query line; a Baidu-ULTR part starts with a query line")
    wrong = lines.filter(~is_query & (pl.col("_tabs") != len(DOC_COLUMNS)))
    quarantine.add(source, wrong, f"document line without {len(DOC_COLUMNS)} tab-separated fields", policy.on_bad_line,
                   "check the file is a Baidu-ULTR training part, or set log.on_bad_line=quarantine")
    lines = lines.filter(is_query | (pl.col("_tabs") == len(DOC_COLUMNS)))
    queries = lines.filter(is_query).select(
        "_s", pl.col("text").str.split_exact("\t", 2).struct.field("field_0").alias("query_id"),
        *([pl.col("text").str.split_exact("\t", 2).struct.field("field_1").alias("query")] if policy.keep_text else []),
    )
    docs = lines.filter(~is_query).with_columns(pl.col("text").str.split("\t").alias("_f"))
    keep = ["position", "url_md5", "click", *BEHAVIOUR] + (["title", "abstract"] if policy.keep_text else [])
    docs = docs.select(LINE, "_s", "text", *[pl.col("_f").list.get(DOC_COLUMNS.index(c)).alias(c) for c in keep])
    numeric = {**REQUIRED, **BEHAVIOUR}
    bad = docs.filter(bad_numbers(docs, numeric) | ~pl.col("click").is_in(["0", "1"]) | (pl.col("position").cast(pl.Int16, strict=False) < 1))
    quarantine.add(source, bad.select(LINE, "text"), "non-numeric field, click not 0/1, or position < 1", policy.on_bad_line,
                   "fix the line or set log.on_bad_line=quarantine")
    docs = docs.join(bad.select(LINE), on=LINE, how="anti").with_columns([pl.col(c).cast(t) for c, t in numeric.items()])
    n_sessions = int(lines.filter(is_query).height)
    out = docs.join(queries, on="_s", how="left").select(
        (pl.col("_s").cast(pl.Int64) + first_session - 1).alias("session_id"),
        "query_id", pl.col("url_md5").alias("doc_id"), "position", "click",
        *[c for c in keep if c not in ("position", "url_md5", "click")],
        *(["query"] if policy.keep_text else []),
    )
    dup = out.group_by("session_id", "position").len().filter(pl.col("len") > 1)
    if dup.height:
        s, p = dup.row(0)[:2]
        lines_dup = docs.filter((pl.col("_s") == s - first_session + 1) & (pl.col("position") == p))[LINE].to_list()
        raise DataError(f"{source}:{lines_dup[0]}: position {p} appears twice in one session (lines {lines_dup}); positions must be unique per query")
    return out, n_sessions


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
