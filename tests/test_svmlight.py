"""The vectorised SVMlight ingest: both parse paths against a brute-force reference over random
files and piece sizes, the error of every bad input, held-out validation, and atomic writes."""

import gzip
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import write_letor
from ultr.data.letor import ingest_letor, parse_svmlight, read_features
from ultr.data.schema import FEATURES_METADATA_KEY
from ultr.data.svmlight import parse_dense
from ultr.errors import DataError
from ultr.workflows import letor_splits


def reference_parse(text: str, width: int):
    """The definition, one line at a time: what both parse paths must reproduce."""
    qids, docs, labels, rows = [], [], [], []
    per_query: dict[str, int] = {}
    for line in text.splitlines():
        body, _, comment = line.partition("#")
        tok = body.split()
        if not tok:
            continue
        q = tok[1][4:]
        x = np.zeros(width, np.float32)
        for t in tok[2:]:
            i, _, v = t.partition(":")
            x[int(i) - 1] = np.float32(float(v))
        doc = comment.split("=", 1)[1].split()[0] if "docid" in comment else f"{q}-{per_query.get(q, 0)}"
        per_query[q] = per_query.get(q, 0) + 1
        qids.append(q), docs.append(doc), labels.append(int(tok[0])), rows.append(x)
    return qids, docs, np.asarray(labels, np.int8), np.stack(rows)


@st.composite
def letor_text(draw):
    width = draw(st.integers(1, 6))
    dense = draw(st.booleans())
    comments = draw(st.booleans())
    lines = []
    for q in range(draw(st.integers(1, 6))):
        for d in range(draw(st.integers(1, 5))):
            ids = range(1, width + 1) if dense else sorted(draw(st.sets(st.integers(1, width), max_size=width)))
            vals = [draw(st.floats(-1e6, 1e6, allow_nan=False, width=32)) for _ in ids]
            feats = " ".join(f"{i}:{v!r}" for i, v in zip(ids, vals))
            tail = f" #docid = D{q}x{d} inc = 1" if comments else ""
            lines.append(f"{draw(st.integers(0, 4))} qid:{100 + q} {feats}{tail}".replace("  ", " "))
        if draw(st.booleans()):
            lines.append("# a comment line" if draw(st.booleans()) else "")
    return width, dense, "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None)
@given(data=letor_text(), chunk=st.integers(16, 400), gz=st.booleans())
def test_parse_matches_reference_for_any_piece_size(tmp_path_factory, data, chunk, gz):
    width, dense, text = data
    path = tmp_path_factory.mktemp("svm") / ("f.txt.gz" if gz else "f.txt")
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    # auto reads a dense file as dense (fast path); a sparse one must say so (its first row may list every id)
    got = parse_svmlight(path, num_features=width, chunk_bytes=chunk, sparse="auto" if dense else "true")
    qids, docs, labels, x = reference_parse(text, width)
    assert got.query_ids == qids and got.doc_ids == docs
    np.testing.assert_array_equal(got.labels, labels)
    np.testing.assert_array_equal(got.features, x)  # bit for bit: float64 then float32, as float() does


def test_dense_fast_path_taken_and_equal_to_general(tmp_path):
    lines = [f"{i % 3} qid:{i // 4} " + " ".join(f"{j}:{(i * j) % 7 / 3:.6g}" for j in range(1, 6)) + f" #docid = d{i}" for i in range(20)]
    data = ("\n".join(lines) + "\n").encode()
    fast = parse_dense(data, 1, 5)
    assert fast is not None  # the fast path accepts the dense layout itself
    general = parse_svmlight(write_letor(tmp_path / "d.txt", lines), num_features=5, sparse="true")
    np.testing.assert_array_equal(fast.features, general.features)
    assert fast.meta["doc_id"].to_list() == general.doc_ids
    # anything else is left to the general path
    assert parse_dense(data.replace(b"3:", b"4:", 1), 1, 5) is None
    assert parse_dense(b"\n" + data, 1, 5) is None


def test_mixed_dense_and_sparse_rows(tmp_path):
    dense = ["0 qid:1 " + " ".join(f"{j}:1" for j in range(1, 5))] * 3
    path = write_letor(tmp_path / "mixed.txt", dense + ["1 qid:2 1:1 3:2"])
    with pytest.raises(DataError, match=r"mixed.txt:4: .*mixes dense and sparse rows; set data.sparse=true"):
        parse_svmlight(path, num_features=4)
    assert parse_svmlight(path, num_features=4, sparse=True).features[3].tolist() == [1, 0, 2, 0]
    with pytest.raises(DataError, match=r"sparse.txt:1: .*data.sparse=false expects every row"):
        parse_svmlight(write_letor(tmp_path / "sparse.txt", ["1 qid:2 1:1 3:2"]), num_features=4, sparse=False)


def test_feature_id_above_preset_width_in_dense_file(tmp_path):
    lines = ["0 qid:1 " + " ".join(f"{j}:1" for j in range(1, 5))] * 5 + ["0 qid:1 " + " ".join(f"{j}:1" for j in range(1, 6))]
    with pytest.raises(DataError, match=r"wide.txt:6: feature id 5 exceeds the configured width 4; raise data.num_features"):
        parse_svmlight(write_letor(tmp_path / "wide.txt", lines), num_features=4)


