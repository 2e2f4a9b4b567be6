"""Validation without labels: sessions held out of the training log by query, scored by a
counterfactual estimate; early stopping and the selection read it (`validation.source=clicks`)."""

from pathlib import Path

import numpy as np
import pytest

from pipelines.config import default_config
from tests.conftest import EMBEDDED_MQ2008
from ultr.data.batching import Sessions
from ultr.experiment import choose_validation, run_experiment
from ultr.train.validation import ClickValidation, LabelValidation, validation_sessions


def sessions(n=400, queries=40, k=5, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.integers(0, queries, n)
    doc = (q[:, None] * k + np.arange(k)[None, :]).astype(np.int32)
    pos = np.broadcast_to(np.arange(1, k + 1, dtype=np.int16), doc.shape).copy()
    click = (rng.random(doc.shape) < 0.5 / pos).astype(np.int8)
    return Sessions(np.arange(n, dtype=np.int64), q.astype(str).astype(object), doc, pos, click, np.ones(doc.shape, bool))


def test_held_out_queries_are_never_trained_on():
    s = sessions()
    train, held = validation_sessions(s, 0.25, "query", seed=0)
    assert len(train) + len(held) == len(s)
    assert not set(train.query_id) & set(held.query_id)
    assert 0.1 < len(set(held.query_id)) / 40 < 0.45
    again, _ = validation_sessions(s, 0.25, "query", seed=0)
    assert (again.session_id == train.session_id).all()  # seeded
    by_session, held_s = validation_sessions(s, 0.25, "session", seed=0)
    assert set(by_session.query_id) & set(held_s.query_id)


class FirstFeature:
    """Steps stand-in whose ranker scores a document by its first feature."""

    @staticmethod
    def score(params, idx, features):
        return features[idx][..., 0] * params


def test_click_validation_prefers_the_ranker_that_puts_clicked_documents_first():
    """Clicks fall off with position in the logged order; a ranker keeping that order scores higher
    than one reversing it (and the labels' nDCG would say the same)."""
    from ultr.train.validation import click_validation

    s = sessions(n=2000)
    rows = int(s.doc_index.max()) + 1
    order = np.tile(-np.arange(5, dtype=np.float32), rows // 5)[:, None]  # the logged order as a feature
    v = click_validation(s, np.ones(5), {"estimator": "ips", "metric": "dcg@3"}, "test")
    keep, valid = v.per_query(FirstFeature, 1.0, order)
    reverse, _ = v.per_query(FirstFeature, -1.0, order)
    assert valid.all() and keep.mean() > reverse.mean() + 0.1
    assert v.metric == "clicks_ips_dcg@3"


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
def test_auto_validates_on_clicks_where_the_vali_split_has_no_labels():

    cfg = default_config(["validation.propensity=pbm_em"])
    s = sessions(n=600)
    from ultr.data.letor import FeatureTable

    labels = np.zeros(300, np.int8)
    splits = np.array(["train"] * 200 + ["vali"] * 50 + ["test"] * 50, dtype=object)
    t = FeatureTable(np.zeros(300, object), np.zeros(300, object), labels, np.zeros((300, 2), np.float32), splits, {}, "t")
    vali, v, train = choose_validation(cfg, t, s, {})
    assert vali is None and isinstance(v, ClickValidation) and len(train) < len(s)
    labels[220] = 2
    _, v, train = choose_validation(cfg, t, s, {})
    assert isinstance(v, LabelValidation) and len(train) == len(s)


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
def test_experiment_stops_and_selects_on_held_out_clicks_then_refits_on_all_sessions(tmp_path):
    cfg = default_config(["trainer=debug", "model.hidden=[16]", "simulation.sessions=20000", "validation.source=clicks",
                          "validation.refit=true", "algorithm.methods=[dla,naive]", "trainer.progress=false",
                          "trainer.tensorboard=false"])
    out = run_experiment(cfg, tmp_path)
    key = "clicks_ips_dcg@10"
    for m in ("dla", "naive"):
        assert set(out["methods"][m]["vali"]) == {key}
    sel = out["methods"]["selected"]["selection"]
    assert sel["metric"] == key and f"vali_{key}" in sel["runs"][0]
    import json

    hist = json.loads((tmp_path / "methods" / "dla.json").read_text())["history"]
    assert any(f"vali_{key}" in h for h in hist) and not any("vali_ndcg@10" in h for h in hist)
    # Early stopping followed the click score: it varied, and the kept state is at its first maximum.
    evals = [(h["step"], h[f"vali_{key}"]) for h in hist if f"vali_{key}" in h]
    assert len({v for _, v in evals}) > 1
    assert out["methods"]["dla"]["best_step"] == max(evals, key=lambda e: e[1])[0]
    # The refit trains the kept number of steps on every training session; the test numbers and the
    # checkpoint are the refit's, while the selection read the first pass on held-out sessions.
    from ultr.api import load

    dla = out["methods"]["dla"]
    assert dla["refit"]["steps"] == dla["best_step"] > 0
    assert dla["refit"]["sessions"] == json.loads((tmp_path / "stats.json").read_text())["sessions"]
    again = load(tmp_path, "dla").evaluate(Path(out["data_dir"]) / "features.parquet")["ndcg@10"]
    assert again == pytest.approx(dla["test"]["ndcg@10"], abs=1e-6)


@pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")
def test_rem_validation_in_one_run_is_the_two_step_recipe(tmp_path, capsys):
    """`validation.propensity=rem` trains REM first (stopped on PBM-EM's curve) and scores the
    held-out clicks with REM's learned curve: the same as a REM run followed by a run validated with
    that run's curve as a file."""
    import json

    base = ["trainer=debug", "model.hidden=[16]", "simulation.sessions=20000", "validation.source=clicks",
            "selection.reference=null", "fallback.methods=[]", "evaluation.click_sessions=0", "trainer.progress=false",
            "trainer.tensorboard=false", "trainer.checkpoint=false"]
    one = run_experiment(default_config([*base, "algorithm.methods=[dla]", "validation.propensity=rem"]), tmp_path / "one")
    rem = run_experiment(default_config([*base, "algorithm.methods=[rem]"]), tmp_path / "rem")
    two = run_experiment(default_config([*base, "algorithm.methods=[dla]", f"validation.propensity={tmp_path / 'rem'}",
                                         "validation.propensity_key=rem"]), tmp_path / "two")
    run = one["validation"]["propensity_run"]
    assert run["propensity"]["estimated"] == pytest.approx(rem["methods"]["rem"]["propensity"]["estimated"])
    assert run["best_step"] == rem["methods"]["rem"]["best_step"]
    a, b = one["methods"]["dla"], two["methods"]["dla"]
    assert a["vali"] == pytest.approx(b["vali"], rel=1e-6) and a["best_step"] == b["best_step"]
    assert a["test"]["ndcg@10"] == pytest.approx(b["test"]["ndcg@10"], abs=1e-6)
    assert "REM" in one["validation"]["source"] and "PBM-EM" in run["source"]
    assert json.loads((tmp_path / "one" / "validation_propensity.json").read_text()) == run
    # A resumed run reads REM's saved curve instead of training REM again.
    capsys.readouterr()
    again = run_experiment(default_config([*base, "algorithm.methods=[dla]", "validation.propensity=rem", "trainer.resume=true"]),
                           tmp_path / "one")
    assert again["validation"] == one["validation"] and again["methods"]["dla"]["vali"] == a["vali"]
    assert "validation.propensity=rem had finished" in capsys.readouterr().err
