"""ETL: a click log (one row per impression) + features table -> session tables (one row per
session, fixed-length lists cut to the top-K positions), with validation and a stats summary.

Memory stays bounded: one streaming pass validates, one streaming pass partitions the joined log
by session into shards, then each shard (whole sessions only) is turned into fixed-shape arrays.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from ultr.data.clicklog import ROW, explain_read_error, scan_click_log
from ultr.data.io import atomic_dir, read_parquet, write_json, write_parquet
from ultr.data.schema import CLICK_LOG_COLUMNS, sessions_schema
from ultr.errors import DataError

_POLARS_TYPES = {"session_id": pl.Int64, "query_id": pl.String, "doc_id": pl.String, "position": pl.Int16, "click": pl.Int8}


@dataclass
class EtlConfig:
    list_size: int = 10
    drop_zero_click_sessions: bool = False
    missing_features: str = "error"  # error | drop
    # Sessions on vali/test queries would leak into model selection and the reported metrics, so
    # only train-split queries are kept (and the others counted) unless this opts out.
    allow_eval_queries: bool = False
    shard_rows: int = 4_000_000  # impressions per shard; bounds peak memory
    row_group_sessions: int = 65_536

    def __post_init__(self) -> None:
        for key in ("list_size", "shard_rows", "row_group_sessions"):
            if int(getattr(self, key)) < 1:
                raise DataError(f"etl.{key}={getattr(self, key)}: must be >= 1")


def _first_bad(cond: pl.Expr, name: str) -> pl.Expr:
    return pl.col(ROW).filter(cond).min().alias(name)


def _row_text(source: str, row: int) -> str:
    # CSV readers count the header as line 1; Parquet users think in 0-based rows.
    if source.lower().endswith((".csv", ".tsv", ".csv.gz", ".tsv.gz")):
        return f"{source}:{row + 2} (data row {row + 1})"
    return f"{source}: row {row}"


def run_etl(log: pl.LazyFrame | str | Path, features_path: str | Path | None, out_dir: str | Path,
            config: EtlConfig | None = None, **kwargs: Any) -> dict[str, Any]:
    """Validate a click log, join document rows, and write `out_dir/sessions/*.parquet` + `stats.json`.

    `log` is a path to a generic log or an already-mapped LazyFrame (from a real-log reader) with a
    `_row` column. With `features_path=None` documents are indexed by a vocabulary of their ids
    (ID-based rankers) written to `out_dir/doc_vocab.parquet`. A log file Polars cannot parse (a
    ragged CSV line, a line that is not JSON, a damaged Parquet page) is a one-line error.
    """
    try:
        return _run_etl(log, features_path, out_dir, config, **kwargs)
    except (pl.exceptions.PolarsError, pa.ArrowException) as e:
        if not isinstance(log, (str, Path)):
            raise
        raise DataError(explain_read_error(log, e)) from None


def _document_keys(typed: pl.LazyFrame, features_path: str | Path | None, out_dir: Path, cfg: EtlConfig
                   ) -> tuple[pl.DataFrame, pl.Series, np.ndarray | None]:
    """(document keys with `doc_index` and `query_index`, the query vocabulary, and per query code
    whether its sessions may be trained on, or None for all). Documents are features-table rows,
    or for feature-less logs a vocabulary of the log's (query, document) pairs written to
    out_dir/doc_vocab.parquet. Queries travel as integer codes (string work on every impression
    would dominate the ETL); both codes come from one join against the document keys."""
    if features_path is None:
        # Feature-less logs: index (query, document) pairs, the unit an ID-based ranker scores.
        keys = (
            typed.select("query_id", "doc_id").unique().sort("query_id", "doc_id")
            .with_row_index("doc_index").with_columns(pl.col("doc_index").cast(pl.Int32)).collect(engine="streaming")
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        write_parquet(keys.to_arrow(), out_dir / "doc_vocab.parquet")
        # Sorted by query, so a query's code is the number of query changes before it.
        new_query = pl.col("query_id") != pl.col("query_id").shift(1)
        keys = keys.with_columns((new_query.fill_null(True).cum_sum() - 1).cast(pl.Int32).alias("query_index"))
        return keys, keys.filter(new_query.fill_null(True))["query_id"], None
    keys = read_parquet(features_path, columns=["query_id", "doc_id", "split"]).with_row_index("doc_index").with_columns(pl.col("doc_index").cast(pl.Int32))
    dup = keys.group_by("query_id", "doc_id").len().filter(pl.col("len") > 1).head(1)
    if dup.height:
        raise DataError(f"{features_path}: (query_id, doc_id) {dup.row(0)[:2]} appears more than once; document keys must be unique")
    query_split = keys.group_by("query_id").agg(pl.col("split").first()).sort("query_id")
    query_vocab = query_split["query_id"]
    train_query = None if cfg.allow_eval_queries else (query_split["split"] == "train").to_numpy()
    codes = pl.DataFrame({"query_id": query_vocab, "query_index": pl.arange(0, len(query_vocab), dtype=pl.Int32, eager=True)})
    return keys.drop("split").join(codes, on="query_id", how="left"), query_vocab, train_query


def _scan_checks(typed: pl.LazyFrame, joined: pl.LazyFrame, with_features: bool, K: int) -> dict[str, Any]:
    """Pass 1 (streaming): every value check and policy count in one scan; each check reports the
    first offending row of its kind."""
    checks = [_first_bad(pl.col(c).is_null(), f"null_{c}") for c in CLICK_LOG_COLUMNS]
    checks += [
        _first_bad(pl.col("position") < 1, "bad_position"),
        _first_bad(~pl.col("click").is_in([0, 1]), "bad_click"),
        (pl.col("position") > K).sum().alias("beyond"),
        pl.len().alias("rows"),
    ]
    if with_features:
        checks += [_first_bad(pl.col("doc_index").is_null(), "first_missing"), pl.col("doc_index").is_null().sum().alias("missing")]
        return joined.select(checks).collect(engine="streaming").row(0, named=True)
    # The vocabulary was built from this log, so no document can be missing: the check pass skips
    # the two-string join.
    found = typed.select(checks).collect(engine="streaming").row(0, named=True)
    found.update(first_missing=None, missing=0)
    return found


def _raise_first_bad(found: Mapping[str, Any], lf: pl.LazyFrame, typed: pl.LazyFrame, source: str,
                     features_path: str | Path | None, cfg: EtlConfig) -> None:
    """The first bad row the checks found, as a one-line error naming the row and the fix."""
    text_file = Path(source).suffix.lower() in (".csv", ".tsv", ".gz")  # every column is text there
    raw = lf.collect_schema()
    for c in CLICK_LOG_COLUMNS:
        if (row := found[f"null_{c}"]) is not None:
            value = lf.filter(pl.col(ROW) == row).select(c).collect().item()
            if raw[c] == pl.String and CLICK_LOG_COLUMNS[c] != pa.string() and value is not None and not text_file:
                # A typed file (Parquet, JSONL) that stores the column as text: the column is the problem, not a row.
                raise DataError(
                    f"{source}: column {c!r} holds strings ({value!r} at row {row}), expected {CLICK_LOG_COLUMNS[c]}; "
                    f"map each distinct value to an integer before the ETL (Polars: pl.col({c!r}).rank('dense'))")
            raise DataError(
                f"{_row_text(source, row)}: column {c!r} is {value!r}, expected {CLICK_LOG_COLUMNS[c]} "
                "(missing or not a number); fix or remove that row"
            )
    if (row := found["bad_position"]) is not None:
        value = typed.filter(pl.col(ROW) == row).select("position").collect().item()
        raise DataError(f"{_row_text(source, row)}: column 'position' is {value}; positions are 1-based (add 1 if your log counts from 0)")
    if (row := found["bad_click"]) is not None:
        value = typed.filter(pl.col(ROW) == row).select("click").collect().item()
        raise DataError(f"{_row_text(source, row)}: column 'click' is {value}; clicks must be 0 or 1 (binarise click counts first)")
    if int(found["rows"]) == 0:
        raise DataError(f"{source}: the click log has no rows")
    if found["missing"] and cfg.missing_features == "error":
        q, d = typed.filter(pl.col(ROW) == found["first_missing"]).select("query_id", "doc_id").collect().row(0)
        raise DataError(
            f"{_row_text(source, found['first_missing'])}: document (query_id={q!r}, doc_id={d!r}) is not in the features table "
            f"{features_path} ({found['missing']} rows like it); use the matching dataset, "
            "or etl.missing_features=drop to drop and count them"
        )


def _shard_and_write(log: Any, typed: pl.LazyFrame, kept: pl.LazyFrame, collect_shard: Any, out_cols: list[str],
                     total_rows: int, out_dir: Path, write: Any, cfg: EtlConfig, columns: Mapping[str, str] | None,
                     progress: bool) -> str:
    """Write the session tables shard by shard (`write(parts, count, tmp_dir)`); returns how the
    log was sharded: "parts", "single" or "repartitioned"."""
    n_shards = max(1, math.ceil(total_rows / cfg.shard_rows))
    file_ranges = None
    if n_shards > 1 and isinstance(log, (str, Path)):
        file_ranges = _file_session_ranges(Path(log), (columns or {}).get("session_id", "session_id"), 2 * cfg.shard_rows)
    with atomic_dir(out_dir / "sessions") as tmp_sessions:
        if file_ranges:
            # Parquet parts that each hold whole sessions (every reader writes them so): one shard
            # per group of adjacent parts, read through its session-id range, which the Parquet
            # statistics turn into reading just those parts. No repartitioning pass over the log.
            parts = (collect_shard(typed.filter(pl.col("session_id").is_between(lo, hi))) for lo, hi in file_ranges)
            write(_bar(parts, len(file_ranges), progress), tmp_sessions)
            return "parts"
        if n_shards == 1:
            write(_bar([collect_shard(typed)], 1, progress), tmp_sessions)
            return "single"
        staging = out_dir / ".etl-staging"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            kept.select(out_cols).with_columns((pl.col("session_id") % n_shards).alias("_shard")).sink_parquet(
                pl.PartitionBy(staging, key="_shard", include_key=False), mkdir=True
            )
            shard_dirs = sorted(staging.glob("_shard=*"), key=lambda p: int(p.name.split("=")[1]))
            write(_bar((pl.read_parquet(d / "*.parquet") for d in shard_dirs), n_shards, progress), tmp_sessions)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return "repartitioned"


def _etl_stats(source: str, features_path: Any, K: int, found: Mapping[str, Any], acc: _Accumulator,
               extras: list[str], numeric_extras: list[str], sharding: str, t0: float) -> dict[str, Any]:
    return {
        "source": source,
        "features": str(features_path) if features_path is not None else None,
        "list_size": K,
        "input_rows": int(found["rows"]),
        "sessions": acc.sessions,
        "impressions": acc.impressions,
        "clicks": acc.clicks,
        "zero_click_sessions": acc.zero_click,
        "impressions_per_position": acc.shown.tolist(),
        "clicks_per_position": acc.clicked.tolist(),
        "ctr_per_position": (acc.clicked / np.maximum(acc.shown, 1)).round(6).tolist(),
        "position_spread": acc.position_spread(),
        "dropped_rows": {"missing_features": int(found["missing"]), "beyond_list_size": int(found["beyond"])},
        "dropped_sessions": {"zero_click": acc.zero_dropped, "not_train_split": acc.not_train},
        "extra_columns_carried": numeric_extras,
        "extra_columns_not_carried": [c for c in extras if c not in numeric_extras],
        "shards": acc.shards,
        "sharding": sharding,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _run_etl(
    log: pl.LazyFrame | str | Path,
    features_path: str | Path | None,
    out_dir: str | Path,
    config: EtlConfig | None = None,
    *,
    source: str | None = None,
    columns: Mapping[str, str] | None = None,
    doc_vocabulary: str = "features",
    progress: bool = False,
) -> dict[str, Any]:
    cfg, t0, out_dir = config or EtlConfig(), time.perf_counter(), Path(out_dir)
    columns = {k: v for k, v in (columns or {}).items() if v} or None  # the config lists every name, null = as is
    if isinstance(log, (str, Path)):
        source, lf = source or str(log), scan_click_log(log, columns)
    else:
        source, lf = source or "<click log>", log
    K = cfg.list_size
    if cfg.missing_features not in ("error", "drop"):
        raise DataError(f"etl.missing_features={cfg.missing_features!r}; use error or drop")
    raw = lf.collect_schema()
    extras = [c for c in raw if c not in CLICK_LOG_COLUMNS and c != ROW]
    numeric_extras = [c for c in extras if raw[c].is_numeric() or raw[c] == pl.Boolean]
    typed = lf.with_columns([pl.col(c).cast(t, strict=False).alias(c) for c, t in _POLARS_TYPES.items()])
    keys, query_vocab, train_query = _document_keys(typed, features_path, out_dir, cfg)
    doc_keys = _DocumentKeys(keys)
    joined = doc_keys.join_lazy(typed)
    found = _scan_checks(typed, joined, features_path is not None, K)
    _raise_first_bad(found, lf, typed, source, features_path, cfg)

    keep_rows = pl.col("doc_index").is_not_null() & (pl.col("position") <= K)
    out_cols = ["session_id", "query_index", "doc_index", "position", "click", ROW, *numeric_extras]

    def collect_shard(rows: pl.LazyFrame) -> pl.DataFrame:
        return doc_keys.attach(rows.collect(engine="streaming")).filter(keep_rows).select(out_cols)

    acc = _Accumulator(K, train_query)
    sharding = _shard_and_write(
        log, typed, joined.filter(keep_rows), collect_shard, out_cols, int(found["rows"]), out_dir,
        lambda parts, tmp: _write_shards(parts, tmp, cfg, source, numeric_extras, acc, query_vocab), cfg, columns, progress)
    if acc.not_train:
        print(
            f"warning: {source}: dropped {acc.not_train} sessions on vali/test queries of {features_path} "
            "(they would leak into model selection and test metrics); etl.allow_eval_queries=true keeps them",
            file=sys.stderr)
    stats = _etl_stats(source, features_path, K, found, acc, extras, numeric_extras, sharding, t0)
    write_json(stats, out_dir / "stats.json")
    return stats


_PAIR_HASH = pl.struct(pl.col("query_id").cast(pl.String), pl.col("doc_id").cast(pl.String)).hash()


class _DocumentKeys:
    """Attaches `doc_index` and `query_index` to impressions, keeping the log's row order (sessions
    stay contiguous, so shards become reshapes instead of sorts and scatters).

    Joining on one 64-bit hash of (query_id, doc_id) is twice as fast as joining on the two
    strings. A collision between two keys would silently merge documents, so it is checked on the
    (small) key table, which holds every pair that can match; with one, the string join is used.
    """

    def __init__(self, keys: pl.DataFrame) -> None:
        keys = keys.select("query_id", "doc_id", "doc_index", "query_index").with_columns(_PAIR_HASH.alias("_pair"))
        self.by_hash = not keys["_pair"].is_duplicated().any()
        self.keys = keys.select("_pair", "doc_index", "query_index") if self.by_hash else keys.drop("_pair")

    def join_lazy(self, rows: pl.LazyFrame) -> pl.LazyFrame:
        if not self.by_hash:
            return rows.join(self.keys.lazy(), on=["query_id", "doc_id"], how="left", maintain_order="left")
        return rows.with_columns(_PAIR_HASH.alias("_pair")).join(self.keys.lazy(), on="_pair", how="left", maintain_order="left").drop("_pair")

    def attach(self, rows: pl.DataFrame) -> pl.DataFrame:
        """One shard, eagerly: only the key goes through the join and the two codes are stacked
        beside the rows, instead of the join gathering every behaviour column as well."""
        if not self.by_hash:
            return rows.join(self.keys, on=["query_id", "doc_id"], how="left", maintain_order="left")
        # A left join on unique keys returns exactly one row per input row, in input order.
        codes = rows.select(_PAIR_HASH.alias("_pair")).join(self.keys, on="_pair", how="left", maintain_order="left")
        return rows.hstack(codes.select("doc_index", "query_index").get_columns())


def _file_session_ranges(path: Path, column: str, max_rows: int) -> list[tuple[int, int]] | None:
    """(min, max) session ids of consecutive groups of Parquet parts, from the files' statistics, when
    the parts hold disjoint session ranges of at most `max_rows` rows each; None when they do not (or
    lack stats)."""
    files = sorted(path.glob("*.parquet")) if path.is_dir() else [path] if path.suffix.lower() == ".parquet" else []
    if len(files) < 2:
        return None
    ranges = []
    for f in files:
        meta = pq.ParquetFile(f).metadata
        if meta.num_rows > max_rows:
            return None
        if meta.num_rows == 0:
            continue
        names = [meta.schema.column(i).name for i in range(meta.num_columns)]
        if column not in names:
            return None
        col = names.index(column)
        lo = hi = None
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(col).statistics
            if st is None or not st.has_min_max or not isinstance(st.min, int):
                return None
            lo = st.min if lo is None else min(lo, st.min)
            hi = st.max if hi is None else max(hi, st.max)
        ranges.append((lo, hi, meta.num_rows))
    ranges.sort()
    if any(a[1] >= b[0] for a, b in zip(ranges, ranges[1:])):
        return None
    # Adjacent small parts share a shard (up to `max_rows // 2` rows): every shard costs one join
    # against the whole key table, so many small parts would otherwise pay it many times.
    merged: list[list[int]] = []
    for lo, hi, n in ranges:
        if merged and merged[-1][2] + n <= max_rows // 2:
            merged[-1][1:] = [hi, merged[-1][2] + n]
        else:
            merged.append([lo, hi, n])
    return [(lo, hi) for lo, hi, _ in merged]


class _Accumulator:
    def __init__(self, K: int, train_query: np.ndarray | None = None) -> None:
        self.sessions = self.impressions = self.clicks = self.zero_click = self.zero_dropped = self.shards = 0
        self.not_train = 0
        self.train_query = train_query
        self.shown = np.zeros(K, dtype=np.int64)
        self.clicked = np.zeros(K, dtype=np.int64)
        # Highest and lowest slot each (query, document) pair was shown at, indexed by doc_index.
        self.top = np.empty(0, dtype=np.int16)
        self.bottom = np.empty(0, dtype=np.int16)

    def see_positions(self, doc: np.ndarray, slot: np.ndarray) -> None:
        if not len(doc):
            return
        n = int(doc.max()) + 1
        if n > len(self.top):
            grow = n - len(self.top)
            self.top = np.concatenate([self.top, np.full(grow, np.iinfo(np.int16).max, np.int16)])
            self.bottom = np.concatenate([self.bottom, np.full(grow, -1, np.int16)])
        np.minimum.at(self.top, doc, slot)
        np.maximum.at(self.bottom, doc, slot)

    def position_spread(self) -> dict[str, Any]:
        """How many (query, document) pairs the log shows at more than one position. Position bias
        is identified by the data only through such pairs; a log from one deterministic ranking has
        none, and then a click model can separate position from document only through what the
        ranker generalises across documents."""
        seen = self.bottom >= 0
        several = int((self.bottom[seen] > self.top[seen]).sum())
        n = int(seen.sum())
        return {"documents": n, "at_several_positions": several, "share": round(several / max(n, 1), 6)}


def _bar(parts, total: int, progress: bool):
    return tqdm(parts, total=total, unit="shard", desc="etl", disable=not progress, file=sys.stderr, mininterval=1.0, dynamic_ncols=True)


def _write_shards(parts, out: Path, cfg: EtlConfig, source: str, extras: list[str], acc: _Accumulator, query_vocab: pl.Series) -> None:
    vocab = query_vocab.to_arrow()
    for df in parts:
        if df.height == 0:
            continue
        table = _sessionize(df, cfg, source, extras, acc, vocab)
        if table.num_rows:
            # Polars' Rust Parquet writer is several times faster than pyarrow's on these
            # fixed-size-list columns (benchmarks/RESULTS.md), with the same Arrow schema.
            pl.from_arrow(table).write_parquet(
                out / f"part-{acc.shards:05d}.parquet", compression="zstd", row_group_size=cfg.row_group_sessions
            )
            acc.shards += 1


def _session_index(sid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct session ids in order, each row's index into them)."""
    if len(sid) > 1 and (sid[1:] >= sid[:-1]).all():  # logs are usually written session by session: O(n)
        starts = np.concatenate([[True], sid[1:] != sid[:-1]])
        return sid[starts], np.cumsum(starts) - 1
    # Shards come back from the partitioned sink as runs of sorted sessions; a stable sort
    # (timsort/radix) exploits the runs where np.unique's quicksort does not.
    order = np.argsort(sid, kind="stable")
    ordered = sid[order]
    starts = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    s_idx = np.empty(len(sid), dtype=np.int64)
    s_idx[order] = np.cumsum(starts) - 1
    return ordered[starts], s_idx


