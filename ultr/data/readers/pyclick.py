"""PyClick's grouped Yandex format (the early PyClick examples; the real sample in
`../shared/data/yandex-relpred-sample`): each line holds sessions of one query separated by `;`,

    query \\t d1,d2,...,d10 : c1 , c2 , ...

clicked document ids in click order (they may repeat, and a few are not on the page). Sessions
are numbered in file order; repeated clicks count into `click_count`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ultr.data.io import atomic_dir
from ultr.data.readers.common import LINE, PartWriter, Quarantine, ReaderPolicy, finish, iter_line_chunks
from ultr.errors import DataError


def convert_pyclick(paths: list[Path], out_dir: Path, policy: ReaderPolicy) -> dict[str, Any]:
    quarantine = Quarantine()
    stats: dict[str, Any] = {"format": "pyclick", "files": [str(p) for p in paths], "lines": 0, "sessions": 0,
                             "impressions": 0, "clicks": 0, "repeated_clicks": 0}
    next_session = 0
    with atomic_dir(out_dir / "clicks") as parts:
        writer = PartWriter(parts, stats)
        for path in paths:
            for lines in iter_line_chunks(Path(path), policy.chunk_bytes):  # a line never spans chunks
                stats["lines"] += lines.height
                df, n, repeated = _parse(lines, str(path), next_session, policy, quarantine)
                next_session += n
                writer.add(df, n, repeated)
    if stats["sessions"] == 0:
        raise DataError(f"{paths}: no sessions found; expected 'query<TAB>d1,...,dK : c1 , c2 ;' groups")
    return finish(out_dir / "clicks", quarantine, out_dir, stats)


def _parse(lines: pl.DataFrame, source: str, first: int, policy: ReaderPolicy, quarantine: Quarantine) -> tuple[pl.DataFrame, int, int]:
    sess = (
        lines.with_columns(pl.col("text").str.split(";").alias("_s"))
        .explode("_s")
        .with_columns(pl.col("_s").str.strip_chars())
        .filter(pl.col("_s").str.len_bytes() > 0)
        .with_row_index("_i")
    )
    pattern = r"^([^\t]+)\t([^:]+):(.*)$"
    sess = sess.with_columns(pl.col("_s").str.extract_groups(pattern).alias("_g"))
    bad = sess.filter(pl.col("_g").struct.field("1").is_null())
    quarantine.add(source, bad.select(LINE, pl.col("_s").alias("text")), "session is not 'query<TAB>docs : clicks'",
                   policy.on_bad_line, "fix the line or set log.on_bad_line=quarantine")
    sess = sess.filter(pl.col("_g").struct.field("1").is_not_null()).with_row_index("_k").select(
        LINE, "_k", pl.col("_s").alias("text"),
        pl.col("_g").struct.field("1").str.strip_chars().alias("query_id"),
        pl.col("_g").struct.field("2").str.split(",").list.eval(pl.element().str.strip_chars()).alias("_docs"),
        pl.col("_g").struct.field("3").str.split(",").list.eval(pl.element().str.strip_chars()).list.eval(pl.element().filter(pl.element() != "")).alias("_clicks"),
    )
    shown = sess.with_columns(pl.int_ranges(1, pl.col("_docs").list.len() + 1, dtype=pl.Int16).alias("position")).explode("_docs", "position")
    shown = shown.rename({"_docs": "doc_id"}).filter(pl.col("doc_id") != "")
    dup = shown.group_by("_k", "doc_id").agg(pl.col(LINE).first(), pl.len()).filter(pl.col("len") > 1)
    if dup.height:
        raise DataError(f"{source}:{dup[LINE][0]}: document {dup['doc_id'][0]} appears twice in one session's list")
    clicks = sess.select(LINE, "_k", "text", "_clicks").explode("_clicks").drop_nulls("_clicks").rename({"_clicks": "doc_id"})
    counted = clicks.group_by("_k", "doc_id").agg(pl.len().alias("click_count"), pl.col(LINE).first(), pl.col("text").first())
    unshown = counted.join(shown.select("_k", "doc_id"), on=["_k", "doc_id"], how="anti")
    quarantine.add(source, unshown.select(LINE, "text"), "click on a document the session did not show", policy.on_unshown_click,
                   "set log.on_unshown_click=quarantine to count and set these aside")
    rep = counted.filter(pl.col("click_count") > 1)
    repeated = int(rep["click_count"].sum() - rep.height)
    if repeated and policy.repeated_clicks == "error":
        raise DataError(f"{source}:{rep.sort(LINE)[LINE][0]}: a document is clicked more than once in one session; set log.repeated_clicks=binarize")
    out = shown.join(counted.select("_k", "doc_id", "click_count"), on=["_k", "doc_id"], how="left").select(
        (pl.col("_k").cast(pl.Int64) + first).alias("session_id"), "query_id", "doc_id", "position",
        (pl.col("click_count").fill_null(0) > 0).cast(pl.Int8).alias("click"),
        pl.col("click_count").fill_null(0).cast(pl.Int16),
    ).sort("session_id", "position")
    return out, sess.height, repeated
