import json
import subprocess
import sys

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from ultr.data.batching import BatchIterator, query_lists, read_sessions, session_arrays
from ultr.data.etl import EtlConfig, run_etl
from ultr.data.letor import ingest_letor, read_features
from ultr.errors import DataError


@pytest.fixture
def features_path(tmp_path, tiny_letor):
    path = tmp_path / "features.parquet"
    ingest_letor(tiny_letor, path)
    return path


def write_log(path, rows, **extra):
    cols = list(zip(*rows))
    df = pl.DataFrame({"session_id": cols[0], "query_id": cols[1], "doc_id": cols[2], "position": cols[3], "click": cols[4], **extra})
    if str(path).endswith(".csv"):
        df.write_csv(path)
    else:
        df.write_parquet(path)
    return path


# features rows: a1=0 a2=1 a3=2 b1=3 b2=4 c1=5 c2=6 ...
TINY_LOG = [
    (7, "1", "a2", 1, 0), (7, "1", "a1", 2, 1), (7, "1", "a3", 4, 1), (7, "1", "a3", 9, 0),  # gap at 3, pos 9 > K
    (3, "2", "b2", 1, 0), (3, "2", "b1", 2, 0),  # zero-click session
]


def test_tiny_log_to_exact_session_table(tmp_path, features_path):
    log = write_log(tmp_path / "log.parquet", TINY_LOG, dwell=[1.5, 2.0, 0.0, 9.0, 0.0, 0.0])
    stats = run_etl(log, features_path, tmp_path / "out", EtlConfig(list_size=4))
    t = pq.read_table(tmp_path / "out" / "sessions").to_pydict()
    assert t["session_id"] == [3, 7]  # ordered by session id
    assert t["query_id"] == ["2", "1"]
    assert t["doc_index"] == [[4, 3, -1, -1], [1, 0, -1, 2]]
    assert t["position"] == [[1, 2, 0, 0], [1, 2, 0, 4]]
    assert t["click"] == [[0, 0, 0, 0], [0, 1, 0, 1]]
    assert t["mask"] == [[True, True, False, False], [True, True, False, True]]
    assert t["dwell"] == [[0.0, 0.0, 0.0, 0.0], [1.5, 2.0, 0.0, 0.0]]
    assert stats["sessions"] == 2 and stats["impressions"] == 5 and stats["clicks"] == 2
    assert stats["zero_click_sessions"] == 1
    assert stats["dropped_rows"] == {"missing_features": 0, "beyond_list_size": 1}
    assert stats["clicks_per_position"] == [0, 1, 0, 1]
    assert stats["impressions_per_position"] == [2, 2, 0, 1]
    assert stats["ctr_per_position"] == [0.0, 0.5, 0.0, 1.0]
    # five documents, each shown at one position only (a3's second row is beyond K)
    assert stats["position_spread"] == {"documents": 5, "at_several_positions": 0, "share": 0.0}
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["sessions"] == 2


def test_drop_zero_click_and_missing_feature_policy(tmp_path, features_path):
    rows = TINY_LOG + [(9, "1", "zz", 1, 1), (9, "1", "a1", 2, 0)]
    log = write_log(tmp_path / "log.parquet", rows)
    with pytest.raises(DataError, match=r"row 6: document \(query_id='1', doc_id='zz'\) is not in the features table"):
        run_etl(log, features_path, tmp_path / "o1", EtlConfig(list_size=4))
    stats = run_etl(log, features_path, tmp_path / "o2", EtlConfig(list_size=4, missing_features="drop", drop_zero_click_sessions=True))
    assert stats["dropped_rows"]["missing_features"] == 1
    assert stats["dropped_sessions"] == {"zero_click": 2, "not_train_split": 0}  # session 3, and session 9 once its click is dropped
    assert stats["sessions"] == 1


@pytest.mark.parametrize(
    "rows,msg",
    [
        ([(1, "1", "a1", 0, 0)], r"row 0: column 'position' is 0; positions are 1-based"),
        ([(1, "1", "a1", 1, 2)], r"row 0: column 'click' is 2; clicks must be 0 or 1"),
        ([(1, "1", "a1", 1, 0), (1, "1", "a2", 1, 1)], r"session 1 shows position 1 more than once \(rows \[0, 1\]\)"),
        ([(1, "1", "a1", 1, 0), (1, "2", "b1", 2, 1)], r"row 1: session 1 has more than one query_id"),
    ],
)
def test_bad_values(tmp_path, features_path, rows, msg):
    with pytest.raises(DataError, match=msg):
        run_etl(write_log(tmp_path / "log.parquet", rows), features_path, tmp_path / "out")
    assert not (tmp_path / "out" / "sessions").exists()  # nothing half-written


