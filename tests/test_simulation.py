import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ultr.data.letor import ingest_letor, read_features
from ultr.click_models.base import EYE_TRACKING_THETA, graded, theta_curve
from ultr.click_models.simulator import make_click_model
from ultr.simulation.logging_policy import fit_linear_policy, top_k_lists
from ultr.simulation.simulate import run_simulation, simulate_sessions


def test_pbm_closed_form_golden():
    m = make_click_model("pbm", y_max=2, eta=1.0)
    # label 2 of y_max 2 -> attraction 1.0; label 0 -> eps_neg 0.1; label 1 -> 0.1 + 0.9 * 1/3 = 0.4
    p = m.click_probability(np.array([[2, 0, 1]]), np.ones((1, 3), bool))
    np.testing.assert_allclose(p, [[0.68, 0.061, 0.192]], rtol=1e-6)
    np.testing.assert_allclose(theta_curve(12, "eye_tracking", 2.0)[[0, 11]], [0.68**2, 0.06**2])  # >10 reuses the last
    np.testing.assert_allclose(theta_curve(4, "inverse", 1.0)[[0, 1, 3]], [1.0, 0.5, 0.25])
    np.testing.assert_allclose(graded(np.array([0, 4]), 4, 0.1, 1.0), [0.1, 1.0])


@settings(max_examples=15, deadline=None)
@given(eta=st.sampled_from([0.5, 1.0, 2.0]), y_max=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_pbm_empirical_ctr_matches_closed_form(eta, y_max, seed):
    m = make_click_model("pbm", y_max=y_max, eta=eta)
    n, k = 40_000, 10
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, y_max + 1, size=(n, k))
    clicks = m.sample(labels, np.ones((n, k), bool), rng)
    for y in range(y_max + 1):
        for pos in (1, 5, 10):
            sel = labels[:, pos - 1] == y
            p = m.click_probability(np.full((1, k), y), np.ones((1, k), bool))[0, pos - 1]
            emp = clicks[sel, pos - 1].mean()
            assert abs(emp - p) <= 5 * np.sqrt(p * (1 - p) / sel.sum()) + 1e-3


def test_masked_items_never_click():
    m = make_click_model("pbm", y_max=2)
    mask = np.zeros((100, 10), bool)
    clicks = m.sample(np.full((100, 10), 2), mask, np.random.default_rng(0))
    assert clicks.sum() == 0 and clicks.dtype == np.int8


def test_top_k_lists_golden():
    qids = np.array(["b", "a", "a", "b", "a", "a"])
    scores = np.array([0.1, 0.5, 0.9, 0.3, 0.5, 0.0])
    uq, docs, mask = top_k_lists(qids, scores, 3)
    assert uq.tolist() == ["a", "b"]
    assert docs.tolist() == [[2, 1, 4], [3, 0, -1]]  # ties keep file order
    assert mask.tolist() == [[True, True, True], [True, True, False]]


def test_policy_uses_at_least_min_queries():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] > 0).astype(np.int8)
    q = np.repeat(np.arange(20), 10).astype(str)
    pol = fit_linear_policy(x, y, q, fraction=0.01, min_queries=5, rng=np.random.default_rng(1))
    assert len(pol.train_queries) == 5
    assert pol.weights[0] > abs(pol.weights[1])  # learned the informative feature


@pytest.fixture
def features(tmp_path, tiny_letor):
    ingest_letor(tiny_letor, tmp_path / "f.parquet")
    return read_features(tmp_path / "f.parquet")


def test_simulation_is_deterministic_bytewise(tmp_path, features):
    model = make_click_model("pbm", y_max=2)
    kw = dict(sessions=5000, list_size=2, policy_fraction=0.01, policy_min_queries=2, config={})
    run_simulation(features, model, tmp_path / "a", seed=7, **kw)
    run_simulation(features, model, tmp_path / "b", seed=7, **kw)
    run_simulation(features, model, tmp_path / "c", seed=8, **kw)
    a = (tmp_path / "a" / "clicks.parquet").read_bytes()
    assert a == (tmp_path / "b" / "clicks.parquet").read_bytes()
    assert a != (tmp_path / "c" / "clicks.parquet").read_bytes()
    props = json.loads((tmp_path / "a" / "propensities.json").read_text())
    assert props["positions"] == [1, 2]
    np.testing.assert_allclose(props["relative"], [1.0, EYE_TRACKING_THETA[1] / EYE_TRACKING_THETA[0]])