def _slots(df: pl.DataFrame, s_idx: np.ndarray, uniq: np.ndarray, K: int, source: str) -> tuple[np.ndarray, bool]:
    """(each row's flat slot session * K + position - 1, whether the slots are 0, 1, 2, ... in
    order); a position shown twice in a session is an error naming its rows."""
    flat = s_idx * K + df["position"].to_numpy().astype(np.int64) - 1
    S = len(uniq)
    # Full result pages written in position order (the common case) fill slot i with row i: the
    # arrays are then reshapes, not scatters (20 behaviour columns x millions of rows add up).
    identity = len(flat) == S * K and bool((np.diff(flat) == 1).all()) and (len(flat) == 0 or flat[0] == 0)
    if not identity:
        seen = np.bincount(flat, minlength=S * K)
        if (seen > 1).any():
            bad = int(np.flatnonzero(seen > 1)[0])
            rows = df[ROW].to_numpy()[flat == bad]
            raise DataError(
                f"{source}: session {uniq[bad // K]} shows position {bad % K + 1} more than once (rows {sorted(rows.tolist())[:5]}); "
                "positions must be unique within a session"
            )
    return flat, identity


def _count_kept(acc: _Accumulator, cfg: EtlConfig, first_q: np.ndarray, doc: np.ndarray, click: np.ndarray,
                mask: np.ndarray) -> np.ndarray:
    """Which sessions the policy keeps (train queries; clicked ones if zero-click sessions are
    dropped), counting the kept and the dropped into `acc`."""
    n_clicks = click.sum(axis=1)
    keep = np.ones(len(first_q), dtype=bool) if acc.train_query is None else acc.train_query[first_q]
    acc.not_train += int((~keep).sum())
    acc.zero_click += int((keep & (n_clicks == 0)).sum())
    if cfg.drop_zero_click_sessions:
        acc.zero_dropped += int((keep & (n_clicks == 0)).sum())
        keep &= n_clicks > 0
    acc.sessions += int(keep.sum())
    acc.impressions += int(mask[keep].sum())
    acc.clicks += int(click[keep].sum())
    acc.shown += mask[keep].sum(axis=0)
    acc.clicked += click[keep].sum(axis=0)
    shown = mask & keep[:, None]
    K = doc.shape[1]
    acc.see_positions(doc[shown], np.broadcast_to(np.arange(K, dtype=np.int16), doc.shape)[shown])
    return keep


