"""A ranker you can ship and evaluate without labels: `ultr.api.load` of a run's checkpoint, and
`pipelines.evaluate` on a held-out simulated log (end to end, small)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines.config import default_config
from tests.conftest import EMBEDDED_MQ2008, ROOT
from ultr.api import load
from ultr.errors import DataError
from ultr.evaluation.propensities import read_propensities
from ultr.evaluation.run import evaluate
from ultr.experiment import run_experiment
from ultr.workflows import simulate

pytestmark = pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small run of dla and naive, and a held-out log on the test queries under its logging policy."""
    root = tmp_path_factory.mktemp("cf")
    over = ["trainer=debug", "model.hidden=[16]", "simulation.sessions=20000", "algorithm.methods=[dla,naive]",
            "trainer.progress=false", "trainer.tensorboard=false"]
    results = run_experiment(default_config(over), root / "run")
    held = default_config(["simulation.sessions=4000", "simulation.session_split=test", "simulation.stream=3"], "simulate")
    simulate(held, root / "heldout")
    return root, results


def eval_cfg(root, **over):
    cfg = default_config([f"rankers=[{root / 'run'}:dla,{root / 'run'}:naive]", f"log.path={root / 'heldout' / 'clicks.parquet'}",
                          f"propensity.source={root / 'heldout'}", "bootstrap.replicates=200"], "evaluate")
    cfg.update(over)
    return cfg


def test_load_gives_the_runs_ranker(trained):
    root, results = trained
    for m in ("dla", "naive"):
        r = load(root / "run", m)
        assert r.evaluate(r.features_path, "test")["ndcg@10"] == pytest.approx(results["methods"][m]["test"]["ndcg@10"], abs=1e-6)
    assert load(f"{root / 'run'}:naive").name == "naive" and load(root / "run" / "checkpoints" / "dla").name == "dla"
    with pytest.raises(DataError, match="name one as"):
        load(root / "run")
    with pytest.raises(DataError, match="no checkpoint of 'oracle'"):
        load(root / "run", "oracle")


def test_held_out_log_is_on_test_queries_under_the_training_policy(trained):
    root, _ = trained
    sim = json.loads((root / "heldout" / "simulation.json").read_text())
    assert sim["config"]["simulation"]["session_split"] == "test"
    import polars as pl

    from ultr.data.letor import read_features

    f = read_features(root / "heldout" / "features.parquet")
    test_queries = set(f.query_ids[f.rows("test")].tolist())
    assert set(pl.read_parquet(root / "heldout" / "clicks.parquet")["query_id"].unique().to_list()) <= test_queries


def test_evaluate_end_to_end(trained, tmp_path):
    root, _ = trained
    out = evaluate(eval_cfg(root), tmp_path)
    assert out["rankers"] == ["dla", "naive"] and "simulator truth" in out["propensity"]["source"]
    assert out["log"]["sessions"] == 4000 and out["log"]["never_shown_candidates"] == 0
    for e in ("ips", "snips", "dr"):
        for m in ("dcg@10", "ndcg@10", "clicks"):
            for r in ("dla", "naive"):
                v = out["estimates"][e][m][r]
                assert v["low"] <= v["estimate"] <= v["high"]
            d = out["paired"][e][m]["naive - dla"]
            assert d["low"] <= d["difference"] <= d["high"] and 0 <= d["p_not_better"] <= 1
    # One ranking per query: the three estimators coincide, and the report says why.
    for r in ("dla", "naive"):
        assert out["estimates"]["ips"]["dcg@10"][r]["estimate"] == pytest.approx(out["estimates"]["snips"]["dcg@10"][r]["estimate"])
    assert len(out["notes"]) == 2
    for f in ("evaluation.json", "evaluation.md", "evaluation.png", "stats.json"):
        assert (tmp_path / f).exists(), f


