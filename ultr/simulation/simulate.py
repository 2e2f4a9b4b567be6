"""Simulate a click log on a labelled features table with the field's standard protocol:
logging policy -> top-K lists -> sessions of uniformly drawn training queries -> click model."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ultr.data.clicklog import write_click_log
from ultr.data.io import write_json
from ultr.data.letor import FeatureTable
from ultr.simulation.click_models import ClickModel
from ultr.simulation.logging_policy import fit_linear_policy, top_k_lists


@dataclass
class SimulatedLog:
    query_ids: np.ndarray  # object [Q]: the training queries, in list order
    displayed: np.ndarray  # int32 [Q, K]: features-table rows shown, -1 = padding
    session_query: np.ndarray  # int64 [N]: index into query_ids per session
    clicks: np.ndarray  # int8 [N, K]
    policy_queries: list[str]


def simulate_sessions(
    features: FeatureTable,
    click_model: ClickModel,
    *,
    sessions: int,
    list_size: int = 10,
    seed: int = 0,
    policy_fraction: float = 0.01,
    policy_min_queries: int = 5,
    split: str = "train",
) -> SimulatedLog:
    """Vectorised over sessions and positions; the same seed gives the same log."""
    # Separate streams for the policy and the clicks, so changing `sessions` keeps the policy.
    policy_rng, session_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    rows = features.rows(split)
    policy = fit_linear_policy(
        features.features[rows], features.labels[rows], features.query_ids[rows],
        fraction=policy_fraction, min_queries=policy_min_queries, rng=policy_rng,
    )
    uq, local, mask = top_k_lists(features.query_ids[rows], policy.score(features.features[rows]), list_size)
    displayed = np.where(mask, rows[np.maximum(local, 0)], -1).astype(np.int32)
    q = session_rng.integers(0, len(uq), size=sessions)
    shown = displayed[q]
    m = shown >= 0
    labels = np.where(m, features.labels[np.maximum(shown, 0)], 0)
    positions = np.broadcast_to(np.arange(1, list_size + 1), shown.shape)
    clicks = click_model.sample(labels, positions, m, session_rng)
    return SimulatedLog(uq, displayed, q, clicks, policy.train_queries)


def write_simulated_log(log: SimulatedLog, features: FeatureTable, path: str | Path) -> int:
    """One row per displayed impression; returns the number of rows written."""
    shown = log.displayed[log.session_query]
    m = shown >= 0
    n, k = shown.shape
    session_id = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], (n, k))[m]
    position = np.broadcast_to(np.arange(1, k + 1, dtype=np.int16), (n, k))[m]
    query_index = np.broadcast_to(log.session_query[:, None], (n, k))[m]
    write_click_log(
        path,
        session_id=session_id,
        query_ids=log.query_ids,
        query_index=query_index,
        doc_ids=features.doc_ids,
        doc_index=shown[m],
        position=position,
        click=log.clicks[m],
    )
    return int(m.sum())


def true_propensities(click_model: ClickModel, list_size: int) -> dict[str, Any]:
    positions = np.arange(1, list_size + 1)
    exam = click_model.examination(positions)
    return {
        "positions": positions.tolist(),
        "examination": [float(v) for v in exam],
        "relative": [float(v) for v in exam / exam[0]],
    }


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
) -> dict[str, Any]:
    """Simulate and write `clicks.parquet`, `propensities.json` and `simulation.json` under out_dir."""
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    log = simulate_sessions(
        features, click_model, sessions=sessions, list_size=list_size, seed=seed,
        policy_fraction=policy_fraction, policy_min_queries=policy_min_queries,
    )
    t_sim = time.perf_counter() - t0
    rows = write_simulated_log(log, features, out_dir / "clicks.parquet")
    write_json(true_propensities(click_model, list_size), out_dir / "propensities.json")
    summary = {
        "config": config,
        "features": features.path,
        "sessions": sessions,
        "impressions": rows,
        "clicks": int(log.clicks.sum()),
        "training_queries": int(len(log.query_ids)),
        "policy_queries": log.policy_queries,
        "seconds_simulate": round(t_sim, 3),
        "seconds_total": round(time.perf_counter() - t0, 3),
    }
    write_json(summary, out_dir / "simulation.json")
    return summary
