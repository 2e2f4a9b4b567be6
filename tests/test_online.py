"""Online learning to rank: the display's Plackett-Luce probabilities, PDGD's pair weights and
DBGD/MGD's updates worked by hand, team-draft fairness by simulation, and a small end-to-end run."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ultr.online.display import log_prob, plackett_luce, top_k
from ultr.online.feed import CASCADE_USERS, make_user
from ultr.online.interleaving import credit, team_draft
from ultr.online.methods import make, names
from ultr.online.methods.base import Feed, directions
from ultr.online.methods.pdgd import pair_weights, score_coefficients


def test_plackett_luce_display_matches_closed_form():
    """exp scores [3, 2, 1] (sum 6): P(first two = (a, b)) = e_a / 6 * e_b / (6 - e_a)."""
    s, mask = jnp.log(jnp.array([3.0, 2.0, 1.0])), jnp.ones(3, bool)
    draws = jax.vmap(lambda kk: plackett_luce(kk, s, mask, 2)[0])(jax.random.split(jax.random.key(0), 60_000))
    e = np.array([3.0, 2.0, 1.0])
    for a in range(3):
        for b in range(3):
            if a == b:
                continue
            want = e[a] / 6 * e[b] / (6 - e[a])
            got = np.mean((np.asarray(draws[:, 0]) == a) & (np.asarray(draws[:, 1]) == b))
            assert abs(got - want) < 5 * math.sqrt(want * (1 - want) / 60_000), (a, b, got, want)
            lp = log_prob(s, mask, jnp.array([a, b]), jnp.ones(2, bool))
            np.testing.assert_allclose(float(lp), math.log(want), rtol=1e-5)


def test_full_ranking_by_counting_orders_as_the_partial_sort():
    """Lists of k or fewer candidates are ordered by counting ranks, not by jax.lax.top_k: the same
    slots, ties to the lower slot, padding last (random lists with tied scores and padding)."""
    rng = np.random.default_rng(0)
    for w, k in [(10, 10), (4, 4), (6, 8), (10, 3)]:
        s = jnp.asarray(rng.integers(0, 4, (200, w)).astype(np.float32))  # many ties
        mask = jnp.asarray(rng.random((200, w)) < 0.8)
        kk = min(k, w)
        got, valid = jax.vmap(lambda a, m: top_k(a, m, kk))(s, mask)
        want = jax.lax.top_k(jnp.where(mask, s, -1e30), kk)[1]
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        np.testing.assert_array_equal(np.asarray(valid), np.take_along_axis(np.asarray(mask), np.asarray(want), 1))


def test_display_never_shows_padding():
    mask = jnp.array([True, False, True, False])
    slots, valid = top_k(jnp.array([0.0, 9.0, 1.0, 8.0]), mask, 3)
    assert np.asarray(slots).tolist()[:2] == [2, 0] and np.asarray(valid).tolist() == [True, True, False]
    slots, valid = plackett_luce(jax.random.key(1), jnp.zeros(4), mask, 4, temperature=0.5)
    assert set(np.asarray(slots)[np.asarray(valid)].tolist()) == {0, 2}


def test_pdgd_pair_weights_by_hand():
    """Scores exp [3, 2, 1], shown in that order, a click at rank 2 only. The user observed ranks
    1-3 (down to the last click and one more): preferences doc1 > doc0 and doc1 > doc2.
    P(R) = 3/6 * 2/3 = 1/3. Swapping doc1, doc0: P = 2/6 * 3/4 = 1/4, rho = 3/7, c = 2*3/5^2.
    Swapping doc1, doc2: P = 3/6 * 1/3 = 1/6, rho = 1/3, c = 2*1/3^2."""
    s, mask = jnp.log(jnp.array([3.0, 2.0, 1.0])), jnp.ones(3, bool)
    slots, valid, clicks = jnp.array([0, 1, 2]), jnp.ones(3, bool), jnp.array([0.0, 1.0, 0.0])
    w = np.asarray(pair_weights(s, mask, slots, valid, clicks))
    want = np.zeros((3, 3))
    want[1, 0], want[1, 2] = 3 / 7 * 6 / 25, 1 / 3 * 2 / 9
    np.testing.assert_allclose(w, want, rtol=1e-5, atol=1e-8)
    g = np.asarray(score_coefficients(s, mask, slots, valid, clicks))
    np.testing.assert_allclose(g, [-want[1, 0], want[1, 0] + want[1, 2], -want[1, 2]], rtol=1e-5)
    # a click at rank 1 only: the user saw ranks 1 and 2, so doc2 (rank 3) is in no pair
    w1 = np.asarray(pair_weights(s, mask, slots, valid, jnp.array([1.0, 0.0, 0.0])))
    assert w1[0, 1] > 0 and w1[0, 2] == 0 and np.count_nonzero(w1) == 1
    # no click: no gradient
    assert not np.asarray(score_coefficients(s, mask, slots, valid, jnp.zeros(3))).any()


def _deterministic_user(relevant_grade: int = 1):
    """Clicks every relevant document and never stops: the perfect user on a 0..1 scale."""
    from ultr.click_models.models import get
    from ultr.online.feed import User
    tables = {"attraction": jnp.array([[0.0] * 4, [1.0] * 4]), "satisfaction": jnp.zeros((2, 4))}
    return User("clicks-relevant", get("sdbn")), tables


def test_pdgd_update_is_the_pair_gradient_on_a_linear_ranker():
    """One PDGD step on a linear ranker moves w by lr * sum_d g_d x_d, g the score coefficients of
    the ranking it showed (recomputed from the same key)."""
    user, tables = _deterministic_user()
    method = make("pdgd", {"learning_rate": 0.5})
    x = jnp.eye(4)
    label, mask = jnp.array([0, 1, 0, 1]), jnp.ones(4, bool)
    state = method.init(jax.random.key(0), 4)
    state["params"]["w"] = jnp.array([0.3, -0.2, 0.1, 0.0])
    for seed in range(5):
        key = jax.random.key(seed)
        new, slots, valid, clicks = method.interact(state, key, x, mask, label, Feed(user, tables, 4))
        assert np.asarray(clicks).tolist() == np.asarray(label[slots] == 1).astype(float).tolist()
        g = score_coefficients(x @ state["params"]["w"], mask, slots, valid, clicks)
        np.testing.assert_allclose(np.asarray(new["params"]["w"] - state["params"]["w"]), 0.5 * np.asarray(g @ x), atol=1e-6)


def test_pdgd_mlp_skip_is_the_linear_ranker_plus_an_mlp_with_its_own_rate():
    """ranker=mlp_skip scores x @ w + MLP(x); with the MLP's output layer at zero it is the linear
    ranker, so its step on w is the linear ranker's at linear_learning_rate (the hidden layers' at
    learning_rate: their gradient is 0 through a zero output layer, the output layer's is not)."""
    user, tables = _deterministic_user()
    skip = make("pdgd", {"ranker": "mlp_skip", "zero_output": True, "learning_rate": 0.01, "linear_learning_rate": 0.5})
    linear = make("pdgd", {"learning_rate": 0.5})
    x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 4)), jnp.float32)
    label, mask = jnp.array([0, 1, 0, 1]), jnp.ones(4, bool)
    state = skip.init(jax.random.key(0), 4)  # zero_output: the MLP's output layer starts at zero
    assert np.asarray(skip.score(state, x)).tolist() == [0.0] * 4
    assert np.abs(np.asarray(state["params"]["mlp"]["FeatureMajorDense_0"]["kernel"])).sum() > 0
    w = jnp.array([0.3, -0.2, 0.1, 0.0])
    state["params"]["linear"]["w"] = w
    np.testing.assert_allclose(np.asarray(skip.score(state, x)), np.asarray(x @ w), atol=1e-6)
    moved = 0
    for seed in range(5):
        new, *_ = skip.interact(state, jax.random.key(seed), x, mask, label, Feed(user, tables, 4))
        ref, *_ = linear.interact({"params": {"w": w}}, jax.random.key(seed), x, mask, label, Feed(user, tables, 4))
        np.testing.assert_allclose(np.asarray(new["params"]["linear"]["w"]), np.asarray(ref["params"]["w"]), atol=1e-6)
        step = np.abs(np.asarray(new["params"]["mlp"]["FeatureMajorDense_1"]["kernel"])).max()
        assert step < 0.01 * 2  # the output layer moves at the hidden rate: |coefficients x tanh| < 2
        moved += step > 0
    assert moved  # and it does move