def _session_table(session_id: np.ndarray, first_q: np.ndarray, query_vocab: pa.Array, keep: np.ndarray,
                   arrays: dict[str, np.ndarray], extras: dict[str, np.ndarray], K: int) -> pa.Table:
    """The kept sessions as the sessions schema's fixed-size list columns, behaviour columns appended."""
    all_kept = bool(keep.all())

    def fixed(a: np.ndarray, t: pa.DataType) -> pa.Array:
        kept_rows = a if all_kept else a[keep]  # no copy when nothing is dropped
        return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(kept_rows).reshape(-1), t), K)

    cols = {
        "session_id": pa.array(session_id[keep], pa.int64()),
        "query_id": pa.DictionaryArray.from_arrays(pa.array(first_q[keep], pa.int32()), query_vocab).dictionary_decode(),
        "doc_index": fixed(arrays["doc_index"], pa.int32()),
        "position": fixed(arrays["position"], pa.int16()),
        "click": fixed(arrays["click"], pa.int8()),
        "mask": fixed(arrays["mask"], pa.bool_()),
    }
    schema = sessions_schema(K)
    for c, arr in extras.items():
        t = pa.from_numpy_dtype(arr.dtype)
        cols[c] = fixed(arr, t)
        schema = schema.append(pa.field(c, pa.list_(t, K), nullable=False))
    return pa.table(cols, schema=schema)


