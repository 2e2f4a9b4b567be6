"""SVMlight / LETOR text (`label qid:Q id:value ... # comment`) parsed in bounded pieces by Polars.

Dialects: MQ2007/MQ2008 (46 dense features, `#docid = ...` comments), MSLR-WEB10K/30K (136 dense),
Istella(-S) (220 dense), Yahoo LTR set 1 (700 ids, only the non-zero ones written).

A file is read in pieces of about `chunk_bytes` of text, each cut at a line end and parsed by
Polars (no Python work per token or row). Dense rows, every id 1..W in order, take a fast path:
Polars' CSV reader splits the fields and a fixed prefix is cut from each column. Anything that path
does not accept exactly (sparse rows, blank or comment lines, odd spacing, bad values) goes to the
general path, which explodes tokens and checks each one, so every malformed line fails with
`file:line` and the fix. Pieces are re-cut so that each holds whole queries.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl

from ultr.data.readers.common import LINE, iter_byte_chunks, line_frame, read_ahead
from ultr.errors import DataError

SPARSE_MODES = ("auto", "true", "false")
EMPTY_META = {LINE: pl.UInt32, "query_id": pl.String, "doc_id": pl.String, "label": pl.Int8}


@dataclass
class Piece:
    """Consecutive whole queries of one file: `meta` has LINE, query_id, doc_id, label per row."""

    meta: pl.DataFrame
    features: np.ndarray  # float32 [n, W]

    def __len__(self) -> int:
        return self.meta.height

    def take(self, rows: slice | np.ndarray) -> "Piece":
        meta = self.meta[rows] if isinstance(rows, slice) else self.meta.filter(pl.Series(rows))
        return Piece(meta, self.features[rows])


def concat(pieces: list[Piece], width: int | None = None) -> Piece:
    """Pieces of one file as one; without a configured width, each piece is as wide as its largest
    id, so narrower ones are padded with zeros."""
    width = width if width is not None else max(p.features.shape[1] for p in pieces)
    feats = [np.pad(p.features, ((0, 0), (0, width - p.features.shape[1]))) for p in pieces]
    return Piece(pl.concat([p.meta for p in pieces]), np.concatenate(feats))


def _sparse_mode(sparse: object) -> str:
    mode = str(sparse).lower() if sparse is not None else "auto"
    if mode not in SPARSE_MODES:
        raise DataError(f"data.sparse={sparse!r} is not one of auto, true, false")
    return mode


def _after_last_newline(block: bytes) -> int:
    return block.rfind(b"\n") + 1 or -1


def _first_error(candidates: list[tuple[int, int, str]]) -> None:
    """Raise the error of the earliest line (ties: the earlier check)."""
    if candidates:
        raise DataError(min(candidates)[2])


# --- general path -------------------------------------------------------------------------------

def _tokens(lines: pl.DataFrame) -> pl.DataFrame:
    """LINE, tok (list of whitespace-separated tokens before '#'), comment; data lines only."""
    parts = lines.select(LINE, pl.col("text").str.splitn("#", 2).alias("p")).unnest("p")
    body = pl.col("field_0").str.strip_chars()
    # Single spaces (every standard file): a literal split; other whitespace needs the slower regex.
    single = not parts.select((pl.col("field_0").str.contains(r"\s\s|[^\S ]")).any()).item()
    tokens = body.str.split(" ") if single else body.str.extract_all(r"\S+")
    return (
        parts.select(LINE, pl.when(body != "").then(tokens).alias("tok"), pl.col("field_1").alias("comment"))
        .filter(pl.col("tok").list.len() > 0)
    )


def _head(df: pl.DataFrame, where: str) -> tuple[pl.DataFrame, list[tuple[int, int, str]]]:
    """Label and qid of each row (LINE, query_id, doc_id, label), and the errors found."""
    first, second = pl.col("tok").list.get(0), pl.col("tok").list.get(1, null_on_oob=True)
    head = df.select(
        LINE, first.alias("label_tok"), first.cast(pl.Int64, strict=False).alias("label"), second.alias("qid_tok"),
        pl.col("comment").str.extract(r"docid\s*=\s*(\S+)").alias("doc_id"),
    )
    errors = []
    bad = head.filter(pl.col("label").is_null())
    if bad.height:
        errors.append((bad[LINE][0], 0, f"{where}:{bad[LINE][0]}: label {bad['label_tok'][0]!r} is not an integer; the first token must be the graded label"))
    bad = head.filter(~pl.col("label").is_between(-128, 127))
    if bad.height:
        errors.append((bad[LINE][0], 0, f"{where}:{bad[LINE][0]}: label {bad['label'][0]} does not fit a graded relevance label (int8)"))
    ok_qid = pl.col("qid_tok").str.starts_with("qid:") & (pl.col("qid_tok").str.len_bytes() > 4)
    bad = head.filter(~ok_qid.fill_null(False))
    if bad.height:
        got = bad["qid_tok"][0] if bad["qid_tok"][0] is not None else "end of line"
        errors.append((bad[LINE][0], 1, f"{where}:{bad[LINE][0]}: expected 'qid:<id>' as the second token, got {got!r}"))
    return head.select(LINE, pl.col("qid_tok").str.slice(4).alias("query_id"), "doc_id", pl.col("label").cast(pl.Int8)), errors


def _feature_tokens(df: pl.DataFrame, where: str, limit: int | None) -> tuple[pl.DataFrame, list[tuple[int, int, str]]]:
    """One row per feature token (row, LINE, tok, id, value), and the first bad token's error."""
    feats = (
        df.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("row"), LINE, pl.col("tok").list.slice(2))
        .explode("tok").drop_nulls("tok")
    )
    colon = pl.col("tok").str.find(":", literal=True)  # find + slice: cheaper than split_exact's struct
    feats = feats.with_columns(colon.alias("colon")).with_columns(
        pl.col("tok").str.head(pl.col("colon")).cast(pl.Int64, strict=False).alias("id"),
        pl.col("tok").str.slice(pl.col("colon") + 1).alias("value_tok"),
    ).with_columns(pl.col("value_tok").cast(pl.Float64, strict=False).alias("value")).drop("colon")
    bad_token = pl.col("value").is_null() | pl.col("id").is_null() | (pl.col("id") < 1)
    too_wide = (pl.col("id") > limit) if limit is not None else pl.lit(False)
    problem = (
        pl.when(bad_token).then(pl.format("bad token '{}'; expected '<feature id >= 1>:<value>'", "tok"))
        .when(~pl.col("value").is_finite())
        .then(pl.format("feature {} has non-finite value '{}'; replace it with a finite number", "id", "value_tok"))
        .when(too_wide)
        .then(pl.format("feature id {} exceeds the configured width {}; raise data.num_features", "id", pl.lit(limit)))
    )
    # Messages are formatted for the bad tokens only (formatting every token doubled the parse).
    bad = feats.filter((bad_token | ~pl.col("value").is_finite() | too_wide).fill_null(True))
    bad = bad.select(LINE, problem.alias("problem")).drop_nulls("problem")
    errors = [(bad[LINE][0], 2, f"{where}:{bad[LINE][0]}: {bad['problem'][0]}")] if bad.height else []
    return feats, errors


