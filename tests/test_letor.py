import gzip
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.conftest import EMBEDDED_MQ2008, write_letor
from ultr.data.letor import ingest_letor, parse_svmlight, read_features
from ultr.data.schema import FEATURES_METADATA_KEY
from ultr.errors import DataError


def test_golden_three_query_parse(tiny_letor):
    p = parse_svmlight(tiny_letor["train"])
    assert p.query_ids == ["1", "1", "1", "2", "2", "3", "3"]
    assert p.doc_ids == ["a1", "a2", "a3", "b1", "b2", "c1", "c2"]
    assert p.labels.tolist() == [2, 0, 1, 0, 1, 0, 2]
    assert p.features.shape == (7, 4)
    np.testing.assert_array_equal(p.features[0], [1.0, 0.5, 0.0, 3.0])
    np.testing.assert_array_equal(p.features[2], [0.0, 2.0, 0.0, 0.0])  # missing ids are 0
    np.testing.assert_array_equal(p.features[5], np.float32([0.0, 0.0, 0.3, 0.0]))


def test_gzip_and_configured_width(tmp_path, tiny_letor):
    gz = tmp_path / "train.txt.gz"
    gz.write_bytes(gzip.compress(tiny_letor["train"].read_bytes()))
    p = parse_svmlight(gz, num_features=6)
    assert p.features.shape == (7, 6)
    np.testing.assert_array_equal(p.features[:, 4:], 0)


@pytest.mark.parametrize(
    "dialect,width,ids",
    [("mslr", 136, [1, 2, 136]), ("yahoo", 700, [5, 333, 700]), ("istella", 220, [1, 120, 220])],
)
def test_dialects_without_comments(tmp_path, dialect, width, ids):
    # MSLR/Istella/Yahoo carry no docid comments: ids derive from query and row, stably.
    lines = [f"{lab} qid:{q} " + " ".join(f"{i}:{v}" for i, v in zip(ids, (0.5, -1.25, 3e2))) for lab, q in ((3, 10), (0, 10), (4, 11))]
    p = parse_svmlight(write_letor(tmp_path / f"{dialect}.txt", lines), num_features=width)
    assert p.features.shape == (3, width)
    assert p.doc_ids == ["10-0", "10-1", "11-0"]
    assert p.features[0, ids[0] - 1] == 0.5 and p.features[0, ids[2] - 1] == 300.0
    assert np.count_nonzero(p.features[0]) == 3
    assert parse_svmlight(tmp_path / f"{dialect}.txt").features.shape == (3, ids[-1])  # width from data


@pytest.mark.parametrize(
    "line,msg",
    [
        ("1 qid:1 1:abc", "bad token '1:abc'"),
        ("1 qid:1 0:1.0", "bad token '0:1.0'"),
        ("1 qid:1 3", "bad token '3'"),
        ("1 qid:1 1:nan", "non-finite value"),
        ("1 qid:1 1:inf", "non-finite value"),
        ("x qid:1 1:1", "label 'x' is not an integer"),
        ("1.5 qid:1 1:1", "label '1.5' is not an integer"),
        ("1 1:1.0", "expected 'qid:<id>'"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, line, msg):
    path = write_letor(tmp_path / "bad.txt", ["0 qid:1 1:1.0", line])
    with pytest.raises(DataError, match=msg) as e:
        parse_svmlight(path)
    assert f"{path}:2" in str(e.value)


def test_interleaved_qids_and_empty_file(tmp_path):
    path = write_letor(tmp_path / "x.txt", ["0 qid:1 1:1", "0 qid:2 1:1", "1 qid:1 1:1"])
    with pytest.raises(DataError, match=r"x.txt:3: qid 1 appears again"):
        parse_svmlight(path)
    empty = write_letor(tmp_path / "empty.txt", ["# only a comment"])
    with pytest.raises(DataError, match="no data lines"):
        parse_svmlight(empty)
    with pytest.raises(DataError, match="exceeds the configured width"):
        parse_svmlight(write_letor(tmp_path / "w.txt", ["0 qid:1 5:1"]), num_features=4)


def test_truncated_gzip_is_reported(tmp_path, tiny_letor):
    data = gzip.compress(tiny_letor["train"].read_bytes() * 50)
    bad = tmp_path / "cut.txt.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated"):
        parse_svmlight(bad)


def test_ingest_normalises_with_train_statistics_only(tmp_path, tiny_letor):
    out = tmp_path / "features.parquet"
    stats = ingest_letor(tiny_letor, out, normalization="minmax")
    ft = read_features(out)
    train = ft.features[ft.rows("train")]
    assert train.min() == 0.0 and train.max() == 1.0
    # feature 1 on train spans [0, 1]: vali/test values keep the train transform, unclipped
    test = ft.features[ft.rows("test")]
    np.testing.assert_allclose(test[:, 0], [0.7, 0.1, 0.3, 0.2], rtol=1e-6)
    meta = json.loads(pq.ParquetFile(out).metadata.metadata[FEATURES_METADATA_KEY])
    assert meta["normalization"]["method"] == "minmax"
    assert meta["normalization"]["shift"] == [0.0, 0.0, 0.0, 0.0]
    assert meta["normalization"]["scale"] == pytest.approx([1.0, 2.0, 1.0, 3.0])
    assert stats["splits"]["vali"]["queries_without_relevant"] == 1
    assert stats["splits"]["test"]["queries_without_relevant"] == 1


def test_zscore_log1p_and_eval_query_filter(tmp_path, tiny_letor):
    out = tmp_path / "f.parquet"
    stats = ingest_letor(tiny_letor, out, normalization="zscore", log1p=True, drop_eval_queries_without_relevant=True)
    ft = read_features(out)
    train = ft.features[ft.rows("train")]
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-6)
    assert set(ft.query_ids[ft.rows("test")]) == {"6"}
    assert stats["splits"]["test"]["queries_dropped_without_relevant"] == 1
    assert stats["splits"]["train"]["queries_dropped_without_relevant"] == 0  # train is never filtered


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
def test_embedded_mq2008_fold1(tmp_path):
    fold = EMBEDDED_MQ2008 / "Fold1"
    stats = ingest_letor({s: fold / f"{s}.txt.gz" for s in ("train", "vali", "test")}, tmp_path / "f.parquet", num_features=46)
    assert {s: v["queries"] for s, v in stats["splits"].items()} == {"train": 471, "vali": 157, "test": 156}
    assert sum(v["documents"] for v in stats["splits"].values()) == 15211
    ft = read_features(tmp_path / "f.parquet")
    assert ft.features.shape == (15211, 46) and set(np.unique(ft.labels)) == {0, 1, 2}
    assert ft.doc_ids[0].startswith("GX")
