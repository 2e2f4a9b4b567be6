"""What early stopping and the selection among runs read: a per-query validation score.

`LabelValidation`: nDCG@10 on the vali split's expert labels (LETOR tables).
`ClickValidation`: a counterfactual estimate (`ultr.evaluation.counterfactual`) on sessions held
out of the training log, for logs without expert labels. `validation_sessions` splits them off:
by query (the default: the held-out queries' documents are never trained on, as a test split's
would not be) or by session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ultr.data.batching import QueryLists, Sessions
from ultr.errors import DataError
from ultr.evaluation.counterfactual import Evidence, MetricSpec, aggregate, gains, metric_specs, query_values
from ultr.metrics import evaluate_scores
from ultr.train.scoring import score_lists, score_rows
from ultr.train.steps import Steps


@dataclass
class LabelValidation:
    lists: QueryLists
    max_label: float
    metric: str = "ndcg@10"
    source: str = "vali split labels"

    @property
    def query_ids(self) -> np.ndarray:
        return self.lists.query_id

    def per_query(self, steps: Steps, params: Any, features: Any) -> tuple[np.ndarray, np.ndarray]:
        scores = score_lists(steps, params, self.lists, features)
        _, per, valid = evaluate_scores(scores, self.lists.label, self.lists.mask, self.max_label)
        return per["ndcg@10"], valid


@dataclass
class ClickValidation:
    evidence: Evidence
    gains: np.ndarray  # [M] estimated gain of each held-out candidate
    spec: MetricSpec
    metric: str  # e.g. clicks_ips_dcg@10: the name it is reported under
    source: str  # what the held-out sessions and the propensities are
    sessions: Sessions  # the held-out sessions, to score them again with another curve

    @property
    def query_ids(self) -> np.ndarray:
        return self.evidence.query_ids

    def per_query(self, steps: Steps, params: Any, features: Any) -> tuple[np.ndarray, np.ndarray]:
        s = score_rows(steps, params, self.evidence.doc, features).astype(np.float64)
        v, valid = query_values(self.evidence, s[None, :], self.gains, self.spec)
        return v[0], valid


Validation = LabelValidation | ClickValidation


def mean_score(values: np.ndarray, valid: np.ndarray) -> float:
    return float(values[valid].mean()) if valid.any() else float("nan")


def take(s: Sessions, keep: np.ndarray) -> Sessions:
    return Sessions(s.session_id[keep], s.query_id[keep], s.doc_index[keep], s.position[keep], s.click[keep], s.mask[keep])


def validation_sessions(sessions: Sessions, fraction: float, by: str, seed: int) -> tuple[Sessions, Sessions]:
    """(training, held-out) sessions: a seeded `fraction` of the queries (or of the sessions)."""
    if not 0 < fraction < 1:
        raise DataError(f"validation.fraction={fraction}: hold out a share in (0, 1) of the training log")
    rng = np.random.default_rng([seed, 7])
    if by == "query":
        uq, inverse = np.unique(sessions.query_id.astype(str), return_inverse=True)
        held_q = rng.random(len(uq)) < fraction
        held = held_q[inverse]
    elif by == "session":
        held = rng.random(len(sessions)) < fraction
    else:
        raise DataError(f"validation.by={by!r}: use query or session")
    if held.all() or not held.any():
        raise DataError(f"validation.fraction={fraction} by {by} leaves {'no' if not held.any() else 'only'} held-out sessions "
                        f"among {len(sessions)}; change the fraction")
    return take(sessions, ~held), take(sessions, held)


def click_validation(held: Sessions, alpha: np.ndarray, cfg: Mapping[str, Any], source: str) -> ClickValidation:
    """The counterfactual `validation.metric` by `validation.estimator` on the held-out sessions."""
    ev = aggregate([(held.query_id, held.doc_index, held.position, held.click, held.mask)], alpha)
    estimator, metric = str(cfg.get("estimator", "ips")), str(cfg.get("metric", "dcg@10"))
    (spec,) = metric_specs([metric], alpha)
    return ClickValidation(ev, gains(ev, estimator), spec, f"clicks_{estimator}_{metric}",
                           f"{len(held)} held-out sessions on {ev.num_queries} queries, {source}", held)