def _check_dense(df: pl.DataFrame, feats: pl.DataFrame, where: str, width: int, forced: bool) -> None:
    """Every row must list ids 1..width in order (the dense layout)."""
    counts = df["tok"].list.len().to_numpy() - 2
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(feats)) - np.repeat(starts, counts)
    wrong_id = feats.filter(pl.Series(feats["id"].to_numpy() != pos + 1))
    lines = df[LINE].to_numpy()
    bad_lines = [int(lines[counts != width][0])] if (counts != width).any() else []
    if wrong_id.height:
        bad_lines.append(int(wrong_id[LINE][0]))
    if bad_lines:
        line = min(bad_lines)
        why = "data.sparse=false expects every row to list ids 1..{w} in order" if forced else \
            "the rows before it list every id 1..{w} in order: the file mixes dense and sparse rows"
        raise DataError(f"{where}:{line}: row does not list feature ids 1..{width}; {why.format(w=width)}; "
                        "set data.sparse=true to read every row as sparse (missing ids are 0)")


def parse_general(lines: pl.DataFrame, where: str, width: int | None, dense: bool, *,
                  limit: int | None = None, forced: bool = False) -> Piece:
    """Any SVMlight text, every token checked (ids above `limit` are errors). `width=None` takes
    the width from the data; `dense` also requires ids 1..width on every row."""
    df = _tokens(lines)
    if df.height == 0:  # blank and comment lines only
        return Piece(pl.DataFrame(schema=EMPTY_META), np.zeros((0, width or 0), dtype=np.float32))
    head, errors = _head(df, where)
    feats, token_errors = _feature_tokens(df, where, limit)
    _first_error(errors + token_errors)
    if dense and width is not None:
        _check_dense(df, feats, where, width, forced)
    w = width if width is not None else int(feats["id"].max() or 0)
    x = np.zeros((df.height, w), dtype=np.float32)
    x[feats["row"].to_numpy(), feats["id"].to_numpy() - 1] = feats["value"].to_numpy()
    return Piece(head, x)


