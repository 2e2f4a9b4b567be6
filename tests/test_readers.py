"""Real-log readers on hand-written fixtures (awkward cases included) with exact expected tables."""

import gzip
import json
import subprocess
import sys

import polars as pl
import pytest

from tests.conftest import ROOT, SHARED
from ultr.data.readers import ReaderPolicy, convert_log
from ultr.data.readers.baidu import DOC_COLUMNS, read_baidu_annotations
from ultr.errors import DataError


def baidu_doc(pos, url, click, dwell=0.0, mm=0, skip=0):
    f = ["0"] * len(DOC_COLUMNS)
    f[0], f[1], f[2], f[3], f[4], f[5] = str(pos), url, "12\x0134", "56\x0178", str(mm), str(click)
    f[8], f[16] = str(skip), str(dwell)
    return "\t".join(f)


BAIDU = [
    "q1\t11\x0122\t",
    baidu_doc(1, "u1", 0, skip=1), baidu_doc(2, "u2", 1, dwell=12.5, mm=3),
    "q2\t33\t44",
    baidu_doc(1, "u9", 1, dwell=3.0), baidu_doc(2, "u1", 0),
    "q1\t11\x0122\t",
    baidu_doc(1, "u2", 0),  # the last session of a file must not be lost
]


def read_clicks(out):
    return pl.read_parquet(out / "clicks" / "*.parquet").sort("session_id", "position")


@pytest.mark.parametrize("gz", [True, False])
def test_baidu_exact_table(tmp_path, gz):
    text = "\n".join(BAIDU) + "\n"
    p = tmp_path / ("part-00000.gz" if gz else "part-00000")
    p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    stats = convert_log("baidu", [p], tmp_path, ReaderPolicy())
    df = read_clicks(tmp_path)
    assert df.select("session_id", "query_id", "doc_id", "position", "click").rows() == [
        (0, "q1", "u1", 1, 0), (0, "q1", "u2", 2, 1), (1, "q2", "u9", 1, 1), (1, "q2", "u1", 2, 0), (2, "q1", "u2", 1, 0),
    ]
    assert df["dwelling_time"].to_list() == [0.0, 12.5, 3.0, 0.0, 0.0]
    assert df["multimedia_type"].to_list() == [0, 3, 0, 0, 0] and df["skip"].to_list() == [1, 0, 0, 0, 0]
    assert stats["sessions"] == 3 and stats["impressions"] == 5 and stats["clicks"] == 2


def test_baidu_bad_lines(tmp_path):
    lines = BAIDU[:3] + ["1\tu3\tt\ta\t0"] + BAIDU[3:]  # 5 fields: neither query (2-3) nor document (32)
    p = tmp_path / "part-00001"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"part-00001:4: document line without 32 fields or with a missing/non-numeric position, url or click"):
        convert_log("baidu", [p], tmp_path / "a", ReaderPolicy())
    stats = convert_log("baidu", [p], tmp_path / "b", ReaderPolicy(on_bad_line="quarantine"))
    assert list(stats["quarantined"].values()) == [1]
    q = pl.read_parquet(tmp_path / "b" / "quarantine.parquet")
    assert q["line"].to_list() == [4]
    bad = tmp_path / "part-00002"
    bad.write_text("\n".join([BAIDU[0], baidu_doc(1, "u1", "yes")]) + "\n")
    with pytest.raises(DataError, match=r"part-00002:2: document line without 32 fields or with a missing/non-numeric"):
        convert_log("baidu", [bad], tmp_path / "c", ReaderPolicy())
    dup = tmp_path / "part-00003"
    dup.write_text("\n".join([BAIDU[0], baidu_doc(1, "u1", 0), baidu_doc(1, "u2", 1)]) + "\n")
    with pytest.raises(DataError, match=r"part-00003:2: position 1 appears twice"):
        convert_log("baidu", [dup], tmp_path / "d", ReaderPolicy())
    orphan = tmp_path / "part-00004"
    orphan.write_text(baidu_doc(1, "u1", 0) + "\n")
    with pytest.raises(DataError, match="document line before any query line"):
        convert_log("baidu", [orphan], tmp_path / "e", ReaderPolicy())


