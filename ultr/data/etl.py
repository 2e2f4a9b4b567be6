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
    cfg = config or EtlConfig()
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    if isinstance(log, (str, Path)):
        source = source or str(log)
        lf = scan_click_log(log, columns)
    else:
        source = source or "<click log>"
        lf = log
    K = cfg.list_size
    if cfg.missing_features not in ("error", "drop"):
        raise DataError(f"etl.missing_features={cfg.missing_features!r}; use error or drop")

    raw = lf.collect_schema()
    extras = [c for c in raw if c not in CLICK_LOG_COLUMNS and c != ROW]
    numeric_extras = [c for c in extras if raw[c].is_numeric() or raw[c] == pl.Boolean]
    casts = [pl.col(c).cast(t, strict=False).alias(c) for c, t in _POLARS_TYPES.items()]
    typed = lf.with_columns(casts)

    # --- document rows: features-table row, or an id vocabulary for feature-less logs. Queries
    # travel as integer codes (string work on every impression would dominate the ETL); both codes
    # come from one join against the document keys.
    train_query = None  # bool per query code: may its sessions be trained on
    if features_path is not None:
        keys = read_parquet(features_path, columns=["query_id", "doc_id", "split"]).with_row_index("doc_index").with_columns(pl.col("doc_index").cast(pl.Int32))
        dup = keys.group_by("query_id", "doc_id").len().filter(pl.col("len") > 1).head(1)
        if dup.height:
            raise DataError(f"{features_path}: (query_id, doc_id) {dup.row(0)[:2]} appears more than once; document keys must be unique")
        query_split = keys.group_by("query_id").agg(pl.col("split").first()).sort("query_id")
        query_vocab = query_split["query_id"]
        if not cfg.allow_eval_queries:
            train_query = (query_split["split"] == "train").to_numpy()
        codes = pl.DataFrame({"query_id": query_vocab, "query_index": pl.arange(0, len(query_vocab), dtype=pl.Int32, eager=True)})
        keys = keys.drop("split").join(codes, on="query_id", how="left")
    else:
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
        query_vocab = keys.filter(new_query.fill_null(True))["query_id"]
    doc_keys = _DocumentKeys(keys)
    joined = doc_keys.join_lazy(typed)

    # --- pass 1 (streaming): every value check and policy count in one scan; each check reports
    # the first offending row of its kind.
    checks = [_first_bad(pl.col(c).is_null(), f"null_{c}") for c in CLICK_LOG_COLUMNS]
    checks += [
        _first_bad(pl.col("position") < 1, "bad_position"),
        _first_bad(~pl.col("click").is_in([0, 1]), "bad_click"),
        (pl.col("position") > K).sum().alias("beyond"),
        pl.len().alias("rows"),
    ]
    if features_path is not None:
        checks += [_first_bad(pl.col("doc_index").is_null(), "first_missing"), pl.col("doc_index").is_null().sum().alias("missing")]
        found = joined.select(checks).collect(engine="streaming").row(0, named=True)
    else:
        # The vocabulary was built from this log, so no document can be missing: the check pass
        # skips the two-string join.
        found = typed.select(checks).collect(engine="streaming").row(0, named=True)
        found.update(first_missing=None, missing=0)
    for c in CLICK_LOG_COLUMNS:
        row = found[f"null_{c}"]
        if row is not None:
            value = lf.filter(pl.col(ROW) == row).select(c).collect().item()
            raise DataError(
                f"{_row_text(source, row)}: column {c!r} is {value!r}, expected {CLICK_LOG_COLUMNS[c]} "
                "(missing or not a number); fix or remove that row"
            )
    if found["bad_position"] is not None:
        row = found["bad_position"]
        value = typed.filter(pl.col(ROW) == row).select("position").collect().item()
        raise DataError(f"{_row_text(source, row)}: column 'position' is {value}; positions are 1-based (add 1 if your log counts from 0)")
    if found["bad_click"] is not None:
        row = found["bad_click"]
        value = typed.filter(pl.col(ROW) == row).select("click").collect().item()
        raise DataError(f"{_row_text(source, row)}: column 'click' is {value}; clicks must be 0 or 1 (binarise click counts first)")
    total_rows = int(found["rows"])
    if total_rows == 0:
        raise DataError(f"{source}: the click log has no rows")
    dropped = {"missing_features": int(found["missing"]), "beyond_list_size": int(found["beyond"]), "zero_click_sessions": 0}
    if dropped["missing_features"] and cfg.missing_features == "error":
        row = found["first_missing"]
        q, d = typed.filter(pl.col(ROW) == row).select("query_id", "doc_id").collect().row(0)
        raise DataError(
            f"{_row_text(source, row)}: document (query_id={q!r}, doc_id={d!r}) is not in the features table "
            f"{features_path} ({dropped['missing_features']} rows like it); use the matching dataset, "
            "or etl.missing_features=drop to drop and count them"
        )
    keep_rows = pl.col("doc_index").is_not_null() & (pl.col("position") <= K)
    kept = joined.filter(keep_rows)
    out_cols = ["session_id", "query_index", "doc_index", "position", "click", ROW, *numeric_extras]

    def collect_shard(rows: pl.LazyFrame) -> pl.DataFrame:
        return doc_keys.attach(rows.collect(engine="streaming")).filter(keep_rows).select(out_cols)

    n_shards = max(1, math.ceil(total_rows / cfg.shard_rows))
    stats_acc = _Accumulator(K, train_query)
    file_ranges = None
    if n_shards > 1 and isinstance(log, (str, Path)):
        file_ranges = _file_session_ranges(Path(log), (columns or {}).get("session_id", "session_id"), 2 * cfg.shard_rows)
    with atomic_dir(out_dir / "sessions") as tmp_sessions:
        if file_ranges:
            # Parquet parts that each hold whole sessions (every reader writes them so): one shard
            # per group of adjacent parts, read through its session-id range, which the Parquet
            # statistics turn into reading just those parts. No repartitioning pass over the log.
            parts = (collect_shard(typed.filter(pl.col("session_id").is_between(lo, hi))) for lo, hi in file_ranges)
            _write_shards(_bar(parts, len(file_ranges), progress), tmp_sessions, cfg, source, numeric_extras, stats_acc, query_vocab)
        elif n_shards == 1:
            parts = [collect_shard(typed)]
            _write_shards(_bar(parts, n_shards, progress), tmp_sessions, cfg, source, numeric_extras, stats_acc, query_vocab)
        else:
            staging = out_dir / ".etl-staging"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                kept.select(out_cols).with_columns((pl.col("session_id") % n_shards).alias("_shard")).sink_parquet(
                    pl.PartitionBy(staging, key="_shard", include_key=False), mkdir=True
                )
                shard_dirs = sorted(staging.glob("_shard=*"), key=lambda p: int(p.name.split("=")[1]))
                parts = (pl.read_parquet(d / "*.parquet") for d in shard_dirs)
                _write_shards(_bar(parts, n_shards, progress), tmp_sessions, cfg, source, numeric_extras, stats_acc, query_vocab)
            finally:
                shutil.rmtree(staging, ignore_errors=True)

    dropped["zero_click_sessions"] = stats_acc.zero_dropped
    if stats_acc.not_train:
        print(
            f"warning: {source}: dropped {stats_acc.not_train} sessions on vali/test queries of {features_path} "
            "(they would leak into model selection and test metrics); etl.allow_eval_queries=true keeps them",
            file=sys.stderr)
    extras_not_carried = [c for c in extras if c not in numeric_extras]
    stats = {
        "source": source,
        "features": str(features_path) if features_path is not None else None,
        "list_size": K,
        "input_rows": total_rows,
        "sessions": stats_acc.sessions,
        "impressions": stats_acc.impressions,
        "clicks": stats_acc.clicks,
        "zero_click_sessions": stats_acc.zero_click,
        "impressions_per_position": stats_acc.shown.tolist(),
        "clicks_per_position": stats_acc.clicked.tolist(),
        "ctr_per_position": (stats_acc.clicked / np.maximum(stats_acc.shown, 1)).round(6).tolist(),
        "position_spread": stats_acc.position_spread(),
        "dropped_rows": {
            "missing_features": dropped["missing_features"],
            "beyond_list_size": dropped["beyond_list_size"],
        },
        "dropped_sessions": {"zero_click": dropped["zero_click_sessions"], "not_train_split": stats_acc.not_train},
        "extra_columns_carried": numeric_extras,
        "extra_columns_not_carried": extras_not_carried,
        "shards": stats_acc.shards,
        "sharding": "parts" if file_ranges else "single" if n_shards == 1 else "repartitioned",
        "seconds": round(time.perf_counter() - t0, 3),
    }
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
            # Polars' Rust Parquet writer: 5x faster than pyarrow's on these fixed-size-list columns
            # (0.3 vs 1.5 s per 3.3M impressions with 20 behaviour columns), same Arrow schema.
            pl.from_arrow(table).write_parquet(
                out / f"part-{acc.shards:05d}.parquet", compression="zstd", row_group_size=cfg.row_group_sessions
            )
            acc.shards += 1


