"""Yandex WSCD click logs (2011 Relevance Prediction / 2012 challenges), tab-separated actions:

    SessionID  TimePassed  Q  QueryID  RegionID  URLID,DomainID  URLID,DomainID ...   (a result page)
    SessionID  TimePassed  C  URLID                                                (a click)

Each Q line is one result page; our `session_id` numbers pages in file order (a user session can
hold several). A click belongs to the latest page of its session that shows the URL; clicks on
URLs that page did not show are counted and quarantined (or an error, by policy). Repeated
clicks are counted in `click_count`; `click` is 1 if clicked at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ultr.data.io import atomic_dir
from ultr.data.readers.common import LINE, PartWriter, Quarantine, ReaderPolicy, finish, iter_line_chunks
from ultr.errors import DataError


def convert_yandex(paths: list[Path], out_dir: Path, policy: ReaderPolicy) -> dict[str, Any]:
    quarantine = Quarantine()
    stats: dict[str, Any] = {"format": "yandex", "files": [str(p) for p in paths], "lines": 0, "sessions": 0,
                             "impressions": 0, "clicks": 0, "repeated_clicks": 0}
    next_page = 0
    with atomic_dir(out_dir / "clicks") as parts:
        writer = PartWriter(parts, stats)
        for path in paths:
            carry = None
            for chunk in list_with_end(iter_line_chunks(Path(path), policy.chunk_bytes)):
                last = chunk is None
                lines = carry if last else (chunk if carry is None else pl.concat([carry, chunk]))
                if lines is None or lines.height == 0:
                    continue
                lines = lines.filter(pl.col("text").str.len_bytes() > 0).with_columns(pl.col("text").str.split("\t").alias("_f"))
                if not last:
                    # Keep the last user session back: its pages and clicks may continue in the next chunk.
                    sid = lines["_f"].list.get(0)
                    last_sid = sid[-1]
                    start = int(pl.arg_where(sid == last_sid, eager=True)[0])
                    if start == 0:
                        carry = lines.drop("_f")
                        continue
                    carry, lines = lines[start:].drop("_f"), lines[:start]
                df, pages, repeated = _parse(lines, str(path), next_page, policy, quarantine)
                stats["lines"] += lines.height
                next_page += pages
                writer.add(df, pages, repeated)
                if last:
                    break
    if stats["sessions"] == 0:
        raise DataError(f"{paths}: no Q (query) lines found; expected Yandex WSCD 'SessionID TimePassed Q QueryID RegionID URLs...' lines")
    return finish(out_dir / "clicks", quarantine, out_dir, stats)


def list_with_end(it):
    yield from it
    yield None


def _parse(lines: pl.DataFrame, source: str, first_page: int, policy: ReaderPolicy, quarantine: Quarantine) -> tuple[pl.DataFrame, int, int]:
    n = pl.col("_f").list.len()
    kind = pl.col("_f").list.get(2, null_on_oob=True)
    ok_q = (kind == "Q") & (n >= 6)
    ok_c = (kind == "C") & (n == 4)
    wrong = lines.filter(~(ok_q | ok_c))
    quarantine.add(source, wrong.select(LINE, "text"), "line is neither 'SID TIME Q QUERY REGION URLS...' nor 'SID TIME C URL'",
                   policy.on_bad_line, "check the file format, or set log.on_bad_line=quarantine")
    lines = lines.filter(ok_q | ok_c).with_columns(
        pl.col("_f").list.get(0).cast(pl.Int64, strict=False).alias("_sid"), (kind == "Q").alias("_isq")
    )
    bad = lines.filter(pl.col("_sid").is_null())
    quarantine.add(source, bad.select(LINE, "text"), "SessionID is not an integer", policy.on_bad_line, "fix the line or set log.on_bad_line=quarantine")
    lines = lines.filter(pl.col("_sid").is_not_null()).with_columns(pl.col("_isq").cum_sum().alias("_page"))
    # A click must follow a page of its own session.
    page_sid = lines.filter("_isq").select("_page", pl.col("_sid").alias("_page_sid"))
    clicks = lines.filter(~pl.col("_isq")).join(page_sid, on="_page", how="left")
    orphan = clicks.filter(pl.col("_page_sid").is_null() | (pl.col("_page_sid") != pl.col("_sid")))
    quarantine.add(source, orphan.select(LINE, "text"), "click before any result page of its session", policy.on_bad_line,
                   "fix the line or set log.on_bad_line=quarantine")
    clicks = clicks.join(orphan.select(LINE), on=LINE, how="anti").select(LINE, "text", "_page", pl.col("_f").list.get(3).alias("url"))

    pages = lines.filter("_isq").select(
        LINE, "_page", pl.col("_f").list.get(3).alias("query_id"),
        pl.col("_f").list.slice(5).alias("_urls"),
    )
    shown = pages.with_columns(pl.int_ranges(1, pl.col("_urls").list.len() + 1, dtype=pl.Int16).alias("position")).explode("_urls", "position")
    shown = shown.with_columns(pl.col("_urls").str.split_exact(",", 1).struct.field("field_0").alias("url"))
    dup = shown.group_by("_page", "url").agg(pl.col(LINE).first(), pl.len()).filter(pl.col("len") > 1)
    if dup.height:
        raise DataError(f"{source}:{dup[LINE][0]}: URL {dup['url'][0]} is shown twice on one result page; each position needs its own URL")
    counted = clicks.group_by("_page", "url").agg(pl.len().alias("click_count"), pl.col(LINE).first(), pl.col("text").first())
    unshown = counted.join(shown.select("_page", "url"), on=["_page", "url"], how="anti")
    quarantine.add(source, unshown.select(LINE, "text"), "click on a URL the page did not show", policy.on_unshown_click,
                   "set log.on_unshown_click=quarantine to count and set these aside")
    repeated = int(counted.filter(pl.col("click_count") > 1)["click_count"].sum() - counted.filter(pl.col("click_count") > 1).height)
    if repeated and policy.repeated_clicks == "error":
        first = counted.filter(pl.col("click_count") > 1).sort(LINE).row(0, named=True)
        raise DataError(f"{source}:{first[LINE]}: URL clicked {first['click_count']} times on one page; set log.repeated_clicks=binarize")
    out = shown.join(counted.select("_page", "url", "click_count"), on=["_page", "url"], how="left").select(
        (pl.col("_page").cast(pl.Int64) + first_page - 1).alias("session_id"),
        "query_id", pl.col("url").alias("doc_id"), "position",
        (pl.col("click_count").fill_null(0) > 0).cast(pl.Int8).alias("click"),
        pl.col("click_count").fill_null(0).cast(pl.Int16),
    ).sort("session_id", "position")
    return out, pages.height, repeated
