"""Features that come with the log (`log.features=[...]`), ID-only logs, and rankers trained and
compared without any label: the features table built from the log, an experiment on it, and
pipelines.evaluate on another log with pairs the ID ranker never saw."""

import numpy as np
import polars as pl
import pytest

from pipelines.config import default_config
from tests.conftest import EMBEDDED_MQ2008
from ultr.data.clicklog import scan_click_log
from ultr.data.letor import read_features
from ultr.data.log_features import extend_id_table, features_from_log
from ultr.errors import DataError
from ultr.evaluation.compare import unseen_last
from ultr.evaluation.run import evaluate
from ultr.experiment import run_experiment
from ultr.workflows import simulate


def write_log(path, rows):
    pl.DataFrame(rows, schema=["session_id", "query_id", "doc_id", "position", "click", "bm25", "emb"], orient="row").write_parquet(path)
    return path


LOG = [  # (q1, a) appears three times, once with another bm25: one conflicting pair, the first kept
    (1, "q1", "a", 1, 1, 3.0, [1.0, 2.0]), (1, "q1", "b", 2, 0, 1.0, [0.0, 1.0]),
    (2, "q1", "b", 1, 0, 1.0, [0.0, 1.0]), (2, "q1", "a", 2, 1, 3.0, [1.0, 2.0]),
    (3, "q2", "c", 1, 0, 0.5, [4.0, 4.0]), (3, "q1", "a", 2, 1, 9.0, [1.0, 2.0]),
]


def test_the_table_holds_each_pair_once_with_its_first_features_and_counts_conflicts(tmp_path):
    lf = scan_click_log(write_log(tmp_path / "log.parquet", LOG))
    stats = features_from_log(lf, ["bm25", "emb"], tmp_path / "f.parquet", source="log", normalization="none", log1p=False)
    t = read_features(tmp_path / "f.parquet")
    assert stats["pairs"] == 3 and stats["conflicting_pairs"] == 1 and stats["num_features"] == 3
    assert list(zip(t.query_ids, t.doc_ids)) == [("q1", "a"), ("q1", "b"), ("q2", "c")]
    np.testing.assert_array_equal(t.features, [[3, 1, 2], [1, 0, 1], [0.5, 4, 4]])
    assert (t.labels == -1).all() and set(t.splits) == {"train"}
    with pytest.raises(DataError, match=r"query_id='q1', doc_id='a'.*1 pairs do"):
        features_from_log(lf, ["bm25"], tmp_path / "g.parquet", source="log", on_conflict="error")


def test_zscore_with_log1p_is_over_the_pairs(tmp_path):
    lf = scan_click_log(write_log(tmp_path / "log.parquet", LOG))
    features_from_log(lf, ["bm25"], tmp_path / "f.parquet", source="log", normalization="zscore", log1p=True)
    x = np.log1p(np.array([3.0, 1.0, 0.5]))
    np.testing.assert_allclose(read_features(tmp_path / "f.parquet").features[:, 0], (x - x.mean()) / x.std(), rtol=1e-5)


def test_bad_feature_values_name_their_row_and_column(tmp_path):
    bad = [list(r) for r in LOG]
    bad[4][5] = None
    lf = scan_click_log(write_log(tmp_path / "log.parquet", [tuple(r) for r in bad]))
    with pytest.raises(DataError, match=r"row 5: log.features column 'bm25' is missing"):
        features_from_log(lf, ["bm25", "emb"], tmp_path / "f.parquet", source="log")
    with pytest.raises(DataError, match=r"names column\(s\) \['title'\]"):
        features_from_log(lf, ["title"], tmp_path / "f.parquet", source="log")
    ragged = [list(r) for r in LOG]
    ragged[4][6] = [1.0]
    lf = scan_click_log(write_log(tmp_path / "r.parquet", [tuple(r) for r in ragged]))
    with pytest.raises(DataError, match="has 1 features, others 2"):
        features_from_log(lf, ["emb"], tmp_path / "f.parquet", source="log")


def test_an_id_table_has_no_features_and_extends_without_moving_its_rows(tmp_path):
    lf = scan_click_log(write_log(tmp_path / "log.parquet", LOG))
    features_from_log(lf, [], tmp_path / "ids.parquet", source="log")
    t = read_features(tmp_path / "ids.parquet")
    assert t.features.shape == (3, 0)
    other = [(9, "q2", "c", 1, 1, 0.0, [0.0, 0.0]), (9, "q2", "z", 2, 0, 0.0, [0.0, 0.0]), (9, "q3", "y", 3, 0, 0.0, [0.0, 0.0])]
    before, added = extend_id_table(tmp_path / "ids.parquet", scan_click_log(write_log(tmp_path / "o.parquet", other)), tmp_path / "x.parquet")
    x = read_features(tmp_path / "x.parquet")
    assert (before, added) == (3, 2) and x.features.shape == (5, 0)
    assert list(zip(x.query_ids, x.doc_ids, x.splits)) == [("q1", "a", "train"), ("q1", "b", "train"), ("q2", "c", "train"),
                                                          ("q2", "z", "test"), ("q3", "y", "test")]