def test_dbgd_moves_along_the_candidate_direction_after_a_win():
    """Current ranker w = 0 (ties: slot order) against w + delta u; only doc 3 is relevant, so the
    team that placed doc 3 gets the one click. After a candidate win w = alpha u, otherwise w stays."""
    user, tables = _deterministic_user()
    method = make("dbgd", {"delta": 1.0, "alpha": 0.01})
    x, label, mask = jnp.eye(4), jnp.array([0, 0, 0, 1]), jnp.ones(4, bool)
    state = method.init(jax.random.key(0), 4)
    outcomes = set()
    for seed in range(40):
        key = jax.random.key(seed)
        new, slots, shown, clicks = method.interact(state, key, x, mask, label, Feed(user, tables, 2))
        k_dir, _, k_mix, _ = jax.random.split(key, 4)
        _, (u,), _ = directions(k_dir, state, 1)
        orders, valid = jax.vmap(lambda s: top_k(s, mask, 2))(jnp.stack([jnp.zeros(4), u]))
        got_slots, team, _ = team_draft(k_mix, orders, valid, 2, 4)
        assert np.asarray(got_slots).tolist() == np.asarray(slots).tolist()
        shown_3 = np.asarray(got_slots) == 3
        cand_won = bool(shown_3.any() and np.asarray(team)[shown_3][0] == 1)
        step = np.asarray(new["params"]["w"] - state["params"]["w"])
        np.testing.assert_allclose(step, 0.01 * np.asarray(u) if cand_won else 0.0, atol=1e-7)
        outcomes.add(cand_won)
    assert outcomes == {True, False}


