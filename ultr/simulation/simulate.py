"""Simulate a click log on a labelled features table with the field's standard protocol:
logging policy -> top-K lists -> sessions of uniformly drawn training queries -> click model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ultr.data.clicklog import ClickLogBlock, write_click_log
from ultr.data.io import write_json
from ultr.data.letor import FeatureTable
from ultr.errors import DataError
from ultr.click_models.simulator import Simulator as ClickModel
from ultr.simulation.logging_policy import Candidates, LinearPolicy, PlackettLuce, fit_linear_policy, rank_candidates


@dataclass
class SimulatedLog:
    query_ids: np.ndarray  # object [L]: the query of each displayed list
    displayed: np.ndarray  # int32 [L, K]: each list's policy top-K, -1 = padding (L = policies x queries)
    session_query: np.ndarray  # int64 [N]: index into query_ids per session
    clicks: np.ndarray  # int8 [N, K]
    policy_queries: list[str]
    shown: np.ndarray | None = None  # int32 [N, K]: each session's own list under a stochastic policy

    def session_lists(self, rows: slice = slice(None)) -> np.ndarray:
        """Features-table rows [n, K] that sessions `rows` saw (-1 = padding)."""
        return self.shown[rows] if self.shown is not None else self.displayed[self.session_query[rows]]


LOGGING = ("deterministic", "plackett_luce")
CHUNK_SESSIONS = 1 << 20  # sessions per block: bounds memory whatever simulation.sessions is


def simulate_sessions(
    features: FeatureTable,
    click_model: ClickModel,
    *,
    sessions: int,
    list_size: int = 10,
    seed: int = 0,
    policy_fraction: float = 0.01,
    policy_min_queries: int = 5,
    logging_policies: int = 1,
    split: str = "train",
    logging: str = "deterministic",
    temperature: float = 1.0,
    progress: Callable[[int], None] | None = None,
    session_split: str | None = None,
    stream: int = 1,
) -> SimulatedLog:
    """Vectorised over sessions and positions, in blocks of CHUNK_SESSIONS; the same seed gives
    the same log. `progress(n)` is told each block's session count.

    `logging_policies > 1` fits that many policies on different random query subsets and lets each
    session draw one: the same document then appears at different positions across sessions, the
    natural interventions that harvesting estimators need (Agarwal et al. 2019). The standard
    protocol is one deterministic policy; `logging="plackett_luce"` samples each session's list
    from the policy's scores instead (see PlackettLuce).

    The policy is fitted on `split`'s queries and shows sessions on `session_split`'s (default the
    same). `stream` picks the child of `seed` that draws sessions and clicks (1: the training log);
    another stream gives an independent log under the same policy: held-out sessions."""
    if list_size < 1 or sessions < 1:
        raise DataError(f"simulation.list_size={list_size}, simulation.sessions={sessions}: both must be >= 1")
    if logging not in LOGGING:
        raise DataError(f"simulation.logging={logging!r} is unknown; use one of {list(LOGGING)}")
    # Separate streams for the policy and the clicks, so changing `sessions` keeps the policy.
    seeds = np.random.SeedSequence(seed).spawn(max(2, stream + 1))
    policy_rng, session_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[stream])
    rows = features.rows(split)
    shown_rows = rows if session_split in (None, split) else features.rows(session_split)
    policies = [_fit_policy(features, rows, shown_rows, policy_fraction, policy_min_queries, policy_rng)
                for _ in range(max(1, logging_policies))]
    uq = policies[0][1].query_ids
    lists = [ranked.top_k(list_size) for _, ranked in policies]
    samplers = [PlackettLuce(ranked, temperature) for _, ranked in policies] if logging == "plackett_luce" else []
    policy_queries = [q for policy, _ in policies for q in policy.train_queries]
    displayed = np.concatenate(lists)  # [P * Q, K]: list i*Q + q is policy i's list for query q
    q = session_rng.integers(0, len(uq), size=sessions)
    if len(lists) > 1:
        q = q + len(uq) * session_rng.integers(0, len(lists), size=sessions)
    log = SimulatedLog(np.tile(uq, len(lists)), displayed, q, np.zeros((sessions, list_size), np.int8), policy_queries,
                       np.full((sessions, list_size), -1, np.int32) if samplers else None)
    for lo in range(0, sessions, CHUNK_SESSIONS):
        block = slice(lo, min(sessions, lo + CHUNK_SESSIONS))
        if samplers:
            _sample_lists(log, samplers, len(uq), block, list_size, session_rng)
        shown = log.session_lists(block)
        m = shown >= 0
        labels = np.where(m, features.labels[np.maximum(shown, 0)], 0)
        log.clicks[block] = click_model.sample(labels, m, session_rng)
        if progress is not None:
            progress(block.stop - block.start)
    return log


def _fit_policy(features: FeatureTable, rows: np.ndarray, shown_rows: np.ndarray, fraction: float, min_queries: int,
                rng: np.random.Generator) -> tuple[LinearPolicy, Candidates]:
    """One logging policy fitted on `rows`' queries, and every `shown_rows` query's candidates in
    its order (as features-table rows)."""
    policy = fit_linear_policy(features.features, features.labels, features.query_ids,
                               fraction=fraction, min_queries=min_queries, rng=rng, rows=rows)
    ranked = rank_candidates(features.query_ids[shown_rows], policy.score(features.features, shown_rows))
    ranked.rows = shown_rows[ranked.rows]
    return policy, ranked


def _sample_lists(log: SimulatedLog, samplers: list, num_queries: int, block: slice, k: int, rng: np.random.Generator) -> None:
    q = log.session_query[block]
    policy, query = np.divmod(q, num_queries)
    for i, sampler in enumerate(samplers):
        sel = policy == i
        if sel.any():
            log.shown[block][sel] = sampler.sample(query[sel], k, rng)


def randomized_propensity(features: FeatureTable, click_model: ClickModel, *, sessions: int, list_size: int, seed: int,
                          policy_fraction: float, policy_min_queries: int) -> np.ndarray:
    """Propensities from a simulated result-randomisation experiment (RandTop-K; Joachims et al.
    2017): each session shows the logging policy's top K in a uniformly random order, so relevance
    is independent of position and CTR_k / CTR_1 estimates p_k / p_1."""
    log = simulate_sessions(features, click_model, sessions=1, list_size=list_size, seed=seed,
                            policy_fraction=policy_fraction, policy_min_queries=policy_min_queries)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    q = rng.integers(0, len(log.query_ids), size=sessions)
    shown = log.displayed[q]
    # Shuffle valid items among the valid slots of each list (padding stays at the end).
    keys = np.where(shown >= 0, rng.random(shown.shape), 2.0)
    shown = np.take_along_axis(shown, np.argsort(keys, axis=1), axis=1)
    mask = shown >= 0
    labels = np.where(mask, features.labels[np.maximum(shown, 0)], 0)
    clicks = click_model.sample(labels, mask, rng)
    ctr = clicks.sum(axis=0) / np.maximum(mask.sum(axis=0), 1)
    return ctr / ctr[0]


def write_simulated_log(log: SimulatedLog, features: FeatureTable, path: str | Path) -> int:
    """One row per displayed impression, written in blocks of sessions; returns the rows written."""
    def blocks():
        n = len(log.session_query)
        for lo in range(0, n, CHUNK_SESSIONS):
            block = slice(lo, min(n, lo + CHUNK_SESSIONS))
            shown = log.session_lists(block)
            m = shown >= 0
            b, k = shown.shape
            yield ClickLogBlock(
                session_id=np.broadcast_to(np.arange(lo, lo + b, dtype=np.int64)[:, None], (b, k))[m],
                query_index=np.broadcast_to(log.session_query[block][:, None], (b, k))[m],
                doc_index=shown[m],
                position=np.broadcast_to(np.arange(1, k + 1, dtype=np.int16), (b, k))[m],
                click=log.clicks[block][m],
            )

    return write_click_log(path, query_ids=log.query_ids, doc_ids=features.doc_ids, blocks=blocks())


def true_propensities(click_model: ClickModel, log: SimulatedLog, features: FeatureTable) -> dict[str, Any]:
    """Marginal examination per position over the simulated sessions (for PBM-like models this is
    the model's curve; for cascade-type models it depends on the lists shown), relative to position 1.
    Trust-bias models add the affine (alpha, beta) per position."""
    k = log.clicks.shape[1]
    exam, shown_at = np.zeros(k), np.zeros(k)
    for lo in range(0, len(log.session_query), CHUNK_SESSIONS):
        shown = log.session_lists(slice(lo, lo + CHUNK_SESSIONS))
        mask = shown >= 0
        labels = np.where(mask, features.labels[np.maximum(shown, 0)], 0)
        exam += click_model.examination_probability(labels, mask).sum(axis=0)
        shown_at += mask.sum(axis=0)
    exam = exam / np.maximum(shown_at, 1)
    out: dict[str, Any] = {
        "positions": list(range(1, k + 1)),
        "examination": [float(v) for v in exam],
        "relative": [float(v) for v in exam / exam[0]],
    }
    if click_model.affine(k) is not None:
        alpha, beta = click_model.affine(k)
        out["affine"] = {"alpha": [float(a) for a in alpha], "beta": [float(b) for b in beta]}
    return out


def run_simulation(
    features: FeatureTable,
    click_model: ClickModel,
    out_dir: str | Path,
    *,
    sessions: int,
    list_size: int,
    seed: int,
    policy_fraction: float,
    policy_min_queries: int,
    config: dict[str, Any],
    logging_policies: int = 1,
    logging: str = "deterministic",
    temperature: float = 1.0,
    progress: Callable[[int], None] | None = None,
    session_split: str | None = None,
    stream: int = 1,
) -> dict[str, Any]:
    """Simulate and write `clicks.parquet`, `propensities.json` and `simulation.json` under out_dir."""
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    log = simulate_sessions(
        features, click_model, sessions=sessions, list_size=list_size, seed=seed,
        policy_fraction=policy_fraction, policy_min_queries=policy_min_queries, logging_policies=logging_policies,
        logging=logging, temperature=temperature, progress=progress, session_split=session_split, stream=stream,
    )
    t_sim = time.perf_counter() - t0
    rows = write_simulated_log(log, features, out_dir / "clicks.parquet")
    write_json(true_propensities(click_model, log, features), out_dir / "propensities.json")
    summary = {
        "config": config,
        "features": features.path,
        "sessions": sessions,
        "impressions": rows,
        "clicks": int(log.clicks.sum()),
        "training_queries": int(len(set(log.query_ids.tolist()))),
        "logging_policies": logging_policies,
        "logging": logging,
        **({"temperature": temperature} if logging == "plackett_luce" else {}),
        "policy_queries": log.policy_queries,
        "seconds_simulate": round(t_sim, 3),
        "seconds_total": round(time.perf_counter() - t0, 3),
    }
    write_json(summary, out_dir / "simulation.json")
    return summary
