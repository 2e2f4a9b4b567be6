"""Position-bias estimators: exact ratios on a noiseless hand case, and recovery of a known PBM
curve from simulated sessions with randomised rankings (property of each estimator)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, SHARED
from ultr.data.batching import Sessions
from ultr.estimation.propensity import adjacent_chain, all_pairs, count_impressions, pairwise_ratios, pbm_em
from ultr.metrics import propensity_error


def sessions_from(doc, click):
    n, k = doc.shape
    return Sessions(np.arange(n), np.array(["q"] * n, dtype=object), doc.astype(np.int32),
                    np.tile(np.arange(1, k + 1, dtype=np.int16), (n, 1)), click.astype(np.int8), np.ones((n, k), bool))


def test_harvesting_ratios_by_hand():
    # item 0: position 1 shown 4x, 2 clicks; position 2 shown 4x, 1 click (ctr .5 vs .25).
    # item 1: shown 4x at each, never clicked. Harmonic weights 4*4/8 = 2 each (total 4):
    # p1/p2 = (2 * .5 + 2 * 0) / (2 * .25 + 2 * 0) = 2
    doc = np.array([[0, 1]] * 4 + [[1, 0]] * 4)
    click = np.array([[1, 0], [1, 0], [0, 0], [0, 0], [0, 1], [0, 0], [0, 0], [0, 0]])
    ratio, weight = pairwise_ratios(count_impressions(sessions_from(doc, click)))
    assert ratio[0, 1] == pytest.approx(2.0) and ratio[1, 0] == pytest.approx(0.5)
    assert weight[0, 1] == pytest.approx(4.0)
    np.testing.assert_allclose(adjacent_chain(ratio), [1.0, 0.5])
    np.testing.assert_allclose(all_pairs(ratio, weight), [1.0, 0.5])


def test_estimators_recover_known_pbm_curve():
    rng = np.random.default_rng(0)
    n, k, items = 60_000, 6, 40
    theta = np.array([1.0, 0.7, 0.5, 0.35, 0.25, 0.18])
    gamma = rng.uniform(0.05, 0.9, size=items)
    doc = np.argsort(rng.random((n, items)), axis=1)[:, :k]  # randomised rankings: every item visits every position
    click = (rng.random((n, k)) < theta[None, :] * gamma[doc]).astype(np.int8)
    counts = count_impressions(sessions_from(doc, click))
    ratio, weight = pairwise_ratios(counts)
    for est in (pbm_em(counts), adjacent_chain(ratio), all_pairs(ratio, weight)):
        assert propensity_error(est, theta) < 0.06, est


def test_missing_position_is_nan():
    doc = np.array([[0, 1], [0, 1]])
    click = np.array([[1, 0], [0, 0]])
    ratio, weight = pairwise_ratios(count_impressions(sessions_from(doc, click)))
    assert np.isnan(adjacent_chain(ratio)[1])  # no item seen at both positions: no evidence


@pytest.mark.skipif(not (SHARED / "yandex-relpred-sample").exists(), reason="../shared/data/yandex-relpred-sample not present")
def test_estimate_bias_cli_on_real_yandex_sample(tmp_path):
    out = tmp_path / "bias"
    subprocess.run(
        [sys.executable, "-m", "pipelines.estimate_bias", "log.format=pyclick",
         f"log.path={SHARED / 'yandex-relpred-sample' / 'oneQueryTrain'}", f"hydra.run.dir={out}",
         "dla.steps=300", "dla.progress=false"],
        cwd=ROOT, check=True, capture_output=True,
    )
    res = json.loads((out / "propensities.json").read_text())
    assert res["positions"] == list(range(1, 11))
    assert set(res["estimators"]) == {"pbm_em", "harvest_adjacent", "harvest_all_pairs", "dla"}
    for name, curve in res["estimators"].items():
        assert curve[0] == 1.0, name
    assert (out / "propensities.png").exists() and (out / "propensities.csv").exists()