def test_mgd_mean_winner_update():
    """MGD with 3 candidates: w moves by alpha times the mean direction of the candidates whose
    team got more clicks than the current ranker's (recomputed from the same keys)."""
    user, tables = _deterministic_user()
    method = make("mgd", {"candidates": 3, "alpha": 0.1})
    x, label, mask = jnp.eye(5), jnp.array([0, 1, 0, 0, 1]), jnp.ones(5, bool)
    state = method.init(jax.random.key(0), 5)
    moved = 0
    for seed in range(30):
        key = jax.random.key(seed)
        new, slots, shown, clicks = method.interact(state, key, x, mask, label, Feed(user, tables, 4))
        k_dir, k_order, k_mix, _ = jax.random.split(key, 4)
        _, u, _ = directions(k_dir, state, 3)
        scores = jnp.concatenate([jnp.zeros((1, 5)), u @ x.T])
        orders, valid = jax.vmap(lambda s: top_k(s, mask, 4))(scores)
        _, team, _ = team_draft(k_mix, orders, valid, 4, 5)
        won = np.asarray(credit(team, clicks, 4))
        winners = won[1:] > won[0]
        want = 0.1 * (np.asarray(u)[winners].mean(0) if winners.any() else np.zeros(5))
        np.testing.assert_allclose(np.asarray(new["params"]["w"] - state["params"]["w"]), want, atol=1e-6)
        moved += bool(winners.any())
    assert 0 < moved < 30


