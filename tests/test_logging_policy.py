"""The stochastic logging policy: exact Plackett-Luce top-k samples, checked against the closed
form of the first two positions, and its place in the simulation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ultr.data.letor import ingest_letor, read_features
from ultr.errors import DataError
from ultr.click_models.simulator import make_click_model
from ultr.simulation.logging_policy import PlackettLuce, rank_candidates, top_k_lists
from ultr.simulation.simulate import simulate_sessions


def pl_probabilities(scores: np.ndarray, temperature: float, std: float) -> np.ndarray:
    w = np.exp(scores / (temperature * std))
    return w / w.sum()


def test_first_two_positions_match_the_closed_form():
    scores = np.array([2.0, 1.0, 0.5, -1.0])
    c = rank_candidates(np.zeros(4, int), scores)
    pl = PlackettLuce(c, temperature=0.7)
    n = 200_000
    lists = pl.sample(np.zeros(n, int), 3, np.random.default_rng(0))
    p = pl_probabilities(scores, 0.7, scores.std())
    first = np.bincount(lists[:, 0], minlength=4) / n
    np.testing.assert_allclose(first, p, atol=4 * np.sqrt(p * (1 - p) / n).max())
    # P(second = j | first = i) = p_j / (1 - p_i): the without-replacement step
    both = lists[:, 0] == 0
    second = np.bincount(lists[both, 1], minlength=4) / both.sum()
    expect = np.where(np.arange(4) == 0, 0, p / (1 - p[0]))
    np.testing.assert_allclose(second, expect, atol=0.01)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=6), k=st.integers(1, 8),
       temperature=st.floats(0.01, 50), seed=st.integers(0, 2**16))
def test_lists_are_permutations_of_the_query_candidates(sizes, k, temperature, seed):
    rng = np.random.default_rng(seed)
    qids = np.repeat(np.arange(len(sizes)), sizes)
    c = rank_candidates(qids, rng.normal(size=len(qids)))
    q = rng.integers(0, len(sizes), size=500)
    lists = PlackettLuce(c, temperature).sample(q, k, rng)
    for row, query in zip(lists, q):
        shown = row[row >= 0]
        assert len(shown) == min(k, sizes[query]) and (row[len(shown):] == -1).all()
        assert len(set(shown.tolist())) == len(shown)  # without replacement
        assert (qids[shown] == query).all()


def test_low_temperature_is_the_deterministic_ranking():
    rng = np.random.default_rng(1)
    qids = np.repeat(np.arange(5), 8)
    scores = rng.normal(size=40)
    _, top, _ = top_k_lists(qids, scores, 4)
    lists = PlackettLuce(rank_candidates(qids, scores), temperature=1e-4).sample(np.arange(5), 4, rng)
    np.testing.assert_array_equal(lists, top)
    with pytest.raises(ValueError, match="temperature"):
        PlackettLuce(rank_candidates(qids, scores), temperature=0.0)


@pytest.fixture
def features(tmp_path):
    rng = np.random.default_rng(0)
    lines = [f"{rng.integers(0, 3)} qid:{q} " + " ".join(f"{j}:{rng.normal():.4f}" for j in range(1, 4))
             for q in range(30) for _ in range(rng.integers(3, 12))]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    ingest_letor({"train": tmp_path / "train.txt"}, tmp_path / "f.parquet", num_features=3)
    return read_features(tmp_path / "f.parquet")


def test_simulation_with_plackett_luce_spreads_documents_over_positions(features):
    kw = dict(sessions=4000, list_size=5, seed=3, policy_min_queries=3)
    det = simulate_sessions(features, make_click_model("pbm", y_max=2), **kw)
    pl = simulate_sessions(features, make_click_model("pbm", y_max=2), logging="plackett_luce", temperature=1.0, **kw)
    again = simulate_sessions(features, make_click_model("pbm", y_max=2), logging="plackett_luce", temperature=1.0, **kw)
    np.testing.assert_array_equal(pl.shown, again.shown)  # seeded
    np.testing.assert_array_equal(pl.clicks, again.clicks)

    def positions_per_doc(log):
        shown = log.session_lists()
        pos = np.broadcast_to(np.arange(shown.shape[1]), shown.shape)
        pairs = np.unique(np.stack([shown[shown >= 0], pos[shown >= 0]]), axis=1)
        return np.bincount(pairs[0])

    assert positions_per_doc(det).max() == 1  # one ranking per query
    assert (positions_per_doc(pl) > 1).mean() > 0.5
    # the same sessions (queries) either way: the policy draws come after the query draws
    np.testing.assert_array_equal(det.session_query, pl.session_query)
    with pytest.raises(DataError, match="simulation.logging='random' is unknown"):
        simulate_sessions(features, make_click_model("pbm", y_max=2), logging="random", **kw)
