"""Held-out click likelihood of the learning methods whose towers are a click model (the two-tower
model, REM: `Method.predicts_clicks`). Sessions are simulated on the test split's queries under the
training log's logging policy and click model (an independent random stream), and scored with the
click-model toolkit's definitions (`ultr.click_models.evaluate`: log-likelihood, perplexity per
rank, CTR calibration), next to the generating model's own perplexity on the same sessions: the
floor no fitted model can go below in expectation. DLA's and the other listwise methods' towers
are softmax-normalised over the list, so they give no click probability to score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import P_MAX, P_MIN
from ultr.click_models.evaluate import metrics
from ultr.data.letor import FeatureTable
from ultr.click_models.simulator import click_model_from_config
from ultr.simulation.simulate import simulate_sessions
from ultr.train.steps import Steps

HELDOUT_STREAM = 3  # the seed's child that draws held-out sessions (1: training log, 2: randomisation)
CHUNK = 4096  # sessions per scoring call: one compiled shape, bounded memory
KEPT = ("log_likelihood", "perplexity", "perplexity_at", "calibration_error", "ctr_observed_at", "ctr_predicted_at")


@dataclass
class HeldOutClicks:
    doc_index: np.ndarray  # int32 [N, K]: features-table rows shown, -1 = padding
    clicks: np.ndarray  # int8 [N, K]
    true_probability: np.ndarray  # float64 [N, K]: the generating model's marginal P(click)

    @property
    def mask(self) -> np.ndarray:
        return self.doc_index >= 0


def simulate_heldout(cfg: Mapping[str, Any], features: FeatureTable) -> HeldOutClicks | None:
    """`evaluation.click_sessions` sessions on the test queries; None when off or the log was given
    (`clicks=`: there is no generating model to simulate from)."""
    n = int((cfg.get("evaluation") or {}).get("click_sessions", 0) or 0)
    given = cfg.get("clicks") or (cfg.get("log") or {}).get("path")
    if n <= 0 or given or not (features.splits == "test").any():
        return None
    model = click_model_from_config(cfg["click_model"], features)
    sim = cfg["simulation"]
    log = simulate_sessions(
        features, model, sessions=n, list_size=int(sim["list_size"]), seed=int(cfg["seed"]),
        policy_fraction=float(sim["policy_fraction"]), policy_min_queries=int(sim["policy_min_queries"]),
        logging_policies=int(sim.get("logging_policies", 1)), logging=str(sim.get("logging", "deterministic")),
        temperature=float(sim.get("temperature", 1.0)), session_split="test", stream=HELDOUT_STREAM)
    shown = log.session_lists().astype(np.int32)
    mask = shown >= 0
    labels = np.where(mask, features.labels[np.maximum(shown, 0)], 0)
    truth = model.click_probability(labels, mask)
    return HeldOutClicks(shown, log.clicks, truth.astype(np.float64))


def _sums(p: np.ndarray, clicks: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    """The per-rank sums `evaluate.metrics` reads. Clicks are independent given the towers, so the
    conditional and the marginal log-likelihood are the same sum."""
    c, m = clicks.astype(np.float64), mask.astype(np.float64)
    p = np.clip(p.astype(np.float64), P_MIN, P_MAX)
    ll = (c * np.log(p) + (1.0 - c) * np.log1p(-p)) * m
    return {"ll": ll.sum(0), "ll_marginal": ll.sum(0), "count": m.sum(0), "predicted": (p * m).sum(0),
            "clicks": (c * m).sum(0), "unseen": np.float64(0), "sessions": np.float64(len(c))}


def _scores(p: np.ndarray, held: HeldOutClicks) -> dict[str, Any]:
    return {k: v for k, v in metrics(_sums(p, held.clicks, held.mask)).items() if k in KEPT}


def rank_ctr(held: HeldOutClicks) -> np.ndarray:
    """[N, K]: each slot's probability is the held-out click rate at its rank."""
    m = held.mask
    ctr = (held.clicks * m).sum(0) / np.maximum(m.sum(0), 1)
    return np.where(m, ctr[None, :], 0.0)


def true_model_scores(held: HeldOutClicks) -> dict[str, Any]:
    """The two references a method's score sits between: the generating model's marginal
    perplexity (the floor; its log-likelihood is exact only where its clicks are independent, as
    in PBM, so it is left out), and that of the click rate per rank measured on these sessions
    themselves (the best a model that ignores the documents can do)."""
    truth, ranks = _scores(held.true_probability, held), _scores(rank_ctr(held), held)
    return {"sessions": int(len(held.clicks)), "split": "test",
            "true_model": {k: truth[k] for k in ("perplexity", "perplexity_at")},
            "rank_ctr": {k: ranks[k] for k in ("perplexity", "perplexity_at")}}


def method_click_probability(steps: Steps, state: Any, held: HeldOutClicks, features: Any) -> np.ndarray:
    """The method's P(click) [N, K] on the held-out sessions, scored CHUNK sessions at a time."""
    n, k = held.doc_index.shape
    out = np.zeros((n, k), np.float64)
    positions = jnp.asarray(np.broadcast_to(np.arange(1, k + 1, dtype=np.int32), (CHUNK, k)))
    for lo in range(0, n, CHUNK):
        block = np.zeros((CHUNK, k), np.int32)
        rows = np.maximum(held.doc_index[lo : lo + CHUNK], 0)
        block[: len(rows)] = rows
        p = steps.click_probability(state.ranker, state.propensity, jnp.asarray(block), positions, features)
        out[lo : lo + len(rows)] = np.asarray(p, np.float64)[: len(rows)]
    return np.where(held.mask, out, 0.0)


def method_scores(steps: Steps, state: Any, held: HeldOutClicks, features: Any) -> dict[str, Any]:
    return _scores(method_click_probability(steps, state, held, features), held)


def heldout_lines(results: Mapping[str, Any], heldout: Mapping[str, Any] | None) -> list[str]:
    """The report's line on held-out click perplexity, or none."""
    if heldout is None:
        return []
    scored = {m: r["click_likelihood"]["perplexity"] for m, r in results.items() if "click_likelihood" in r}
    if not scored:
        return []
    parts = ", ".join(f"{m} {v:.4f}" for m, v in scored.items())
    return [f"held-out click perplexity on {heldout['sessions']} test-query sessions: {parts} "
            f"(generating model {heldout['true_model']['perplexity']:.4f}, click rate per rank "
            f"{heldout['rank_ctr']['perplexity']:.4f}; softmax towers such as DLA's give no P(click))"]
