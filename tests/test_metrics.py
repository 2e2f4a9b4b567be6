import numpy as np
import pytest

from ultr.metrics import err_metric, evaluate_scores, propensity_error, propensity_warning

# One list, ranked as given: labels [2, 0, 1, 0].
# DCG@10 = 3/log2(2) + 1/log2(4) = 3.5; IDCG = 3 + 1/log2(3) = 3.63093 -> nDCG = 0.963940.
# nDCG@1 = 1. ERR: R = (2^y-1)/4 = [.75, 0, .25, 0] -> .75 + .25 * .25 / 3 = 0.770833.
# MAP: relevant at ranks 1 and 3 -> (1 + 2/3) / 2 = 0.833333. MRR = 1.
S = np.array([[3.0, 2.0, 1.0, 0.0]])
Y = np.array([[2.0, 0.0, 1.0, 0.0]])
M = np.ones((1, 4), bool)


def test_golden_metrics():
    means, per, valid = evaluate_scores(S, Y, M, max_label=2)
    assert means["ndcg@10"] == pytest.approx(3.5 / (3 + 1 / np.log2(3)), rel=1e-6)
    assert means["ndcg@1"] == pytest.approx(1.0)
    assert means["ndcg@3"] == pytest.approx(means["ndcg@10"])
    assert means["err@10"] == pytest.approx(0.75 + 0.25 * 0.25 / 3, rel=1e-6)
    assert means["map"] == pytest.approx(5 / 6, rel=1e-6)
    assert means["mrr"] == pytest.approx(1.0)
    assert valid.tolist() == [True]


def test_reversed_ranking_and_cutoff():
    # Ranking [0, 1, 0, 2] (scores reversed): DCG@3 = 1/log2(3) = 0.63093; IDCG@3 = 3.63093.
    means, _, _ = evaluate_scores(-S, Y, M, max_label=2)
    assert means["ndcg@3"] == pytest.approx((1 / np.log2(3)) / (3 + 1 / np.log2(3)), rel=1e-6)
    assert means["ndcg@1"] == 0.0
    assert means["mrr"] == pytest.approx(0.5)


def test_queries_without_relevant_are_excluded_and_padding_ignored():
    s = np.array([[3.0, 2.0, 1.0, 0.0], [1.0, 2.0, 0.0, 9.0]])
    y = np.array([[2.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 2.0]])
    m = np.array([[True] * 4, [True, True, True, False]])  # the relevant doc of query 2 is padding
    means, per, valid = evaluate_scores(s, y, m, max_label=2)
    assert valid.tolist() == [True, False]
    assert means["ndcg@10"] == pytest.approx(per["ndcg@10"][0])


def test_err_ties_and_topn():
    r = err_metric(np.array([[1.0, 1.0]]), np.array([[0.0, 2.0]]), where=np.ones((1, 2), bool), topn=1, max_label=2)
    assert float(r[0]) == 0.0  # stable tie-break keeps list order: the top-1 item has label 0


def test_propensity_error_golden():
    assert propensity_error([1.0, 0.5, 0.2], [1.0, 0.4, 0.25]) == pytest.approx((0.25 + 0.2) / 2)
    assert propensity_error([2.0, 1.0], [1.0, 0.5]) == 0.0  # curves compared relative to position 1


def test_propensity_warning_flags_a_diverged_curve_only():
    assert propensity_warning([1.0, 0.8, 0.5, 0.2]) is None
    assert propensity_warning([1.0, 1.2, 0.9]) is None  # a mild bump is not flagged
    assert propensity_warning([2.0, 2.9, 1.0]) is None  # 1.45x position 1, relative to it
    msg = propensity_warning([1.0, 0.8, 240.0, 3.0])
    assert msg is not None and "position 3 at 240x position 1" in msg and "severe_bias" in msg
    assert "position 2 at nanx" in propensity_warning([1.0, float("nan"), 0.5])
