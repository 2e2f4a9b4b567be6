"""Click models fitted to logs: hand-worked likelihoods per model, the sampler against the closed
forms, fitting against known parameters and against closed-form EM, the pipeline end to end,
the bridge to learning (ips_fitted, click_model=fitted), and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl
import pytest

import ultr.click_models.models as cm
from ultr.click_models.data import ArrayLog
from ultr.click_models.evaluate import evaluate
from ultr.click_models.fit import FitSettings, fit, init_params
from ultr.click_models.module import module
from ultr.click_models.sample import sample_clicks
from ultr.errors import DataError
from tests.conftest import SHARED


def logit(p):
    p = np.asarray(p, np.float64)
    return jnp.asarray(np.log(p / (1 - p)), jnp.float32)


def with_params(name: str, rows: int, K: int, **values):
    """A model and its parameters set to the given probabilities (pair tables: baseline 0)."""
    model = module(cm.get(name), rows, K)
    params = init_params(model, 1, 0)
    for key, v in values.items():
        if key in model.model.pair_tables:
            params["params"][key]["offsets"] = logit(v)
            params["params"][key]["baseline"] = jnp.zeros((), jnp.float32)
        else:
            params["params"][key] = logit(v)
    return model, params


ROWS = jnp.array([[0, 1, 2]])
CLICKS = jnp.array([[1.0, 0.0, 1.0]])
MASK = jnp.ones((1, 3), bool)
ATTR = [0.5, 0.4, 0.2]

# (model, parameters, P(C_k = 1 | clicks above) for clicks [1, 0, 1], marginal P(C_k = 1)), worked by hand
GOLDEN = {
    "pbm": ({"examination": [0.9, 0.6, 0.3]}, [0.45, 0.24, 0.06], [0.45, 0.24, 0.06]),
    # every rank below the first click is IMPOSSIBLE; marginal a_k prod (1 - a_j)
    "cascade": ({}, [0.5, 1e-8, 1e-8], [0.5, 0.2, 0.06]),
    # after the click at 1: lambda_1 = 0.7; after the skip at 2: 0.7 * 0.6 / (1 - 0.28) = 0.58333
    # marginal: e2 = 1 - 0.5 + 0.35 = 0.85, e3 = 0.85 (1 - 0.4 + 0.2) = 0.68
    "dcm": ({"continuation": [0.7, 0.5, 0.5]}, [0.5, 0.28, 0.2 * 0.42 / 0.72], [0.5, 0.34, 0.136]),
    # gamma = 0.9, s = (0.6, 0.3, 0.5): e2 = 0.9 * 0.4 = 0.36, e3 = 0.9 * 0.36 * 0.6 / (1 - 0.144)
    # marginal: e2 = 0.9 (1 - 0.3) = 0.63, e3 = 0.63 * 0.9 (1 - 0.12) = 0.49896
    "dbn": ({"satisfaction": [0.6, 0.3, 0.5], "continuation": 0.9}, [0.5, 0.144, 0.2 * 0.9 * 0.216 / 0.856],
            [0.5, 0.252, 0.2 * 0.49896]),
    # gamma = 1: e2 = 0.4, e3 = 0.4 * 0.6 / (1 - 0.16); marginal e2 = 0.7, e3 = 0.7 * 0.88
    "sdbn": ({"satisfaction": [0.6, 0.3, 0.5]}, [0.5, 0.16, 0.2 * 0.24 / 0.84], [0.5, 0.28, 0.2 * 0.616]),
    # tau = (0.8, 0.6, 0.3): after click 0.6 * 0.5 + 0.3 * 0.5 = 0.45; after skip 0.8 * 0.45 * 0.6 / 0.82
    # marginal: e2 = 0.5 * 0.8 + 0.5 * 0.45 = 0.625; e3 = 0.625 (0.6 * 0.8 + 0.4 (0.36 + 0.12)) = 0.42
    "ccm": ({"tau": [0.8, 0.6, 0.3]}, [0.5, 0.18, 0.2 * 0.216 / 0.82], [0.5, 0.25, 0.084]),
    # gamma[k-1][d-1]; clicks [1, 0, 1] use gamma_11 = 0.9, gamma_21 = 0.7 (d = 1), gamma_32 = 0.5 (d = 2)
    # marginal rank 2: P(click at 1) = 0.45 -> gamma_21 = 0.7, else (0.55) d = 2 -> 0.6: exam 0.645
    # rank 3: last click at 2 (0.645 * 0.4 = 0.258): gamma_31 = 0.8; at 1, not 2 (0.45 (1 - 0.28) = 0.324):
    # gamma_32 = 0.5; none (0.55 (1 - 0.24) = 0.418): gamma_33 = 0.3 -> 0.2064 + 0.162 + 0.1254 = 0.4938
    "ubm": ({"examination": [[0.9, 0.5, 0.5], [0.7, 0.6, 0.5], [0.8, 0.5, 0.3]]}, [0.45, 0.28, 0.1], [0.45, 0.258, 0.2 * 0.4938]),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_hand_worked_click_probabilities(name):
    values, conditional, marginal = GOLDEN[name]
    model, params = with_params(name, 3, 3, attraction=ATTR, **values)
    got_c = model.apply(params, ROWS, CLICKS, MASK)
    got_m, _ = model.apply(params, ROWS, MASK, method="marginal")
    np.testing.assert_allclose(np.asarray(got_c)[0], conditional, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(got_m)[0], marginal, rtol=1e-5)


def test_every_model_is_registered_and_unknown_names_are_one_line():
    assert cm.names(fittable=True) == ["cascade", "ccm", "dbn", "dcm", "pbm", "sdbn", "ubm"]
    assert cm.names() == ["cascade", "ccm", "dbn", "dcm", "matrix", "mixture", "pbm", "sdbn", "trust", "ubm"]
    with pytest.raises(DataError, match="known models: cascade, ccm, dbn, dcm, matrix, mixture, pbm, sdbn, trust, ubm"):
        cm.get("ucm")


def test_perplexity_and_log_likelihood_golden():
    """Every slot predicted at 0.25 (PBM, attraction and examination 0.5); clicks [[1, 0], [0, 0]].
    Rank 1: 2 ** -((log2 .25 + log2 .75) / 2) = 2.3094; rank 2: 1 / .75 = 1.3333."""
    model, params = with_params("pbm", 4, 2, attraction=[0.5] * 4, examination=[0.5, 0.5])
    log = ArrayLog(np.array([[0, 1], [2, 3]], np.int32), np.array([[1, 0], [0, 0]], np.int8), np.ones((2, 2), bool))
    m = evaluate(model, params, log, batch_size=4)
    np.testing.assert_allclose(m["perplexity_at"], [2.0 ** 1.2075187, 4 / 3], rtol=1e-5)
    assert m["perplexity"] == pytest.approx((2.0 ** 1.2075187 + 4 / 3) / 2, rel=1e-5)
    assert m["log_likelihood"] == pytest.approx((math.log(0.25) + 3 * math.log(0.75)) / 4, rel=1e-5)
    assert m["session_log_likelihood"] == pytest.approx((math.log(0.25) + 3 * math.log(0.75)) / 2, rel=1e-5)
    assert m["ctr_observed_at"] == [0.5, 0.0] and m["ctr_predicted_at"] == pytest.approx([0.25, 0.25])
    assert m["calibration_error"] == pytest.approx(0.25)


def random_lists(n: int, pairs: int, K: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = np.argsort(rng.random((n, pairs)), axis=1)[:, :K].astype(np.int32)
    return rows, np.ones(rows.shape, bool)


@pytest.mark.parametrize("name", cm.names(fittable=True))
def test_sampled_clicks_match_the_marginal_closed_form(name):
    """The sampler draws from `conditional` rank by rank; its click rates must match `marginal`,
    derived separately, within 4 standard errors at every rank."""
    rows, mask = random_lists(40_000, 6, 4, seed=1)
    model = module(cm.get(name), 6, 4)
    rng = np.random.default_rng(2)
    params = jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 1, np.shape(x)), jnp.float32), init_params(model, 1, 0))
    clicks = sample_clicks(model, params, rows, mask, seed=3)
    expected = np.asarray(model.apply(params, jnp.asarray(rows), jnp.asarray(mask), method="marginal")[0]).mean(0)
    se = np.sqrt(expected * (1 - expected) / len(rows))
    assert np.all(np.abs(clicks.mean(0) - expected) < 4 * se + 1e-9), (clicks.mean(0), expected)


def test_sampling_is_deterministic():
    model, params = with_params("dbn", 3, 3, attraction=ATTR, satisfaction=[0.6, 0.3, 0.5], continuation=0.9)
    rows, mask = random_lists(1000, 3, 3, seed=0)
    assert np.array_equal(sample_clicks(model, params, rows, mask, 5), sample_clicks(model, params, rows, mask, 5))


def simulated(name: str, n: int, seed: int, **values):
    pairs = len(values["attraction"])
    model, params = with_params(name, pairs, 4, **values)
    rows, mask = random_lists(n, pairs, 4, seed)
    return model, params, ArrayLog(rows, sample_clicks(model, params, rows, mask, seed), mask)


def test_gradient_fit_reaches_the_generating_models_perplexity():
    attraction = np.linspace(0.1, 0.9, 12)
    model, true, log = simulated("dbn", 30_000, 0, attraction=attraction, satisfaction=np.linspace(0.8, 0.2, 12), continuation=0.85)
    test = simulated("dbn", 10_000, 1, attraction=attraction, satisfaction=np.linspace(0.8, 0.2, 12), continuation=0.85)[2]
    fitted = fit(model, log.subset(np.arange(27_000)), log.subset(np.arange(27_000, 30_000)), FitSettings(batch_size=2048), "dbn")
    floor, got = evaluate(model, true, test)["perplexity"], evaluate(model, fitted.params, test)["perplexity"]
    assert got / floor - 1 < 0.003
    assert float(jax.nn.sigmoid(fitted.params["params"]["continuation"])) == pytest.approx(0.85, abs=0.03)


def test_gradient_fit_and_closed_form_em_agree_on_pbm():
    from ultr.click_models.em import fit_em
    attraction = np.linspace(0.1, 0.9, 10)
    model, _, log = simulated("pbm", 20_000, 3, attraction=attraction, examination=[0.9, 0.6, 0.4, 0.2])
    em = fit_em(model, log, FitSettings(), "pbm")
    gd = fit(model, log, log, FitSettings(batch_size=4096, learning_rate=0.05, patience=5), "pbm")
    ll_em, ll_gd = evaluate(model, em.params, log)["log_likelihood"], evaluate(model, gd.params, log)["log_likelihood"]
    assert abs(ll_em - ll_gd) < 2e-4
    exam = np.asarray(jax.nn.sigmoid(em.params["params"]["examination"]))
    np.testing.assert_allclose(exam / exam[0], np.array([0.9, 0.6, 0.4, 0.2]) / 0.9, rtol=0.06)


def test_non_finite_loss_stops_the_fit_with_model_step_and_fix():
    model, _, log = simulated("pbm", 2_000, 0, attraction=np.linspace(0.1, 0.9, 10), examination=[0.9, 0.6, 0.4, 0.2])
    with pytest.raises(FloatingPointError, match=r"click model pbm: the loss became non-finite at step 1 .*fit.learning_rate.*fit.clip_norm"):
        fit(model, log, None, FitSettings(batch_size=512, learning_rate=float("nan")), "pbm")


def write_generic_log(path: Path, log: ArrayLog, first_session: int = 0, unseen: int = 0) -> Path:
    """A generic CSV click log of the sessions (query q<row // 100>, document d<row>); `unseen`
    extra sessions show pairs of a query the training log never had."""
    n, K = log.rows.shape
    sid = np.repeat(np.arange(n) + first_session, K)
    doc = log.rows.ravel()
    frame = pl.DataFrame({"session_id": sid, "query_id": ["q0"] * len(sid), "doc_id": [f"d{d}" for d in doc],
                          "position": np.tile(np.arange(1, K + 1), n), "click": log.click.ravel().astype(np.int64)})
    if unseen:
        extra = pl.DataFrame({"session_id": np.repeat(np.arange(unseen) + first_session + n, K),
                              "query_id": ["q_new"] * (unseen * K), "doc_id": [f"d{k}" for _ in range(unseen) for k in range(K)],
                              "position": np.tile(np.arange(1, K + 1), unseen), "click": np.zeros(unseen * K, np.int64)})
        frame = pl.concat([frame, extra])
    frame.write_csv(path)
    return path


@pytest.fixture(scope="module")
def fitted_run(tmp_path_factory):
    """pipelines.click_models on a generic log simulated from a known UBM (4 results per page)."""
    from ultr.click_models.pipeline import click_models
    from ultr.config import compose
    tmp = tmp_path_factory.mktemp("click_models")
    gamma = [[0.95, 0.5, 0.5, 0.5], [0.8, 0.6, 0.5, 0.5], [0.7, 0.5, 0.4, 0.5], [0.6, 0.4, 0.3, 0.2]]
    values = {"attraction": np.linspace(0.1, 0.8, 8), "examination": gamma}
    _, _, train = simulated("ubm", 6_000, 0, **values)
    _, _, test = simulated("ubm", 2_000, 1, **values)
    cfg = compose("click_models", [f"log.path={write_generic_log(tmp / 'train.csv', train)}",
                                   f"test.path={write_generic_log(tmp / 'test.csv', test, 10_000, unseen=50)}",
                                   "etl.list_size=4", "models=[pbm,ubm,dbn]", "fit.batch_size=1024", "fit.epochs=20"])
    return tmp / "run", click_models(cfg, tmp / "run")


def test_pipeline_writes_scores_models_and_curves(fitted_run):
    run, out = fitted_run
    written = json.loads((run / "click_models.json").read_text())
    assert set(written["models"]) == {"pbm", "ubm", "dbn"}
    for r in written["models"].values():
        assert len(r["perplexity_at"]) == 4 and 1.0 < r["perplexity"] < 2.0
        assert r["unseen_impressions"] == 200  # 50 sessions of an unseen query, counted, not an error
        assert r["parameters"] > 8 and r["sessions_per_second"] > 0
    assert written["data"]["test"]["unseen_pairs"] == 4
    # UBM generated the log: it explains held-out clicks better than PBM
    assert written["models"]["ubm"]["log_likelihood"] > written["models"]["pbm"]["log_likelihood"]
    assert (run / "perplexity_at.png").stat().st_size > 0
    curve = json.loads((run / "ubm" / "propensities.json").read_text())
    assert curve["relative"][0] == 1.0 and len(curve["relative"]) == 4


def test_saved_model_restores_to_the_same_scores(fitted_run):
    from ultr.click_models.data import SessionLog, rows_in
    from ultr.click_models.saved import load
    run, out = fitted_run
    model, params = load(run / "ubm")
    test = SessionLog(run / "test", rows_in(run / "train", run / "test", 4194304))
    assert evaluate(model, params, test)["perplexity"] == pytest.approx(out["models"]["ubm"]["perplexity"], rel=1e-6)


def test_ips_fitted_reads_the_best_model_or_a_named_one(fitted_run):
    from ultr.methods.ips_fitted import fitted_curve
    run, out = fitted_run
    best = min(out["models"], key=lambda n: out["models"][n]["perplexity"])
    curve, source = fitted_curve(str(run), None)
    assert source.endswith(f"{best}/propensities.json") and curve[0] == 1.0
    assert fitted_curve(str(run), "pbm")[1].endswith("pbm/propensities.json")
    with pytest.raises(DataError, match="no fitted model 'ccm'"):
        fitted_curve(str(run), "ccm")
    with pytest.raises(DataError, match="holds no fitted click model"):
        fitted_curve(str(run / "train"), None)


def test_fitted_ubm_replays_its_gamma_table(fitted_run):
    from ultr.click_models.simulator import click_model_from_config

    class Labels:
        labels = np.array([0, 1, 2])
    run, _ = fitted_run
    sim = click_model_from_config({"name": "fitted", "path": str(run / "ubm"), "eps_neg": 0.1, "eps_pos": 1.0}, Labels)
    gamma = np.asarray(json.loads((run / "ubm" / "model.json").read_text())["simulator"]["table"])
    assert sim.name == "ubm"
    table = np.asarray(sim.params(np.zeros((1, gamma.shape[0]), int))["examination"])
    np.testing.assert_allclose(table, gamma, rtol=1e-6)
    with pytest.raises(DataError, match="holds no fitted click model"):
        click_model_from_config({"name": "fitted", "path": str(run)}, Labels)


def test_a_log_without_clicks_is_one_line(tmp_path):
    from ultr.click_models.pipeline import click_models
    from ultr.config import compose
    log = ArrayLog(np.zeros((20, 3), np.int32) + np.arange(3, dtype=np.int32), np.zeros((20, 3), np.int8), np.ones((20, 3), bool))
    path = write_generic_log(tmp_path / "log.csv", log)
    cfg = compose("click_models", [f"log.path={path}", f"test.path={path}", "etl.list_size=3"])
    with pytest.raises(DataError, match="no session of the train log has a click"):
        click_models(cfg, tmp_path / "run")


@pytest.mark.skipif(not (SHARED / "yandex-relpred-sample").exists(), reason="../shared/data/yandex-relpred-sample is absent")
def test_yandex_sample_end_to_end(tmp_path):
    """The real log: PBM and UBM fitted on trainSample, scored on testSample."""
    from ultr.click_models.pipeline import click_models
    from ultr.config import compose
    y = SHARED / "yandex-relpred-sample"
    cfg = compose("click_models", ["log.format=pyclick", f"log.path={y / 'trainSample.gz'}", f"test.path={y / 'testSample.gz'}",
                                   "models=[pbm,ubm]", "fit.epochs=8"])
    out = click_models(cfg, tmp_path)
    for r in out["models"].values():
        assert 1.3 < r["perplexity"] < 1.6 and r["sessions"] == 21413
    assert out["data"]["test"]["unseen_pairs"] > 0


def test_cli_bad_model_name_is_one_line_with_exit_status_2(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "pipelines.click_models", "models=[pbm,ucm]", "log.path=x", "test.path=y",
                          f"hydra.run.dir={tmp_path}"], capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1] == "error: click model 'ucm' is unknown; known models: cascade, ccm, dbn, dcm, matrix, mixture, pbm, sdbn, trust, ubm"


def test_em_is_refused_for_a_model_without_a_closed_form():
    from ultr.click_models.em import fit_em
    model, _, log = simulated("pbm", 100, 0, attraction=np.linspace(0.1, 0.9, 10), examination=[0.9, 0.6, 0.4, 0.2])
    with pytest.raises(DataError, match="fit.method=em has no closed form for it"):
        fit_em(module(cm.get("dcm"), 10, 4), log, FitSettings(), "dcm")


def brute_force_dbn_posteriors(a, s, gamma, click):
    """Posteriors of one DBN session by enumerating every hidden configuration: attraction A_k,
    satisfaction S_k and the continuation draw G_k per rank, E_1 = 1, C_k = E_k A_k,
    E_{k+1} = E_k (1 - C_k S_k) G_k."""
    import itertools
    K = len(a)
    post_a, post_s, num, den, total = np.zeros(K), np.zeros(K), np.zeros(K), np.zeros(K), 0.0
    for bits in itertools.product([0, 1], repeat=3 * K):
        A, S, G = bits[:K], bits[K:2 * K], bits[2 * K:]
        e, p, exam, sat = 1, 1.0, [], []
        for k in range(K):
            p *= (a[k] if A[k] else 1 - a[k]) * (s[k] if S[k] else 1 - s[k]) * (gamma if G[k] else 1 - gamma)
            if e * A[k] != click[k]:
                p = 0.0
            exam.append(e)
            sat.append(e * A[k] * S[k])
            e = e * (1 - e * A[k] * S[k]) * G[k]
        if p == 0.0:
            continue
        total += p
        for k in range(K):
            post_a[k] += p * A[k]
            post_s[k] += p * sat[k]
            if k + 1 < K:
                den[k] += p * exam[k] * (1 - sat[k])
                num[k] += p * exam[k] * (1 - sat[k]) * exam[k + 1]
    return post_a / total, post_s / total, num / total, den / total


def test_dbn_em_posteriors_match_enumeration():
    from ultr.click_models.em_dbn import dbn_posteriors
    a, s, gamma = np.array([0.5, 0.4, 0.2, 0.7]), np.array([0.6, 0.3, 0.5, 0.8]), 0.9
    for click in ([1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1], [0, 0, 0, 1]):
        got = dbn_posteriors(a[None], s[None], gamma, np.array([click], np.int8), np.ones((1, 4), bool))
        for mine, truth in zip(got, brute_force_dbn_posteriors(a, s, gamma, click)):
            np.testing.assert_allclose(mine[0], truth, atol=1e-12, err_msg=str(click))
    # a padded slot is not a rank: the list of 3 is the enumeration over 3 ranks
    got = dbn_posteriors(a[None], s[None], gamma, np.array([[1, 0, 0, 0]], np.int8), np.array([[True, True, True, False]]))
    for mine, truth in zip(got, brute_force_dbn_posteriors(a[:3], s[:3], gamma, [1, 0, 0])):
        np.testing.assert_allclose(mine[0, :3], truth, atol=1e-12)
        assert mine[0, 3] == 0


def test_dbn_em_reaches_the_generating_models_perplexity():
    from ultr.click_models.em import fit_em
    values = {"attraction": np.linspace(0.1, 0.9, 12), "satisfaction": np.linspace(0.8, 0.2, 12), "continuation": 0.85}
    model, true, log = simulated("dbn", 30_000, 0, **values)
    test = simulated("dbn", 10_000, 1, **values)[2]
    em = fit_em(model, log, FitSettings(), "dbn")
    floor, got = evaluate(model, true, test)["perplexity"], evaluate(model, em.params, test)["perplexity"]
    assert got / floor - 1 < 0.003
    assert float(jax.nn.sigmoid(em.params["params"]["continuation"])) == pytest.approx(0.85, abs=0.03)
    sat = np.asarray(jax.nn.sigmoid(em.params["params"]["satisfaction"]["baseline"] + em.params["params"]["satisfaction"]["offsets"]))
    assert np.mean(np.abs(sat - values["satisfaction"]) / values["satisfaction"]) < 0.15


def test_chain_examination_loop_and_scan_agree():
    """Large batches run the rank-by-rank loop, small ones the associative scan: the same numbers."""
    from ultr.click_models.base import chain_loop, chain_scan
    rng = np.random.default_rng(0)
    a, h = (jnp.asarray(rng.uniform(0.01, 0.99, (64, 10)), jnp.float32) for _ in range(2))
    g = jnp.asarray(rng.uniform(0.01, 0.99, 10), jnp.float32).at[3].set(1.0)  # g = 1 (SDBN) takes the scan's log-0 branch
    click = jnp.asarray(rng.random((64, 10)) < 0.3, jnp.float32)
    np.testing.assert_allclose(chain_loop(a, click, g, lambda k: h[:, k]), chain_scan(a, click, jnp.broadcast_to(g, a.shape), h),
                               rtol=2e-5, atol=1e-7)
    # the models that run the loop at large batches: their hand-worked numbers there too
    for name in ("dbn", "ccm"):
        values, conditional, _ = GOLDEN[name]
        model, params = with_params(name, 3, 3, attraction=ATTR, **values)
        assert model.model.chain_loop_from is not None
        tile = lambda x: jnp.tile(x, (model.model.chain_loop_from, 1))  # noqa: B023, E731
        np.testing.assert_allclose(model.apply(params, tile(ROWS), tile(CLICKS), tile(MASK))[-1], conditional, rtol=1e-5,
                                   err_msg=name)