def test_csv_non_numeric_and_missing_column(tmp_path, features_path):
    csv = tmp_path / "log.csv"
    csv.write_text("session_id,query_id,doc_id,position,click\n1,1,a1,1,0\n1,1,a2,two,1\n")
    with pytest.raises(DataError, match=r"log.csv:3 \(data row 2\): column 'position' is 'two'"):
        run_etl(csv, features_path, tmp_path / "out")
    bad = tmp_path / "nocol.csv"
    bad.write_text("session_id,query_id,doc,position,click\n1,1,a1,1,0\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['doc_id'\]"):
        run_etl(bad, features_path, tmp_path / "out")
    stats = run_etl(bad, features_path, tmp_path / "out", columns={"doc_id": "doc"})
    assert stats["sessions"] == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("session_id,query_id,doc_id,position,click\n")
    with pytest.raises(DataError, match="no rows"):
        run_etl(empty, features_path, tmp_path / "out")


def test_small_parts_share_shards(tmp_path):
    """Reader parts holding disjoint session ranges are grouped, in order, into shards of at most
    max_rows // 2 rows, so a log read in many small pieces does not pay one key join per piece."""
    from ultr.data.etl import _file_session_ranges

    sizes, first = [2, 2, 2, 5, 1], 0
    for i, n in enumerate(sizes):
        pl.DataFrame({"session_id": list(range(first, first + n))}).write_parquet(tmp_path / f"part-{i:05d}.parquet")
        first += n
    assert _file_session_ranges(tmp_path, "session_id", 8) == [(0, 3), (4, 5), (6, 10), (11, 11)]
    assert _file_session_ranges(tmp_path, "session_id", 4) is None  # a part above max_rows: repartition