def test_sessions_show_only_train_queries_and_top_k(features):
    log = simulate_sessions(features, make_click_model("pbm", y_max=2), sessions=3000, list_size=2, seed=0, policy_min_queries=2)
    assert sorted(log.query_ids.tolist()) == ["1", "2", "3"]
    shown = log.displayed[log.session_query]
    assert (features.splits[shown[shown >= 0]] == "train").all()
    # queries drawn uniformly
    counts = np.bincount(log.session_query, minlength=3)
    assert np.all(np.abs(counts / 3000 - 1 / 3) < 0.04)
    assert log.clicks.shape == (3000, 2)


# --- every click model: the sampler's click rate per (rank, grade) matches the closed form.
from ultr.click_models.models import get, names  # noqa: E402

SETTINGS = {
    "cascade": {}, "dcm": {}, "ubm": {"decay": 0.8}, "trust": {},
    "mixture": {"etas": (0.5, 2.0), "weights": (0.3, 0.7)},
    "matrix": {"matrix": ((0.1, 0.05, 0.02), (0.5, 0.3, 0.2), (0.9, 0.6, 0.3))},
    "dbn": {"gamma": 0.8, "sat_neg": 0.1, "sat_pos": 0.7}, "sdbn": {"sat_neg": 0.1, "sat_pos": 0.7},
    "ccm": {"tau": (0.9, 0.6, 0.2)}, "pbm": {},
    # the replay forms of fitted models: an explicit examination curve and gamma table
    "pbm/theta": {"theta": (0.9, 0.7, 0.5, 0.3, 0.2)},
    "ubm/table": {"table": tuple(tuple(0.9 - 0.1 * k - 0.05 * d for d in range(5)) for k in range(5))},
}


def test_every_model_has_a_sampling_check():
    assert {k.split("/")[0] for k in SETTINGS} == set(names())


