"""Counterfactual estimates from clicks: golden values worked out by hand, unbiasedness against a
simulated ground truth, and the bootstrap."""

import math

import numpy as np
import polars as pl
import pytest

from ultr.evaluation import bootstrap as bs
from ultr.evaluation.counterfactual import aggregate, estimates, gains, metric_specs, ranks

ALPHA = np.array([1.0, 0.5, 0.25])


def hand_log():
    """Query a: two sessions of docs 0, 1, 2 in different orders; query b: one session, no click.
    By hand (alpha = 1, .5, .25 at positions 1-3):
      doc 0: positions 1, 2, no click            C=0 W=0       A=1.5 S=2
      doc 1: positions 2, 1, clicked both times  C=2 W=2+1=3   A=1.5 S=2
      doc 2: position 3 twice, clicked once      C=1 W=4       A=0.5 S=2
    IPS gains W/S = 0, 1.5, 2; SNIPS gains C/A = 0, 4/3, 2."""
    qid = np.array(["a", "a", "b"], dtype=object)
    doc = np.array([[0, 1, 2], [1, 0, 2], [5, 6, -1]], dtype=np.int32)
    pos = np.array([[1, 2, 3], [1, 2, 3], [1, 2, 3]], dtype=np.int16)
    click = np.array([[0, 1, 0], [1, 0, 1], [0, 0, 0]], dtype=np.int8)
    return qid, doc, pos, click, doc >= 0


def test_evidence_and_gains_by_hand():
    ev = aggregate([hand_log()], ALPHA)
    assert ev.query_ids.tolist() == ["a", "b"] and ev.sessions.tolist() == [2, 1]
    a = ev.query == 0
    assert ev.doc[a].tolist() == [0, 1, 2]
    np.testing.assert_allclose(ev.clicks[a], [0, 2, 1])
    np.testing.assert_allclose(ev.weighted[a], [0, 3, 4])
    np.testing.assert_allclose(ev.exposure[a], [1.5, 1.5, 0.5])
    np.testing.assert_allclose(gains(ev, "ips")[a], [0, 1.5, 2])
    np.testing.assert_allclose(gains(ev, "snips")[a], [0, 4 / 3, 2])
    # Where every candidate was shown, DR's correction cancels its direct model exactly.
    np.testing.assert_allclose(gains(ev, "dr", relevance=np.full(len(ev), 0.7)), gains(ev, "snips"), atol=1e-12)


def test_metrics_by_hand():
    """Ranker: doc 0 > 1 > 2 on query a. DCG@2 (IPS) = 1.5 / log2(3); ideal = 2 + 1.5 / log2(3).
    Expected clicks (IPS) = 0 * 1 + 1.5 * .5 + 2 * .25 = 1.25. Query b has no click: no nDCG."""
    ev = aggregate([hand_log()], ALPHA)
    scores = -ev.doc.astype(float)[None, :]  # lower doc id first
    out = estimates(ev, scores, metric_specs(["dcg@2", "ndcg@2", "clicks"], ALPHA), ["ips", "snips"])
    l3 = 1 / math.log2(3)
    v, valid = out[("ips", "dcg@2")]
    np.testing.assert_allclose(v[0], [1.5 * l3, 0.0])
    v, valid = out[("ips", "ndcg@2")]
    assert valid.tolist() == [True, False]
    np.testing.assert_allclose(v[0, 0], 1.5 * l3 / (2 + 1.5 * l3))
    np.testing.assert_allclose(out[("snips", "ndcg@2")][0][0, 0], 4 / 3 * l3 / (2 + 4 / 3 * l3))
    np.testing.assert_allclose(out[("ips", "clicks")][0][0], [1.25, 0.0])


def test_dr_uses_its_direct_model_on_candidates_never_shown():
    candidates = pl.DataFrame({"query_id": ["a", "a", "a", "a", "z"], "doc": [0, 1, 2, 9, 4]})
    ev = aggregate([hand_log()], ALPHA, candidates=candidates)
    assert ev.doc[ev.query == 0].tolist() == [0, 1, 2, 9]  # query z has no session: not evaluated
    never = ev.doc == 9
    assert ev.shown[never].tolist() == [0]
    r = np.full(len(ev), 0.7)
    assert gains(ev, "dr", r)[never].tolist() == [0.7]
    assert gains(ev, "ips")[never].tolist() == [0.0] and gains(ev, "snips")[never].tolist() == [0.0]
    # default direct model: the query's mean SNIPS gain over its shown documents
    np.testing.assert_allclose(gains(ev, "dr")[never], [(0 + 4 / 3 + 2) / 3])


def test_trust_bias_offset_is_subtracted():
    ev = aggregate([hand_log()], ALPHA, beta=np.array([0.1, 0.1, 0.1]))
    np.testing.assert_allclose(gains(ev, "snips")[ev.query == 0], [(0 - 0.2) / 1.5, (2 - 0.2) / 1.5, (1 - 0.2) / 0.5])
    # IPS: each impression's (c - beta) / alpha, averaged over the sessions that showed the document
    np.testing.assert_allclose(gains(ev, "ips")[ev.query == 0], [(-0.1 / 1 - 0.1 / 0.5) / 2, (0.9 / 0.5 + 0.9 / 1) / 2,
                                                                (-0.1 / 0.25 + 0.9 / 0.25) / 2])


