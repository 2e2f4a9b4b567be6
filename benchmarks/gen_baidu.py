"""Write a synthetic click log in Baidu-ULTR's raw training format (query line + 32-field
document lines per session), for the real-log ETL scale benchmark: gzip parts `part-NNNNN.gz` as
the release ships them (`--plain` for uncompressed text).

    python benchmarks/gen_baidu.py --impressions 50000000 --out benchmarks/_work/baidu50m
Vectorised with Polars (string columns assembled per row, no Python loop over lines).
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ultr.data.readers.baidu import DOC_COLUMNS  # noqa: E402


def part(sessions: int, first_session: int, rng: np.random.Generator, k: int = 10) -> pl.DataFrame:
    n = sessions * k
    qid = (first_session + np.arange(sessions)) % 50_000  # repeated queries, as in a real log
    pos = np.tile(np.arange(1, k + 1), sessions)
    # Each query has 30 candidate documents; a session shows 10 of them in a rotated order, so the
    # same (query, document) pairs recur at different positions, as in a real log.
    shift = np.repeat(rng.integers(0, 30, size=sessions), k)
    url = np.repeat(qid, k) * 100 + (pos - 1 + shift) % 30
    exam = np.asarray([0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06])[pos - 1]
    click = (rng.random(n) < exam * 0.3).astype(np.int8)
    docs = pl.DataFrame({"s": np.repeat(np.arange(sessions), k), "o": pos, "pos": pos, "url": url, "click": click,
                         "dwell": np.round(rng.exponential(20.0, n) * click, 1), "mm": rng.integers(0, 5, n)})
    zero = pl.lit("0")
    fields = {c: zero for c in DOC_COLUMNS}
    fields.update({
        "position": pl.col("pos").cast(pl.String), "url_md5": pl.format("{}", pl.col("url")),
        "title": pl.lit("1201\x014507\x0133\x01900"), "abstract": pl.lit("77\x018812\x01904\x0112\x0159"),
        "multimedia_type": pl.col("mm").cast(pl.String), "click": pl.col("click").cast(pl.String),
        "dwelling_time": pl.col("dwell").cast(pl.String), "displayed_time": pl.lit("3.2"),
    })
    doc_lines = docs.select("s", "o", pl.concat_str([fields[c] for c in DOC_COLUMNS], separator="\t").alias("line"))
    q_lines = pl.DataFrame({"s": np.arange(sessions), "o": np.zeros(sessions, np.int64), "q": qid}).select(
        "s", "o", pl.format("{}\t8863\x01120\x0145\t", pl.col("q")).alias("line"))
    return pl.concat([q_lines, doc_lines]).sort("s", "o").select("line")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impressions", type=int, default=50_000_000)
    ap.add_argument("--out", default="benchmarks/_work/baidu")
    ap.add_argument("--part-impressions", type=int, default=5_000_000)
    ap.add_argument("--plain", action="store_true", help="uncompressed text parts instead of gzip")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    done = i = 0
    while done < args.impressions:
        sessions = min(args.part_impressions, args.impressions - done) // 10
        lines = part(sessions, done // 10, rng)
        if args.plain:
            lines.write_csv(out / f"part-{i:05d}", include_header=False, quote_style="never")
        else:
            buf = io.BytesIO()
            lines.write_csv(buf, include_header=False, quote_style="never")
            # Level 1: generation speed; decompression, which the benchmark times, costs about the same at any level.
            (out / f"part-{i:05d}.gz").write_bytes(gzip.compress(buf.getvalue(), compresslevel=1))
        done += sessions * 10
        i += 1
    size = sum(p.stat().st_size for p in out.glob("part-*"))
    print(f"wrote {done} impressions in {i} parts, {size / 1e9:.2f} GB, {time.perf_counter() - t:.1f}s -> {out}")


if __name__ == "__main__":
    main()