@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_click_models_match_closed_form(case):
    model = make_click_model(case.split("/")[0], y_max=2, **SETTINGS[case])
    rng = np.random.default_rng(3)
    n, k = 60_000, 5
    labels = rng.integers(0, model.y_max + 1, size=(n, k))
    mask = np.ones((n, k), bool)
    mask[: n // 10, -1] = False  # some shorter lists
    clicks = model.sample(labels, mask, rng)
    p = model.click_probability(labels, mask)
    assert clicks[~mask].sum() == 0
    # Compare per (position, label of that item, label of the item above): cascade-type models depend on both.
    for pos in range(k):
        above = labels[:, pos - 1] if pos else np.zeros(n, int)
        for y in range(model.y_max + 1):
            for ya in range(model.y_max + 1):
                sel = mask[:, pos] & (labels[:, pos] == y) & (above == ya)
                if sel.sum() < 500:
                    continue
                emp, exp = clicks[sel, pos].mean(), p[sel, pos].mean()
                assert abs(emp - exp) <= 5 * np.sqrt(exp * (1 - exp) / sel.sum()) + 2e-3, (pos, y, ya, emp, exp)


def _exam(name, labels, **kw):
    labels = np.asarray(labels)
    return make_click_model(name, y_max=2, **kw).examination_probability(labels, np.ones(labels.shape, bool))


def test_closed_forms_golden():
    # Cascade, labels [2, 0] with y_max 2: r = [1.0, 0.1] -> P(click 2) = 0.1 * (1 - 1.0) = 0
    c = make_click_model("cascade", y_max=2).click_probability(np.array([[2, 0], [0, 2]]), np.ones((2, 2), bool))
    np.testing.assert_allclose(c, [[1.0, 0.0], [0.1, 0.9]], rtol=1e-6)
    # DCM lambda_1 = 0.9: P(examine 2) = (1 - r1) + r1 * 0.9
    np.testing.assert_allclose(_exam("dcm", [[2, 0]]), [[1.0, 0.9]], rtol=1e-6)
    # Trust bias at position 1: alpha = .68 (0.98 - 0.65), beta = .68 * 0.65
    a, b = make_click_model("trust", y_max=2).affine(1)
    np.testing.assert_allclose([a[0], b[0]], [0.68 * (0.98 - 0.65), 0.68 * 0.65])
    # UBM: no click above -> examination = theta_k * decay^(k-1)
    r0 = 0.1
    np.testing.assert_allclose(_exam("ubm", [[0, 0]], decay=0.5), [[0.68, (1 - 0.68 * r0) * 0.61 * 0.5 + 0.68 * r0 * 0.61]], rtol=1e-6)
    # DBN, labels [2, 0], gamma 0.8, satisfaction s(2) = 1: P(examine 2) = 0.8 (1 - r1 s1) = 0
    np.testing.assert_allclose(_exam("dbn", [[2, 0], [0, 2]], gamma=0.8), [[1.0, 0.0], [1.0, 0.8]], rtol=1e-6)
    # CCM, labels [1, 0] (r1 = 0.1 + 0.9 / 3 = 0.4): P(examine 2) = 0.6 tau1 + 0.4 (0.6 tau2 + 0.4 tau3)
    np.testing.assert_allclose(_exam("ccm", [[1, 0]], tau=(0.9, 0.6, 0.2)), [[1.0, 0.6 * 0.9 + 0.4 * (0.6 * 0.6 + 0.4 * 0.2)]], rtol=1e-6)
    # Mixture of eta 1 and 2, weights 0.5: examination = (theta + theta^2) / 2
    np.testing.assert_allclose(_exam("mixture", [[0, 0]], etas=(1.0, 2.0)), [[(0.68 + 0.68**2) / 2, (0.61 + 0.61**2) / 2]], rtol=1e-6)
    # Matrix: the entry itself
    m = make_click_model("matrix", y_max=1, matrix=((0.1, 0.05), (0.8, 0.4)))
    np.testing.assert_allclose(m.click_probability(np.array([[0, 1]]), np.ones((1, 2), bool)), [[0.1, 0.4]], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown"):
        make_click_model("nope", y_max=2)
    with pytest.raises(ValueError, match="not a setting of click model pbm"):
        make_click_model("pbm", y_max=2, decay=0.5)


def test_mixture_conditional_is_the_class_posterior():
    """Two ranks, two classes: P(C_2 | C_1) by hand from Bayes' rule over the classes."""
    import jax.numpy as jnp

    from ultr.click_models.models.mixture import Mixture
    e = np.array([[0.8, 0.6], [0.4, 0.2]])
    w, a = np.array([0.25, 0.75]), np.array([[0.5, 0.9]])
    p = {"examination": jnp.asarray(e), "weights": jnp.asarray(w), "attraction": jnp.asarray(a)}
    for c1 in (0.0, 1.0):
        like = w * np.where(c1, e[:, 0] * 0.5, 1 - e[:, 0] * 0.5)
        want = (like / like.sum() * e[:, 1] * 0.9).sum()
        got = Mixture.conditional(p, jnp.asarray([[c1, 0.0]]), jnp.ones((1, 2), bool))
        np.testing.assert_allclose(float(got[0, 1]), want, rtol=1e-5)


@pytest.mark.parametrize("case", sorted(c for c in SETTINGS if not get(c.split("/")[0]).independent))
def test_steps_fed_the_observed_clicks_give_the_conditional(case):
    """The sampler's rank-by-rank form and the likelihood's `conditional` are one model: fed the same
    clicks, the steps give P(C_k | clicks above) at every rank (cascade: 0 where the likelihood keeps
    its IMPOSSIBLE floor). Attraction stays below 1, so that every click pattern fed is possible."""
    import jax.numpy as jnp
    name = case.split("/")[0]
    below_one = {"eps_pos": 0.9} if "eps_pos" in get(name).settings else {}
    model = make_click_model(name, y_max=2, **{**SETTINGS[case], **below_one})
    rng = np.random.default_rng(5)
    n, k = 2000, 5
    labels = rng.integers(0, 3, size=(n, k))
    mask = jnp.asarray(np.arange(k)[None, :] < rng.integers(1, k + 1, size=(n, 1)))
    click = jnp.asarray((rng.random((n, k)) < 0.4) * np.asarray(mask), jnp.float32)
    p = model.params(labels)
    stepped, fed = model.model.stepped(p, mask, lambda j, prob: click[:, j])
    np.testing.assert_array_equal(np.asarray(fed), np.asarray(click))
    want = np.asarray(model.model.conditional(p, click, mask))
    np.testing.assert_allclose(np.asarray(stepped) * np.asarray(mask), want * np.asarray(mask), atol=2e-6)


@pytest.mark.parametrize("case", sorted(SETTINGS))
def test_parameters_per_grade_and_rank_are_the_models_own(case):
    """The simulator reads per-item parameters from [grade, rank] tables: the same values as the
    model's simulation_params on the labels themselves (item parameters depend on grade and rank alone)."""
    model = make_click_model(case.split("/")[0], y_max=2, **SETTINGS[case])
    labels = np.random.default_rng(1).integers(0, 3, size=(50, 7))
    direct = model.model.simulation_params(model.settings, labels, 7)
    got = model.params(labels)
    assert set(got) == set(direct)
    for k, v in direct.items():
        np.testing.assert_array_equal(np.asarray(got[k]), np.asarray(v, np.float32), err_msg=k)