# --- dense fast path ----------------------------------------------------------------------------

def parse_dense(data: bytes, first_line: int, width: int) -> Piece | None:
    """Polars' CSV reader over `label qid:Q 1:v ... W:v [#docid = D ...]` lines; None unless every
    line is exactly that (the general path then parses the piece, or names the bad line)."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    names = ["label", "qid", *(f"t{j}" for j in range(width)), "c0", "c1", "c2"]
    try:
        df = pl.read_csv(io.BytesIO(data), has_header=False, separator=" ", schema={n: pl.String for n in names},
                         truncate_ragged_lines=True, quote_char=None, missing_columns="insert")
    except pl.exceptions.PolarsError:
        return None
    if df.height != lines:
        return None
    prefixes = [f"{j + 1}:" for j in range(width)]
    comment_ok = pl.col("c0").is_null() | (pl.col("c0") == "") | (
        (pl.col("c0") == "#docid") & (pl.col("c1") == "=") & pl.col("c2").is_not_null())
    label = pl.col("label").cast(pl.Int64, strict=False)
    ok = df.select(pl.all_horizontal(
        label.is_between(-128, 127).fill_null(False),
        pl.col("qid").str.starts_with("qid:").fill_null(False), pl.col("qid").str.len_bytes() > 4,
        comment_ok, *(pl.col(f"t{j}").str.starts_with(p).fill_null(False) for j, p in enumerate(prefixes)),
    ).all()).item()
    if not ok:
        return None
    # Through float64, as Python's float() then float32 rounds: the same bits as the general path.
    values = df.select(pl.col(f"t{j}").str.slice(len(p)).cast(pl.Float64, strict=False).cast(pl.Float32)
                       for j, p in enumerate(prefixes))
    x = np.ascontiguousarray(values.to_numpy())
    if not np.isfinite(x).all():
        return None
    meta = df.select(
        pl.int_range(first_line, first_line + df.height, dtype=pl.UInt32).alias(LINE),
        pl.col("qid").str.slice(4).alias("query_id"),
        pl.when(pl.col("c0") == "#docid").then(pl.col("c2")).alias("doc_id"),
        label.cast(pl.Int8).alias("label"),
    )
    return Piece(meta, x)


# --- a whole file -------------------------------------------------------------------------------

def _whole_queries(piece: Piece, carry: Piece | None) -> tuple[Piece, Piece | None]:
    """Prepend the carried rows; hold back the last query (it may go on in the next piece)."""
    if carry is not None and len(carry):
        piece = concat([carry, piece])
    if len(piece) == 0:
        return piece, carry
    runs = piece.meta["query_id"].rle_id().to_numpy()
    cut = int(np.searchsorted(runs, runs[-1]))
    return piece.take(slice(0, cut)), piece.take(slice(cut, None))


class QueryOrder:
    """SVMlight files keep each query's rows together: a qid seen again after others is an error."""

    def __init__(self, where: str):
        self.where, self.seen = where, pl.Series("query_id", [], pl.String)

    def check(self, meta: pl.DataFrame) -> None:
        runs = meta.select(pl.col("query_id").rle_id().alias("run"), "query_id", LINE).unique("run", keep="first", maintain_order=True)
        again = runs.filter(pl.col("query_id").is_duplicated() & (pl.int_range(pl.len()).over("query_id") > 0)
                            | pl.col("query_id").is_in(self.seen))
        if again.height:
            q, line = again["query_id"][0], again[LINE][0]
            raise DataError(f"{self.where}:{line}: qid {q} appears again after other queries; "
                            "SVMlight files must keep each query's rows together (sort the file by qid)")
        self.seen = pl.concat([self.seen, runs["query_id"]])