@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), shard_rows=st.sampled_from([3, 17, 1000]))
def test_sharding_keeps_sessions_whole_and_equal(tmp_path_factory, seed, shard_rows):
    """Property: any shard size gives the same set of session rows, each session in one shard."""
    tmp = tmp_path_factory.mktemp("shard")
    f = tmp / "features.parquet"
    ingest_letor({"train": _letor(tmp, seed)}, f)
    ft = read_features(f)
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(40):
        q = rng.integers(0, 4)
        docs = np.flatnonzero(ft.query_ids == str(q))
        shown = rng.permutation(docs)[: rng.integers(1, len(docs) + 1)]
        for pos, d in enumerate(shown, start=1):
            rows.append((int(s * 13 % 41), str(q), ft.doc_ids[d], pos, int(rng.integers(0, 2))))
    log = write_log(tmp / "log.parquet", rows)
    one = run_etl(log, f, tmp / "one", EtlConfig(list_size=5, shard_rows=10**9))
    a = pl.read_parquet(tmp / "one" / "sessions" / "*.parquet").sort("session_id")
    shown = a.select("doc_index", "position", "mask").explode("doc_index", "position", "mask").filter(pl.col("mask"))
    per_doc = shown.group_by("doc_index").agg(pl.col("position").n_unique().alias("n"))
    assert one["position_spread"]["documents"] == per_doc.height
    assert one["position_spread"]["at_several_positions"] == per_doc.filter(pl.col("n") > 1).height
    # The same log as one file, as parts holding disjoint session ranges (one shard per part, read
    # through the Parquet statistics), and as parts whose ranges overlap (repartitioned).
    by_session = pl.read_parquet(log).sort("session_id", maintain_order=True)
    disjoint, overlapping = tmp / "disjoint", tmp / "overlapping"
    disjoint.mkdir(), overlapping.mkdir()
    cut = [0, *sorted({int(x) for x in rng.integers(1, 41, size=2)}), 41]
    for i, (lo, hi) in enumerate(zip(cut, cut[1:])):
        by_session.filter(pl.col("session_id").is_between(lo, hi - 1)).write_parquet(disjoint / f"part-{i}.parquet")
    pl.read_parquet(log).head(len(rows) // 2).write_parquet(overlapping / "part-0.parquet")
    pl.read_parquet(log).tail(len(rows) - len(rows) // 2).write_parquet(overlapping / "part-1.parquet")
    for name, source in (("many", log), ("disjoint", disjoint), ("overlapping", overlapping)):
        # Parts are used as shards when none exceeds two shards' rows; size shards so they do.
        size = max(len(rows) // 2, 1) if name == "disjoint" else shard_rows
        many = run_etl(source, f, tmp / name, EtlConfig(list_size=5, shard_rows=size))
        if name == "disjoint":
            assert many["sharding"] == "parts"
        elif name == "overlapping" and shard_rows < len(rows):
            assert many["sharding"] == "repartitioned"
        shards = [pl.read_parquet(p) for p in sorted((tmp / name / "sessions").glob("*.parquet"))]
        ids = [set(s["session_id"].to_list()) for s in shards]
        assert sum(len(i) for i in ids) == len(set().union(*ids)), name  # no session in two shards
        assert pl.concat(shards).sort("session_id").equals(a), name
        assert one["clicks_per_position"] == many["clicks_per_position"], name
        assert one["position_spread"] == many["position_spread"], name
        assert many["shards"] == len(shards), name


def test_document_join_falls_back_on_hash_collisions(tmp_path, features_path, monkeypatch):
    """The (query, doc) hash join must never merge documents: with every key colliding, the
    string join takes over and the session table is unchanged."""
    import ultr.data.etl as etl

    log = write_log(tmp_path / "log.parquet", TINY_LOG)
    run_etl(log, features_path, tmp_path / "hashed", EtlConfig(list_size=5))
    monkeypatch.setattr(etl, "_PAIR_HASH", pl.lit(7, dtype=pl.UInt64))
    run_etl(log, features_path, tmp_path / "collide", EtlConfig(list_size=5))
    a = pl.read_parquet(tmp_path / "hashed" / "sessions" / "*.parquet")
    b = pl.read_parquet(tmp_path / "collide" / "sessions" / "*.parquet")
    assert a.equals(b) and a.height == 2


def _letor(tmp, seed):
    rng = np.random.default_rng(seed)
    lines = [f"{rng.integers(0, 3)} qid:{q} 1:{rng.random():.3f} 2:{rng.random():.3f}" for q in range(4) for _ in range(6)]
    (tmp / "train.txt").write_text("\n".join(lines) + "\n")
    return tmp / "train.txt"


def test_batches_fixed_shape_and_cover_epoch(tmp_path, features_path):
    log = write_log(tmp_path / "log.parquet", TINY_LOG + [(11, "3", "c1", 1, 1)])
    run_etl(log, features_path, tmp_path / "out", EtlConfig(list_size=4))
    s = read_sessions(tmp_path / "out")
    it = BatchIterator(session_arrays(s), batch_size=2, seed=0)
    seen = np.concatenate([it.next_indices() for _ in range(3)])
    assert sorted(seen[:3].tolist()) == [0, 1, 2]  # first epoch visits every session once
    b = next(it)
    assert {k: v.shape for k, v in b.items()} == {k: (2, 4) for k in ("doc_index", "position", "targets", "mask")}
    assert b["doc_index"].min() >= 0


def test_query_lists(features_path):
    ql = query_lists(read_features(features_path), "test")
    assert ql.query_id.tolist() == ["6", "7"]
    assert ql.label.tolist() == [[2, 0, 1], [0, 0, 0]]
    assert ql.mask.tolist() == [[True, True, True], [True, False, False]]


def test_data_layer_does_not_import_jax():
    code = "import sys, ultr.data.etl, ultr.data.batching, ultr.data.letor; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_cli_contract_simulate_then_etl(tmp_path, tiny_letor):
    sim, etl = tmp_path / "sim", tmp_path / "etl"
    root = tiny_letor["train"].parent
    subprocess.run(
        [sys.executable, "-m", "pipelines.simulate", f"hydra.run.dir={sim}", f"data.root={root}", "data.fold=null",
         "data.num_features=null", "simulation.sessions=2000", "simulation.list_size=3", "click_model.eta=2"],
        cwd=ROOT, check=True, capture_output=True,
    )
    assert {"clicks.parquet", "propensities.json", "features.parquet", "simulation.json"} <= {p.name for p in sim.iterdir()}
    subprocess.run(
        [sys.executable, "-m", "pipelines.etl", f"log.path={sim / 'clicks.parquet'}", f"features.path={sim / 'features.parquet'}",
         f"hydra.run.dir={etl}", "etl.list_size=3"],
        cwd=ROOT, check=True, capture_output=True,
    )
    stats = json.loads((etl / "stats.json").read_text())
    assert stats["sessions"] == 2000 and len(stats["ctr_per_position"]) == 3
    assert {"sessions", "impressions", "clicks", "clicks_per_position", "ctr_per_position", "dropped_rows"} <= stats.keys()
    bad = subprocess.run(
        [sys.executable, "-m", "pipelines.etl", f"log.path={tmp_path / 'nope.parquet'}", f"hydra.run.dir={tmp_path / 'x'}"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert bad.returncode == 2 and "nope.parquet' not found" in bad.stderr