def test_team_draft_is_fair_to_a_ranker_against_itself():
    """The same ranking interleaved with itself, clicks position-biased (0.6 / rank): each team
    wins as often as the other (a team that always picked first would win more)."""
    n, W, k = 20_000, 8, 6
    order = jnp.arange(W)
    p_click = 0.6 / jnp.arange(1, k + 1)

    def one(key):
        k_mix, k_click = jax.random.split(key)
        slots, team, shown = team_draft(k_mix, jnp.stack([order, order]), jnp.ones((2, W), bool), k, W)
        clicks = (jax.random.uniform(k_click, (k,)) < p_click) & shown
        return credit(team, clicks.astype(jnp.float32), 2)
    won = np.asarray(jax.vmap(one)(jax.random.split(jax.random.key(0), n)))
    a, b = (won[:, 0] > won[:, 1]).sum(), (won[:, 1] > won[:, 0]).sum()
    assert abs(a - b) < 4 * math.sqrt(a + b), (a, b)


def test_team_draft_shows_each_document_once_and_each_ranker_fairly():
    orders = jnp.array([[0, 1, 2, 3], [3, 2, 1, 0]])
    slots, team, shown = team_draft(jax.random.key(3), orders, jnp.ones((2, 4), bool), 4, 4)
    assert sorted(np.asarray(slots).tolist()) == [0, 1, 2, 3] and np.asarray(shown).all()
    assert sorted(np.asarray(team[:2]).tolist()) == [0, 1] and sorted(np.asarray(team[2:]).tolist()) == [0, 1]


def test_cascade_users_follow_the_papers_tables():
    user, tables = make_user("navigational", 2, 3)
    assert user.model.key == "sdbn"
    np.testing.assert_allclose(np.asarray(tables["attraction"])[:, 0], CASCADE_USERS["navigational"][2][0])
    np.testing.assert_allclose(np.asarray(tables["satisfaction"])[:, 0], CASCADE_USERS["navigational"][2][1])
    # clicks: an attraction-1 document after a stop-probability-1 click is never clicked
    clicks = user.clicks({"attraction": jnp.ones((3, 3)), "satisfaction": jnp.ones((3, 3))}, jnp.full((500, 3), 2),
                         jnp.ones((500, 3), bool), jax.random.key(0))
    assert np.asarray(clicks).sum(axis=1).max() == 1


def test_registry_and_unknown_setting():
    assert names() == ["dbgd", "mgd", "pdgd"]
    with pytest.raises(ValueError, match="not a setting of pdgd"):
        make("pdgd", {"alpha": 1})


def test_online_pipeline_end_to_end(tmp_path):
    """The embedded MQ2008 fold: two methods under one user learn (curves recorded at every point,
    the final ranker scored with ultr.metrics), the oracle row and the files are written."""
    import json

    from ultr.config import compose
    from ultr.online.run import online
    cfg = compose("online", ["online.interactions=600", "online.every=300", "online.seeds=2", "online.users=[perfect]",
                             "online.methods=[pdgd,dbgd]", "online.oracle_epochs=3"])
    out = online(cfg, tmp_path)
    saved = json.loads((tmp_path / "online.json").read_text())
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert saved["users"]["perfect"]["pdgd"]["curves"]["interactions"] == [0, 300, 600]
    for row in out["users"]["perfect"].values():
        start, end = np.mean(row["curves"]["offline"][0]), row["final"]["ndcg@10"]
        assert end > start  # 600 perfect-user interactions beat the untrained ranker
        np.testing.assert_allclose(np.mean(row["curves"]["offline"][-1]), end, atol=1e-4)
    assert set(saved["oracle"]) == {"linear"}
    # a sweep of such runs aggregates with the offline experiment's entry point
    from ultr.aggregate import aggregate
    (tmp_path / "fold2").mkdir()
    (tmp_path / "fold2" / "online.json").write_text((tmp_path / "online.json").read_text())
    pooled = aggregate(tmp_path)
    assert len(pooled["users"]["perfect"]["pdgd"]["final_ndcg@10"]) == 4  # 2 runs x 2 seeds
    assert "pdgd - dbgd" not in (tmp_path / "online_summary.md").read_text()  # only the papers' pairs
    assert "mgd" not in pooled["users"]["perfect"]