def _sessionize(df: pl.DataFrame, cfg: EtlConfig, source: str, extras: list[str], acc: _Accumulator, query_vocab: pa.Array) -> pa.Table:
    """Scatter one shard's impressions into [sessions, K] arrays: slot k = position k+1."""
    K = cfg.list_size
    uniq, s_idx = _session_index(df["session_id"].to_numpy())
    flat, identity = _slots(df, s_idx, uniq, K, source)
    S = len(uniq)

    def place(values: np.ndarray, fill: int) -> np.ndarray:
        if identity:
            return values.reshape(S, K)
        out = np.full((S, K), fill, dtype=values.dtype)
        out.reshape(-1)[flat] = values
        return out

    q_codes = df["query_index"].to_numpy().astype(np.int64)
    first_q = np.empty(S, dtype=np.int64)
    first_q[s_idx] = q_codes  # some row's query per session; any disagreement means mixed queries
    if (first_q[s_idx] != q_codes).any():
        _raise_mixed_query(df, source)
    doc = place(df["doc_index"].to_numpy().astype(np.int32, copy=False), -1)
    click = place(df["click"].to_numpy().astype(np.int8, copy=False), 0)
    mask = doc >= 0
    position = np.where(mask, np.arange(1, K + 1, dtype=np.int16), 0).astype(np.int16)
    extra_arrays = {c: place(df[c].fill_null(0).to_numpy(), 0) for c in extras}
    keep = _count_kept(acc, cfg, first_q, doc, click, mask)
    arrays = {"doc_index": doc, "position": position, "click": click, "mask": mask}
    return _session_table(uniq, first_q, query_vocab, keep, arrays, extra_arrays, K)


