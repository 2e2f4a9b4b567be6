"""Held-out click likelihood of the methods whose towers are a click model: hand-worked scores,
the held-out log's consistency with its generating model, and the experiment end to end."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from pipelines.config import default_config
from tests.conftest import EMBEDDED_MQ2008
from ultr.losses.towers import tower_click_probability
from ultr.experiment import run_experiment
from ultr.heldout_clicks import HeldOutClicks, simulate_heldout, true_model_scores
from ultr.click_models.simulator import click_model_from_config
from ultr.simulation.simulate import simulate_sessions
from ultr.workflows import ingest

needs_mq2008 = pytest.mark.skipif(not EMBEDDED_MQ2008.exists(), reason="embedded MQ2008 Fold1 missing from data/")


def test_tower_click_probability_golden():
    s, e = jnp.array([[math.log(3), 0.0]]), jnp.array([[0.0, -math.log(3)]])
    # additive: sigmoid(ln 3) = .75, sigmoid(-ln 3) = .25; multiplicative: .75 * .5, .5 * .25
    np.testing.assert_allclose(tower_click_probability(s, e, "additive"), [[0.75, 0.25]], rtol=1e-6)
    np.testing.assert_allclose(tower_click_probability(s, e, "multiplicative"), [[0.375, 0.125]], rtol=1e-6)


def test_heldout_scores_golden():
    # Rank 1: P = .5 in three sessions -> perplexity 2 whatever the clicks. Rank 2: P = .25, both
    # shown slots skipped -> 2 ** -log2(.75) = 4/3; the third session's padding slot is not counted.
    held = HeldOutClicks(np.array([[0, 1], [2, 3], [4, -1]], np.int32), np.array([[1, 0], [0, 0], [0, 0]], np.int8),
                         np.array([[0.5, 0.25], [0.5, 0.25], [0.5, 0.9]]))
    out = true_model_scores(held)
    assert out["sessions"] == 3
    np.testing.assert_allclose(out["true_model"]["perplexity_at"], [2.0, 4 / 3], rtol=1e-9)
    np.testing.assert_allclose(out["true_model"]["perplexity"], 5 / 3, rtol=1e-9)
    # click rate per rank: 1/3 at rank 1 (one click in three), 0 at rank 2 (clipped, so ~1):
    # 2 ** -(log2(1/3) + 2 log2(2/3)) / 3 = (27/4) ** (1/3)
    np.testing.assert_allclose(out["rank_ctr"]["perplexity_at"], [(27 / 4) ** (1 / 3), 1.0], rtol=1e-6)


@pytest.fixture(scope="module")
def mq2008(tmp_path_factory):
    cfg = default_config(["simulation.sessions=1000", "evaluation.click_sessions=40000"])
    return cfg, ingest(cfg["data"], tmp_path_factory.mktemp("f"), seed=0, progress=False)


@needs_mq2008
def test_heldout_sessions_are_test_queries_under_the_training_policy(mq2008):
    cfg, features = mq2008
    held = simulate_heldout(cfg, features)
    assert held.doc_index.shape == (40000, 10)
    assert set(np.unique(held.doc_index[held.mask])) <= set(features.rows("test").tolist())
    # The same policy as the training log (fitted on the same training queries), another stream.
    model = click_model_from_config(cfg["click_model"], features)
    train = simulate_sessions(features, model, sessions=1000, seed=0)
    test = simulate_sessions(features, model, sessions=1000, seed=0, session_split="test", stream=3)
    assert train.policy_queries == test.policy_queries
    # The generating model's probabilities are those the clicks were drawn from: observed CTR per
    # rank within 4 standard errors of the mean predicted probability.
    m = held.mask
    n = m.sum(0)
    observed = (held.clicks * m).sum(0) / n
    predicted = (held.true_probability * m).sum(0) / n
    se = np.sqrt(predicted * (1 - predicted) / n)
    assert np.all(np.abs(observed - predicted) < 4 * se + 1e-9), (observed, predicted)
    again = simulate_heldout(cfg, features)
    np.testing.assert_array_equal(again.clicks, held.clicks)  # the same seed, the same held-out log


@needs_mq2008
def test_experiment_scores_click_models_and_not_softmax_towers(tmp_path):
    cfg = default_config(["trainer=debug", "model.hidden=[16]", "simulation.sessions=20000",
                          "evaluation.click_sessions=5000", "algorithm.methods=[two_tower,dla]"])
    out = run_experiment(cfg, tmp_path)
    floor = out["heldout_clicks"]["true_model"]["perplexity"]
    scored = out["methods"]["two_tower"]["click_likelihood"]
    assert out["heldout_clicks"]["sessions"] == 5000 and "click_likelihood" not in out["methods"]["dla"]
    assert len(scored["perplexity_at"]) == 10 and scored["log_likelihood"] < 0
    # A fitted model cannot beat the generating one by more than the noise of 5,000 sessions,
    # and a two-tower model with any training beats a coin flip per slot.
    assert floor * 0.99 < scored["perplexity"] < 2.0
    assert floor < out["heldout_clicks"]["rank_ctr"]["perplexity"]  # the documents matter under PBM