def test_errors_found_in_a_later_piece_keep_their_line(tmp_path):
    lines = [f"0 qid:{i // 10} 1:0.5 2:1" for i in range(500)]
    lines[437] = "0 qid:43 1:0.5 2:oops"
    with pytest.raises(DataError, match=r"late.txt:438: bad token '2:oops'"):
        parse_svmlight(write_letor(tmp_path / "late.txt", lines), num_features=2, chunk_bytes=256)


def test_missing_split_names_the_path(tmp_path, tiny_letor):
    fold = tmp_path / "Fold1"
    fold.mkdir()
    (fold / "train.txt").write_text(tiny_letor["train"].read_text())
    with pytest.raises(DataError, match=r"Fold1/vali.txt: no such file \(nor .gz\) for the vali split"):
        letor_splits({"root": str(tmp_path), "fold": 1})
    splits = letor_splits({"root": str(tmp_path), "fold": 1, "splits": ["train", "vali"], "vali_fraction": 0.3})
    assert list(splits) == ["train"]  # vali comes out of train
    files = letor_splits({"root": str(tmp_path), "fold": None, "splits": ["train"], "files": {"train": "Fold1/train.txt"}})
    assert files["train"] == fold / "train.txt"


def test_vali_fraction_holds_out_seeded_training_queries(tmp_path):
    lines = [f"{i % 3} qid:{q} 1:{q}" for q in range(40) for i in range(3)]
    train = write_letor(tmp_path / "train.txt", lines)
    test = write_letor(tmp_path / "test.txt", lines[:6])
    out = tmp_path / "f.parquet"
    stats = ingest_letor({"train": train, "test": test}, out, vali_fraction=0.25, seed=3, normalization="zscore")
    ft = read_features(out)
    vali_q, train_q = set(ft.query_ids[ft.rows("vali")]), set(ft.query_ids[ft.rows("train")])
    assert len(vali_q) == 10 and len(train_q) == 30 and not vali_q & train_q
    assert stats["held_out"] == {"split": "vali", "from": "train", "fraction": 0.25, "seed": 3, "queries": 10}
    assert stats["splits"]["vali"]["queries"] == 10 and stats["splits"]["train"]["queries"] == 30
    # the normalisation is fitted on the remaining training queries only (feature 1 = the qid)
    meta = json.loads(pq.ParquetFile(out).metadata.metadata[FEATURES_METADATA_KEY])
    train_x = np.array([float(q) for q in train_q])
    assert meta["normalization"]["shift"] == pytest.approx([train_x.mean()])
    assert meta["normalization"]["scale"] == pytest.approx([train_x.std()])
    again = ingest_letor({"train": train, "test": test}, tmp_path / "g.parquet", vali_fraction=0.25, seed=3)
    assert set(read_features(tmp_path / "g.parquet").query_ids[ft.rows("vali")]) == vali_q and again["held_out"]
    other = ingest_letor({"train": train, "test": test}, tmp_path / "h.parquet", vali_fraction=0.25, seed=4)
    assert other["held_out"]["queries"] == 10
    h = read_features(tmp_path / "h.parquet")
    assert set(h.query_ids[h.rows("vali")]) != vali_q


@pytest.mark.parametrize("fraction", [0.001, 0.999, 1.0])
def test_vali_fraction_that_empties_a_split(tmp_path, fraction):
    train = write_letor(tmp_path / "train.txt", [f"0 qid:{q} 1:1" for q in range(5)])
    with pytest.raises(DataError, match=r"train.txt: data.vali_fraction=.* of 5 training queries, leaving a split empty"):
        ingest_letor({"train": train}, tmp_path / "f.parquet", vali_fraction=fraction)


def test_failed_ingest_leaves_no_table(tmp_path, tiny_letor):
    out = tmp_path / "features.parquet"
    bad = write_letor(tmp_path / "test_bad.txt", ["0 qid:9 1:1", "0 qid:9 1:x"])
    with pytest.raises(DataError, match="test_bad.txt:2"):
        ingest_letor({"train": tiny_letor["train"], "test": bad}, out)
    assert not out.exists() and not list(tmp_path.glob(".features*"))


def test_sparse_yahoo_style_ids_and_width_from_configuration(tmp_path):
    lines = ["1 qid:7 3:0.5 700:1", "0 qid:7 12:0.25", "2 qid:8 1:1"]
    p = parse_svmlight(write_letor(tmp_path / "set1.train.txt", lines), num_features=700, sparse=True)
    assert p.features.shape == (3, 700) and p.features[0, 699] == 1.0 and p.features[1, 11] == 0.25


def test_width_from_the_data_across_pieces(tmp_path):
    lines = [f"0 qid:{i // 3} {1 + i % 7}:1.5" for i in range(60)]  # pieces see different largest ids
    p = parse_svmlight(write_letor(tmp_path / "s.txt", lines), chunk_bytes=40)
    assert p.features.shape == (60, 7) and p.features[59, (59 % 7)] == 1.5 and p.features.sum() == 90
    out = tmp_path / "f.parquet"
    ingest_letor({"train": tmp_path / "s.txt"}, out, normalization="zscore", chunk_bytes=40)
    np.testing.assert_allclose(read_features(out).features.mean(axis=0), 0, atol=1e-6)


def test_odd_whitespace_takes_the_regex_split(tmp_path):
    lines = ["1 qid:1  1:0.5\t3:2 ", "\t0 qid:1 2:1   #docid = x"]
    p = parse_svmlight(write_letor(tmp_path / "ws.txt", lines), num_features=3)
    assert p.features.tolist() == [[0.5, 0, 2], [0, 1, 0]] and p.doc_ids == ["1-0", "x"]