def test_the_api_evaluates_one_ranker_on_a_click_log_as_the_pipeline_does(trained, tmp_path):
    root, _ = trained
    piped = evaluate(eval_cfg(root), tmp_path / "pipeline")
    ranker = load(root / "run", "dla")
    out = ranker.evaluate(log=root / "heldout" / "clicks.parquet", propensity=root / "heldout",
                          overrides=["bootstrap.replicates=200"], out_dir=tmp_path / "api")
    assert out["rankers"] == ["dla"] and (tmp_path / "api" / "evaluation.json").exists()
    for m in ("dcg@10", "clicks"):
        assert out["estimates"]["snips"][m]["dla"]["estimate"] == pytest.approx(piped["estimates"]["snips"][m]["dla"]["estimate"])
    with pytest.raises(DataError, match="needs propensity"):
        ranker.evaluate(log=root / "heldout" / "clicks.parquet")


def test_candidates_never_shown_separate_dr_from_ips(trained, tmp_path):
    root, _ = trained
    out = evaluate(eval_cfg(root, candidates="table", estimators=["ips", "dr"]), tmp_path)
    assert out["log"]["never_shown_candidates"] > 0
    assert out["estimates"]["ips"]["ndcg@10"]["dla"]["estimate"] != out["estimates"]["dr"]["ndcg@10"]["dla"]["estimate"]


def test_propensity_sources(trained, tmp_path):
    root, _ = trained
    truth = read_propensities(root / "heldout")
    assert "simulator truth" in truth.source and truth.alpha[0] < 1  # absolute examination
    dla = read_propensities(root / "run" / "propensity.json", "dla")
    assert dla.alpha[0] == 1.0 and "dla" in dla.source
    with pytest.raises(DataError, match="propensity.key"):
        read_propensities(root / "run" / "propensity.json")
    (tmp_path / "bias").mkdir()
    (tmp_path / "bias" / "propensities.json").write_text(json.dumps({"estimators": {"pbm_em": [1, 0.5], "dla": [1, None]}}))
    assert read_propensities(tmp_path / "bias", "pbm_em").alpha.tolist() == [1, 0.5]
    with pytest.raises(DataError, match="complete curves"):
        read_propensities(tmp_path / "bias", "dla")


def test_evaluate_command_line_errors_are_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pipelines.evaluate", f"hydra.run.dir={tmp_path}", "propensity.source=nowhere"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "rankers=[RUN_DIR:method" in r.stderr.strip().splitlines()[-1]


LOADER_CHECK = """
import sys, numpy as np
from jax import export
score = export.deserialize(open(sys.argv[1], "rb").read())
x = np.load(sys.argv[2])
np.save(sys.argv[3], np.asarray(score.call(x.astype("float32"))))
assert "ultr" not in sys.modules
"""


def test_exported_ranker_reproduces_the_training_codes_scores_without_ultr(trained, tmp_path):
    from ultr.data.letor import read_features
    from ultr.export import export_run

    root, _ = trained
    info = export_run({"ranker": f"{root / 'run'}:dla"}, tmp_path)
    assert info["num_features"] == 46 and "cpu" in info["platforms"]
    ranker = load(root / "run", "dla")
    table = read_features(ranker.features_path)
    x = table.features[table.rows("test")]  # normalisation none: the table holds the raw values
    np.save(tmp_path / "x.npy", x)
    script = tmp_path / "loader.py"
    script.write_text(LOADER_CHECK)
    subprocess.run([sys.executable, str(script), str(tmp_path / "ranker.jaxexport"), str(tmp_path / "x.npy"),
                    str(tmp_path / "s.npy")], check=True, cwd=tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), ranker.predict(x), atol=1e-6)


def test_exported_normalisation_matches_the_ingest():
    import jax.numpy as jnp

    from ultr.data.letor import Normalization
    from ultr.export import normalise

    rng = np.random.default_rng(0)
    spread = np.array([1, 10, 100, -1, 0.1], np.float32)  # one feature negative: log1p keeps its sign
    train = rng.lognormal(size=(500, 5)).astype(np.float32) * spread
    x = rng.lognormal(size=(50, 5)).astype(np.float32) * spread
    for method in ("none", "minmax", "zscore"):
        for log1p in (False, True):
            norm = Normalization.fit(train, method, log1p)
            np.testing.assert_allclose(np.asarray(normalise(jnp.asarray(x), norm.__dict__)), norm.apply(x), rtol=1e-5, atol=1e-6)