def test_ranks_within_queries_break_ties_by_row():
    q = np.array([0, 0, 0, 1, 1])
    assert ranks(q, np.array([[0.1, 0.3, 0.2, 5.0, 5.0]])).tolist() == [[3, 1, 2, 1, 2]]


def test_propensities_must_cover_the_list():
    with pytest.raises(Exception, match="propensity curve has 2 positions"):
        aggregate([hand_log()], ALPHA[:2])


def simulate_pbm(rng, queries=300, docs=6, k=4, sessions=60):
    """PBM clicks on lists drawn at random per session (a stochastic logging policy): the truth
    is the DCG of the re-ranked candidates with gains gamma."""
    alpha = 1 / np.arange(1, k + 1)
    gamma = rng.uniform(0, 1, size=(queries, docs)) ** 2
    order = np.argsort(rng.uniform(size=(queries * sessions, docs)), axis=1)[:, :k]
    q = np.repeat(np.arange(queries), sessions)
    shown = order + (q * docs)[:, None]
    click = (rng.uniform(size=shown.shape) < alpha[None, :] * gamma.ravel()[shown]).astype(np.int8)
    pos = np.broadcast_to(np.arange(1, k + 1, dtype=np.int16), shown.shape)
    return (q.astype(str).astype(object), shown.astype(np.int32), pos, click, np.ones_like(click, bool)), alpha, gamma.ravel()


def test_ips_and_snips_agree_with_the_true_value_in_simulation():
    """Over 300 queries x 60 random-list sessions: each estimate of DCG@3 within 4 standard
    errors of the truth (mean over queries), for a good and a reversed ranker."""
    rng = np.random.default_rng(0)
    chunk, alpha, gamma = simulate_pbm(rng)
    ev = aggregate([chunk], alpha)
    true = gamma[ev.doc]
    scores = np.stack([true, -true])
    out = estimates(ev, scores, metric_specs(["dcg@3"], alpha), ["ips", "snips", "dr"], true_gains=true)
    truth = out[("true", "dcg@3")][0].mean(axis=1)
    assert truth[0] > truth[1] + 0.3
    for e in ("ips", "snips", "dr"):
        v = out[(e, "dcg@3")][0]
        se = v.std(axis=1) / np.sqrt(v.shape[1])
        assert np.all(np.abs(v.mean(axis=1) - truth) < 4 * se), (e, v.mean(axis=1), truth, se)


def test_ignoring_the_propensity_is_biased_in_the_same_simulation():
    """The check above can fail: with alpha = 1 everywhere (no inverse weight) the estimate is far off."""
    rng = np.random.default_rng(0)
    chunk, alpha, gamma = simulate_pbm(rng)
    ev = aggregate([chunk], np.ones_like(alpha))
    true = gamma[ev.doc]
    v = estimates(ev, true[None, :], metric_specs(["dcg@3"], alpha), ["ips"], true_gains=true)
    est, truth = v[("ips", "dcg@3")][0].mean(), v[("true", "dcg@3")][0].mean()
    assert est < 0.8 * truth


def test_resample_counts_draw_q_queries_per_replicate():
    counts = bs.resample_counts(7, 50, np.random.default_rng(0))
    assert counts.shape == (50, 7) and (counts.sum(axis=1) == 7).all()


def test_bootstrap_of_a_shifted_ranker_gives_the_shift_exactly():
    rng = np.random.default_rng(1)
    a = rng.normal(size=200)
    values = np.stack([a, a + 0.25])
    iv = bs.interval(values, np.ones(200, bool), replicates=300, seed=0)
    d = bs.paired(iv, 0, 1)
    np.testing.assert_allclose([d["difference"], d["low"], d["high"]], 0.25)
    assert d["p_not_better"] == 0.0
    assert iv.low[0] < a.mean() < iv.high[0]


def test_bootstrap_interval_width_matches_the_standard_error():
    """Percentile interval of a mean of 2,000 iid values: half-width ~ 1.96 sd / sqrt(n)."""
    rng = np.random.default_rng(2)
    v = rng.exponential(size=(1, 2000))
    iv = bs.interval(v, np.ones(2000, bool), replicates=2000, seed=0)
    half = (iv.high - iv.low)[0] / 2
    assert abs(half / (1.96 * v.std() / np.sqrt(2000)) - 1) < 0.1


def test_bootstrap_skips_invalid_queries():
    v = np.array([[1.0, 100.0, 3.0]])
    iv = bs.interval(v, np.array([True, False, True]), replicates=200, seed=0)
    assert iv.estimate[0] == 2.0 and 1.0 <= iv.low[0] <= iv.high[0] <= 3.0