def _sessionize(df: pl.DataFrame, cfg: EtlConfig, source: str, extras: list[str], acc: _Accumulator, query_vocab: pa.Array) -> pa.Table:
    """Scatter one shard's impressions into [sessions, K] arrays: slot k = position k+1."""
    K = cfg.list_size
    sid = df["session_id"].to_numpy()
    if len(sid) > 1 and (sid[1:] >= sid[:-1]).all():  # logs are usually written session by session: O(n)
        starts = np.concatenate([[True], sid[1:] != sid[:-1]])
        uniq, s_idx = sid[starts], np.cumsum(starts) - 1
    else:
        # Shards come back from the partitioned sink as runs of sorted sessions; a stable sort
        # (timsort/radix) exploits the runs where np.unique's quicksort does not.
        order = np.argsort(sid, kind="stable")
        ordered = sid[order]
        starts = np.concatenate([[True], ordered[1:] != ordered[:-1]])
        uniq = ordered[starts]
        s_idx = np.empty(len(sid), dtype=np.int64)
        s_idx[order] = np.cumsum(starts) - 1
    slot = df["position"].to_numpy().astype(np.int64) - 1
    flat = s_idx * K + slot
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

    n_clicks = click.sum(axis=1)
    keep = np.ones(len(uniq), dtype=bool) if acc.train_query is None else acc.train_query[first_q]
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
    acc.see_positions(doc[shown], np.broadcast_to(np.arange(K, dtype=np.int16), doc.shape)[shown])

    all_kept = bool(keep.all())

    def fixed(a: np.ndarray, t: pa.DataType) -> pa.Array:
        kept_rows = a if all_kept else a[keep]  # no copy when nothing is dropped
        return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(kept_rows).reshape(-1), t), K)

    cols = {
        "session_id": pa.array(uniq[keep], pa.int64()),
        "query_id": pa.DictionaryArray.from_arrays(pa.array(first_q[keep], pa.int32()), query_vocab).dictionary_decode(),
        "doc_index": fixed(doc, pa.int32()),
        "position": fixed(position, pa.int16()),
        "click": fixed(click, pa.int8()),
        "mask": fixed(mask, pa.bool_()),
    }
    schema = sessions_schema(K)
    for c, arr in extra_arrays.items():
        t = pa.from_numpy_dtype(arr.dtype)
        cols[c] = fixed(arr, t)
        schema = schema.append(pa.field(c, pa.list_(t, K), nullable=False))
    return pa.table(cols, schema=schema)


def _raise_mixed_query(df: pl.DataFrame, source: str) -> None:
    """Error path only: find the first input row whose session already had another query."""
    first = df.sort(ROW).with_columns(pl.col("query_index").first().over("session_id").alias("_first_query"))
    bad = first.filter(pl.col("query_index") != pl.col("_first_query")).row(0, named=True)
    raise DataError(
        f"{_row_text(source, int(bad[ROW]))}: session {bad['session_id']} has more than one query_id; "
        "a session is one query's result page (give each page its own session_id)"
    )


def print_stats(stats: dict[str, Any], file=sys.stdout) -> None:
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
        if spread["share"] < 0.01:
            print(
                "  (one ranking per query: the data alone cannot separate position from document, so learned "
                "propensities rest on the ranker's generalisation; see README, 'Severe bias and one ranking per query')", file=file)
    if stats.get("extra_columns_not_carried"):
        print(f"non-numeric extra columns not carried into session tables: {stats['extra_columns_not_carried']}", file=file)