def test_plackett_luce_log_prob_stays_exact_for_a_peaked_policy():
    """Scores 0, -20, -40: the second rank's candidates hold e^-20 + e^-40 of the mass, below float32's
    resolution of 1 + e^-20. log P(ranking 0, 1, 2) = log(1 / (1 + e^-20 + e^-40)) + log(e^-20 / (e^-20 + e^-40))."""
    s, mask = jnp.array([0.0, -20.0, -40.0]), jnp.ones(3, bool)
    want = -math.log1p(math.exp(-20) + math.exp(-40)) - math.log1p(math.exp(-20))
    got = float(log_prob(s, mask, jnp.array([0, 1, 2]), jnp.ones(3, bool)))
    assert abs(got - want) < 1e-5, (got, want)
    swapped = float(log_prob(s, mask, jnp.array([1, 0, 2]), jnp.ones(3, bool)))
    want_swapped = (-20 - math.log1p(math.exp(-20) + math.exp(-40))) - math.log1p(math.exp(-40))
    assert abs(swapped - want_swapped) < 1e-4, (swapped, want_swapped)


@pytest.mark.parametrize("rows", [8, 40])
def test_batched_update_adds_the_updates_of_interactions_from_the_same_ranker(rows):
    """online.batch=B: B interactions are shown by the same ranker and the state moves by the sum of
    the B updates each would make from it (PDGD: the summed gradient); batch 1 chains them. With 8
    feature rows PDGD scores the whole table once (8 <= 4 lists x 4 candidates), with 40 each list."""
    from ultr.online.feed import Lists
    from ultr.online.loop import _interaction, ideal_dcg, run_block
    user, tables = _deterministic_user()
    method = make("pdgd", {"learning_rate": 0.5})
    x = jnp.asarray(np.random.default_rng(0).standard_normal((rows, 3)), jnp.float32)
    lists = Lists(jnp.arange(8).reshape(2, 4), jnp.array([[0, 1, 0, 1], [1, 0, 0, 1]]), jnp.ones((2, 4), bool))
    state = method.init(jax.random.key(0), 3)
    state["params"]["w"] = jnp.array([0.3, -0.2, 0.1])
    key = jax.random.key(7)
    batched, ndcg, _ = run_block(method, user, 4, 4, tables, x, lists, jax.tree.map(lambda a: a[None], state), key[None], 4)
    feed = Feed(user, tables, 4)
    step = jax.random.split(jax.random.split(key, 1)[0], 4)  # the block's one step, its four interactions
    deltas = [_interaction(method, feed, x, lists, ideal_dcg(lists, 4), state, kk)[0]["params"]["w"] - state["params"]["w"] for kk in step]
    assert np.count_nonzero([np.abs(np.asarray(d)).sum() for d in deltas]) >= 2  # the sum is not one update alone
    np.testing.assert_allclose(np.asarray(batched["params"]["w"][0]), np.asarray(state["params"]["w"] + sum(deltas)), atol=1e-6)
    assert ndcg.shape == (1, 4)
    chained, _, _ = run_block(method, user, 4, 4, tables, x, lists, jax.tree.map(lambda a: a[None], state), key[None], 1)
    assert not np.allclose(np.asarray(chained["params"]["w"][0]), np.asarray(batched["params"]["w"][0]))