def _name_documents(piece: Piece) -> Piece:
    """Rows without a `docid = ...` comment are named `<qid>-<row within the query>`, stably."""
    meta = piece.meta.with_columns(pl.coalesce(
        "doc_id", pl.format("{}-{}", "query_id", pl.int_range(pl.len()).over(pl.col("query_id").rle_id()))).alias("doc_id"))
    return Piece(meta, piece.features)


def iter_svmlight(path: str | Path, num_features: int | None = None, sparse: object = "auto",
                  chunk_bytes: int = 64 << 20, on_bytes=None) -> Iterator[Piece]:
    """Pieces of whole queries, in file order. `on_bytes(n)` is told the text read so far (progress)."""
    path = Path(path)
    mode = _sparse_mode(sparse)
    dense = None if mode == "auto" else mode == "false"
    width = num_features
    if dense and width is None:
        raise DataError(f"{path}: data.sparse=false needs data.num_features (the width every row lists)")
    order = QueryOrder(str(path))
    carry, total = None, 0
    pieces = read_ahead(iter_byte_chunks(path, chunk_bytes, _after_last_newline))
    for data, first_line in pieces:
        if on_bytes is not None:
            on_bytes(len(data))
        if dense is None:
            dense, width = _detect_dense(_head_lines(data, path, first_line), str(path), width)
        piece = parse_dense(data, first_line, width) if dense and width else None
        if piece is None:  # not the plain dense layout: every token checked
            lines = line_frame(data[:-1] if data.endswith(b"\n") else data, path, first_line)
            piece = parse_general(lines, str(path), width, bool(dense), limit=num_features, forced=mode == "false")
        out, carry = _whole_queries(piece, carry)
        if len(out):
            order.check(out.meta)
            total += len(out)
            yield _name_documents(out)
    if carry is not None and len(carry):
        order.check(carry.meta)
        total += len(carry)
        yield _name_documents(carry)
    if total == 0:
        raise DataError(f"{path}: no data lines; expected SVMlight rows 'label qid:Q idx:val ...'")


def _head_lines(data: bytes, path: Path, first_line: int, size: int = 1 << 16) -> pl.DataFrame:
    """The whole lines among the first `size` bytes (the first one even when it is longer)."""
    end = data.find(b"\n", size) if len(data) > size else -1
    head = data if end < 0 else data[:end]
    return line_frame(head[:-1] if head.endswith(b"\n") else head, path, first_line)


def _detect_dense(lines: pl.DataFrame, where: str, width: int | None) -> tuple[bool | None, int | None]:
    """Auto mode: with a configured width W, the file is dense if its first data row lists ids
    1..W in order (undecided while no data row has been seen); without one it is read as sparse."""
    if width is None:
        return False, None
    df = _tokens(lines).head(1)
    if df.height == 0:
        return None, width
    ids = _feature_tokens(df, where, None)[0]["id"].drop_nulls().to_numpy()
    return len(ids) == width and bool((ids == np.arange(1, width + 1)).all()), width