def test_unseen_candidates_rank_after_every_scored_one():
    scores = np.array([[0.5, -2.0, 3.0, 7.0], [1.0, 2.0, 0.0, 0.0]])
    out = unseen_last(scores, np.array([False, False, False, True]))
    np.testing.assert_array_equal(out, [[0.5, -2.0, 3.0, -3.0], [1.0, 2.0, 0.0, -1.0]])


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """A training log and a held-out log (another stream) simulated on the embedded MQ2008 fold."""
    if not EMBEDDED_MQ2008.exists():
        pytest.skip("embedded MQ2008 Fold1 missing from data/")
    root = tmp_path_factory.mktemp("logs")
    simulate(default_config(["simulation.sessions=6000"], "simulate"), root / "train")
    simulate(default_config(["simulation.sessions=3000", "simulation.stream=3"], "simulate"), root / "heldout")
    return root


RUN = ["trainer=debug", "trainer.progress=false", "trainer.tensorboard=false"]


def test_an_id_only_log_trains_stops_selects_and_is_evaluated_without_labels(logs, tmp_path):
    cfg = default_config([*RUN, f"clicks={logs / 'train' / 'clicks.parquet'}", "log.features=[]", "algorithm.methods=[dla,naive]"])
    results = run_experiment(cfg, tmp_path / "run")
    for m in ("dla", "naive", "selected"):
        r = results["methods"][m]
        assert r["test"] is None and np.isfinite(r["vali"]["clicks_ips_dcg@10"])
    selection = results["methods"]["selected"]["selection"]
    assert selection["metric"] == "clicks_ips_dcg@10"
    # An ID ranker cannot score a query it never trained on: validation holds out sessions, so
    # nearly every query (422 of the fold's 471) has held-out sessions; by query it would be ~1 in 5.
    assert selection["validation_queries"] > 300
    assert read_features(tmp_path / "run" / "features.parquet").num_features == 0
    # Another stream under the same policy shows the same pairs; rename the last result of each
    # list so that some pairs are new to the ID rankers.
    held = pl.read_parquet(logs / "heldout" / "clicks.parquet")
    held.with_columns(pl.when(pl.col("position") == 10).then(pl.lit("new-") + pl.col("doc_id").cast(pl.String))
                      .otherwise(pl.col("doc_id").cast(pl.String)).alias("doc_id")).write_parquet(tmp_path / "heldout.parquet")
    ev = default_config([f"rankers=[{tmp_path / 'run'}:dla,{tmp_path / 'run'}:naive]", f"log.path={tmp_path / 'heldout.parquet'}",
                         f"propensity.source={logs / 'heldout'}", "bootstrap.replicates=100"], "evaluate")
    out = evaluate(ev, tmp_path / "eval")
    assert out["log"]["candidates_unseen_in_training"] > 0 and any("never in the ID rankers' training log" in n for n in out["notes"])
    est = out["estimates"]["ips"]["dcg@10"]
    assert est["dla"]["estimate"] != est["naive"]["estimate"] and all(np.isfinite(v["estimate"]) for v in est.values())


def test_a_log_with_feature_columns_trains_a_feature_ranker(logs, tmp_path):
    """Baidu-ULTR's shape: per-impression feature columns (scalars and an embedding list) beside the clicks."""
    clicks = pl.read_parquet(logs / "train" / "clicks.parquet")
    t = read_features(logs / "train" / "features.parquet")
    table = pl.DataFrame({"query_id": t.query_ids.astype(str), "doc_id": t.doc_ids.astype(str), "bm25": t.features[:, 0],
                          "tf": t.features[:, 1], "emb": t.features[:, 2:].tolist()})
    log = clicks.join(table, on=["query_id", "doc_id"], how="left", maintain_order="left")
    log.write_parquet(tmp_path / "with_features.parquet")
    cfg = default_config([*RUN, f"clicks={tmp_path / 'with_features.parquet'}", "log.features=[bm25,tf,emb]", "algorithm.methods=[naive]"])
    results = run_experiment(cfg, tmp_path / "run")
    assert read_features(tmp_path / "run" / "features.parquet").num_features == t.num_features
    assert np.isfinite(results["methods"]["naive"]["vali"]["clicks_ips_dcg@10"])