@pytest.mark.parametrize("scale", [0.5, 3.0, 20.0])
def test_pdgd_swap_weights_are_the_plackett_luce_probabilities_of_the_swapped_rankings(scale):
    """rho for every pair of shown ranks, from the changed denominators alone, equals
    P(R*) / (P(R) + P(R*)) with both rankings scored whole by display.log_prob (the definition),
    padding and short lists included, peaked policies (scale 20) too."""
    from ultr.online.methods.pdgd import swap_weights
    rng = np.random.default_rng(int(scale * 10))
    width, k = 16, 6  # one shape: eager JAX compiles per shape; short lists come from the mask
    lists, each = [], []
    for trial in range(20):
        s = jnp.asarray(rng.standard_normal(width) * scale, jnp.float32)
        mask = jnp.asarray(rng.random(width) < rng.choice([0.15, 0.7])).at[0].set(True)
        slots, valid = plackett_luce(jax.random.key(trial), s, mask, k)
        rho = np.asarray(swap_weights(s, mask, slots, valid))
        lists.append((s, mask, slots, valid))
        each.append(rho)
        order = np.asarray(slots)
        swapped = np.broadcast_to(order, (k, k, k)).copy()  # [i, j] -> the ranking with ranks i and j swapped
        for i in range(k):
            for j in range(k):
                swapped[i, j, i], swapped[i, j, j] = order[j], order[i]
        log_ratio = np.asarray(log_prob(s, mask, slots, valid) - log_prob(s, mask, jnp.asarray(swapped), valid))
        for i in range(k):
            for j in range(k):
                if i != j and valid[i] and valid[j]:
                    expected = 1.0 / (1.0 + math.exp(min(float(log_ratio[i, j]), 80.0)))
                    assert rho[i, j] == pytest.approx(expected, abs=2e-5), (trial, i, j)
    batched = swap_weights(*(jnp.stack(a) for a in zip(*lists)))  # the batched form (online.batch > 1): the same per list
    np.testing.assert_allclose(np.asarray(batched), np.stack(each), atol=1e-6)


def test_online_ndcg_of_a_shown_list_by_hand():
    """Grades [0, 2, 1] and a padding slot, k = 2: ideal DCG = 3/log2(2) + 1/log2(3) = 3.6309; showing
    ranks (0, 1) gives 3/log2(3) = 1.8928, nDCG 0.5213; a query with no relevant candidate is NaN."""
    from ultr.online.feed import Lists
    from ultr.online.loop import ideal_dcg, shown_ndcg
    lists = Lists(jnp.array([[0, 1, 2, 3], [4, 5, 6, 7]]), jnp.array([[0, 2, 1, 4], [0, 0, 0, 0]]),
                  jnp.array([[True, True, True, False], [True, True, True, True]]))
    ideal = ideal_dcg(lists, 2)
    np.testing.assert_allclose(np.asarray(ideal), [3 + 1 / math.log2(3), 0.0], rtol=1e-6)
    got = shown_ndcg(lists.label[0], jnp.array([0, 1]), jnp.array([True, True]), ideal[0])
    assert float(got) == pytest.approx((3 / math.log2(3)) / (3 + 1 / math.log2(3)), rel=1e-6)
    assert math.isnan(float(shown_ndcg(lists.label[1], jnp.array([0, 1]), jnp.array([True, True]), ideal[1])))


def test_pdgd_weights_stay_finite_when_the_lower_ranks_underflow():
    """Scores 100 apart: every document below the top has mass e^-100, which float32 cannot hold, so
    the swap factors of the lower ranks are 0 / 0 unless the masses are floored at a normal number
    (a subnormal floor is flushed to zero on CPU). The weights stay in [0, 1], the top pair's rho is
    ~0 (swapping the top document is all but impossible), and the update is finite."""
    from ultr.online.methods.pdgd import rank_coefficients, swap_weights
    s, mask = jnp.array([100.0, 0.0, -1.0, -3.0]), jnp.ones(4, bool)
    slots, valid = jnp.arange(4), jnp.ones(4, bool)
    clicks = jnp.array([0.0, 0.0, 0.0, 1.0])
    for rho in (swap_weights(s, mask, slots, valid), swap_weights(s[None], mask[None], slots[None], valid[None])[0]):
        rho = np.asarray(rho)
        assert np.isfinite(rho).all() and (rho >= 0).all() and (rho <= 1).all(), rho
        assert rho[0, 1] < 1e-30 and rho[1, 0] < 1e-30
    coef = np.asarray(rank_coefficients(s, mask, slots, valid, clicks))
    assert np.isfinite(coef).all() and coef[3] > 0, coef