def test_truncated_gzip(tmp_path):
    data = gzip.compress(("\n".join(BAIDU * 200) + "\n").encode())
    p = tmp_path / "part-00009.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"part-00009.gz: truncated or corrupt gzip"):  # Baidu reader
        convert_log("baidu", [p], tmp_path, ReaderPolicy())


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("chunk_bytes", [40, 333, 1 << 20])
def test_baidu_pieces_equal_one_read(tmp_path, gz, chunk_bytes):
    """A part read in pieces (each cut before a query line, so sessions stay whole) gives exactly
    the table of one read, and errors still carry the file's own line numbers."""
    lines = BAIDU * 30

    def write(name, rows):
        p = tmp_path / (name + (".gz" if gz else ""))
        text = ("\n".join(rows) + "\n").encode()
        p.write_bytes(gzip.compress(text) if gz else text)
        return p

    p = write("part-00000", lines)
    one = convert_log("baidu", [p], tmp_path / "one", ReaderPolicy())
    pieces = convert_log("baidu", [p], tmp_path / "pieces", ReaderPolicy(chunk_bytes=chunk_bytes))
    assert read_clicks(tmp_path / "pieces").equals(read_clicks(tmp_path / "one"))
    assert {k: pieces[k] for k in ("lines", "sessions", "impressions", "clicks")} == {k: one[k] for k in ("lines", "sessions", "impressions", "clicks")}
    assert one["sessions"] == 90 and one["lines"] == len(lines)
    n_parts = len(list((tmp_path / "pieces" / "clicks").glob("*.parquet")))
    assert n_parts > 1 if chunk_bytes < 1000 else n_parts == 1
    bad = write("part-00001", lines[:150] + ["1\tu3\tt\ta\t0"] + lines[150:])
    with pytest.raises(DataError, match=r"part-00001(\.gz)?:151: document line without 32 fields"):
        convert_log("baidu", [bad], tmp_path / "bad", ReaderPolicy(chunk_bytes=chunk_bytes))