def _raise_mixed_query(df: pl.DataFrame, source: str) -> None:
    """Error path only: find the first input row whose session already had another query."""
    first = df.sort(ROW).with_columns(pl.col("query_index").first().over("session_id").alias("_first_query"))
    bad = first.filter(pl.col("query_index") != pl.col("_first_query")).row(0, named=True)
    raise DataError(
        f"{_row_text(source, int(bad[ROW]))}: session {bad['session_id']} has more than one query_id; "
        "a session is one query's result page (give each page its own session_id)"
    )


def print_stats(stats: dict[str, Any], file=sys.stdout, training: bool = True) -> None:
    """`training=False` (a log only evaluated on) leaves out the hint about learning propensities."""
    print(
        f"sessions={stats['sessions']} impressions={stats['impressions']} clicks={stats['clicks']} "
        f"zero-click sessions={stats['zero_click_sessions']} shards={stats['shards']}",
        file=file,
    )
    print("CTR per position: " + " ".join(f"{c:.3f}" for c in stats["ctr_per_position"]), file=file)
    print(f"dropped rows: {stats['dropped_rows']}  dropped sessions: {stats['dropped_sessions']}", file=file)
    spread = stats.get("position_spread")
    if spread and spread["documents"]:
        print(
            f"documents shown at more than one position: {spread['at_several_positions']} of {spread['documents']} "
            f"({100 * spread['share']:.1f}%)", file=file)
        if spread["share"] < 0.01 and training:
            print(
                "  (one ranking per query: the data alone cannot separate position from document, so learned "
                "propensities rest on the ranker's generalisation; see README, 'Severe bias and one ranking per query')", file=file)
    if stats.get("extra_columns_not_carried"):
        print(f"non-numeric extra columns not carried into session tables: {stats['extra_columns_not_carried']}", file=file)