def test_read_ahead_keeps_order_errors_and_stops():
    from ultr.data.readers.common import read_ahead

    assert list(read_ahead(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise DataError("part-9: broken")

    it = read_ahead(failing())
    assert next(it) == 1 and next(it) == 2  # the items before the error arrive first
    with pytest.raises(DataError, match="part-9: broken"):
        next(it)
    endless = read_ahead(iter(range(10**9)))
    assert next(endless) == 0
    endless.close()  # a caller that stops early (an error in the parse) must not hang on the worker


def test_baidu_annotations(tmp_path):
    p = tmp_path / "annotations.txt"
    p.write_text("1\x012\t3\x014\t5\t2\t0\n7\t8\t9\t0\t9\n")
    df = read_baidu_annotations(p)
    assert df.rows() == [("1\x012", "3\x014", "5", 2, 0), ("7", "8", "9", 0, 9)]
    p.write_text("1\t2\t3\tx\t0\n")
    with pytest.raises(DataError, match="annotations.txt:1: label and bucket must be integers"):
        read_baidu_annotations(p)


YANDEX = [
    "10\t0\tQ\t500\t1\t7,70\t8,80\t9,90",
    "10\t5\tC\t8",
    "10\t9\tC\t8",          # repeated click: counted, binarised
    "10\t12\tQ\t501\t1\t9,90\t7,70",  # second page of the same user session
    "10\t15\tC\t7",
    "10\t16\tC\t99",        # not shown on that page: quarantined and counted
    "11\t0\tQ\t500\t2\t8,80\t7,70\t9,90",
    "11\t3\tC\t9",          # last session of the file
]


@pytest.mark.parametrize("chunk", [1 << 20, 40])
def test_yandex_exact_table(tmp_path, chunk):
    p = tmp_path / "wscd.txt"
    p.write_text("\n".join(YANDEX) + "\n")
    stats = convert_log("yandex", [p], tmp_path, ReaderPolicy(chunk_bytes=chunk))
    df = read_clicks(tmp_path)
    assert df.select("session_id", "query_id", "doc_id", "position", "click", "click_count").rows() == [
        (0, "500", "7", 1, 0, 0), (0, "500", "8", 2, 1, 2), (0, "500", "9", 3, 0, 0),
        (1, "501", "9", 1, 0, 0), (1, "501", "7", 2, 1, 1),
        (2, "500", "8", 1, 0, 0), (2, "500", "7", 2, 0, 0), (2, "500", "9", 3, 1, 1),
    ]
    assert stats["repeated_clicks"] == 1 and stats["sessions"] == 3
    assert stats["quarantined"] == {"click on a URL the page did not show": 1}
    with pytest.raises(DataError, match=r"wscd.txt:6: click on a URL the page did not show"):
        convert_log("yandex", [p], tmp_path / "strict", ReaderPolicy(on_unshown_click="error", chunk_bytes=chunk))
    with pytest.raises(DataError, match=r"wscd.txt:2: URL clicked 2 times"):
        convert_log("yandex", [p], tmp_path / "rep", ReaderPolicy(repeated_clicks="error"))


def test_yandex_malformed(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("10\t0\tQ\t500\t1\t7,70\n10\t1\tX\t7\nabc\t0\tC\t7\n12\t0\tC\t7\n")
    with pytest.raises(DataError, match=r"bad.txt:2: line is neither"):
        convert_log("yandex", [p], tmp_path / "a", ReaderPolicy())
    stats = convert_log("yandex", [p], tmp_path / "b", ReaderPolicy(on_bad_line="quarantine"))
    assert stats["quarantined"] == {
        "line is neither 'SID TIME Q QUERY REGION URLS...' nor 'SID TIME C URL'": 1,
        "SessionID is not an integer": 1,
        "click before any result page of its session": 1,
    }


PYCLICK = "q1\td1,d2,d3 : d2 , d2 , d9; q1\td1,d2,d3 :; q1\td3,d1,d2 : d3\nq2\te1,e2 : e2 , e1\n"


def test_pyclick_exact_table(tmp_path):
    p = tmp_path / "sample"
    p.write_text(PYCLICK)
    stats = convert_log("pyclick", [p], tmp_path, ReaderPolicy())
    df = read_clicks(tmp_path)
    assert df.select("session_id", "query_id", "doc_id", "position", "click", "click_count").rows() == [
        (0, "q1", "d1", 1, 0, 0), (0, "q1", "d2", 2, 1, 2), (0, "q1", "d3", 3, 0, 0),
        (1, "q1", "d1", 1, 0, 0), (1, "q1", "d2", 2, 0, 0), (1, "q1", "d3", 3, 0, 0),
        (2, "q1", "d3", 1, 1, 1), (2, "q1", "d1", 2, 0, 0), (2, "q1", "d2", 3, 0, 0),
        (3, "q2", "e1", 1, 1, 1), (3, "q2", "e2", 2, 1, 1),
    ]
    assert stats["repeated_clicks"] == 1
    assert stats["quarantined"] == {"click on a document the session did not show": 1}


def test_etl_cli_on_real_format(tmp_path):
    p = tmp_path / "sample"
    p.write_text(PYCLICK)
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "pipelines.etl", "log.format=pyclick", f"log.path={p}", f"hydra.run.dir={out}", "etl.list_size=3"],
                   cwd=ROOT, check=True, capture_output=True)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["sessions"] == 4 and stats["clicks_per_position"] == [2, 2, 0]
    assert stats["quarantined"] == {"click on a document the session did not show": 1}
    assert (out / "clicks").is_dir() and (out / "doc_vocab.parquet").exists() and (out / "quarantine.parquet").exists()
    assert stats["extra_columns_carried"] == ["click_count"]


YANDEX_SAMPLE = SHARED / "yandex-relpred-sample" / "trainSample.gz"


@pytest.mark.skipif(not YANDEX_SAMPLE.exists(), reason="../shared/data/yandex-relpred-sample not present")
def test_real_yandex_sample_counts(tmp_path):
    stats = convert_log("pyclick", [YANDEX_SAMPLE], tmp_path, ReaderPolicy())
    assert stats["sessions"] == 35064 and stats["impressions"] == 350640  # README: 35,064 sessions, 10 results
    assert stats["quarantined"]["click on a document the session did not show"] > 0
