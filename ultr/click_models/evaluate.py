"""Click likelihood on held-out sessions, as the field defines it (Chuklin, Markov and de Rijke,
"Click Models for Web Search", 2015, ch. 4; the same definitions as PyClick and CLAX):

  log-likelihood          LL = (1 / N) sum_{s, k} log P(C_sk = c_sk | c_s1..c_s,k-1), the mean over the
                          N shown (session, rank) slots of the conditional click log-probability (natural log);
                          session_log_likelihood is the same sum divided by the number of sessions
  perplexity at rank k    p_k = 2 ** -( (1 / |S_k|) sum_s log2 P(C_sk = c_sk) ), with the marginal P
                          (nothing observed in the session); perplexity = mean over ranks of p_k
  conditional perplexity  the same with P(C_sk = c_sk | clicks above), the probability the LL uses
  CTR calibration         mean predicted marginal click probability against the observed CTR per rank;
                          calibration_error = mean over ranks of |predicted - observed|

A perplexity of 1 is a perfect prediction, 2 a coin flip. Pairs the training log never showed
(row -1) are answered with the model's prior and counted in `unseen_impressions`."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import bernoulli_ll
from ultr.click_models.module import FitModule as ClickModel
from ultr.click_models.data import SessionLog

SUMS = ("ll", "ll_marginal", "count", "predicted", "clicks")


def eval_step(model: ClickModel) -> Callable[..., dict[str, jax.Array]]:
    @jax.jit
    def sums(params, rows, click, mask):
        c, m = click.astype(jnp.float32), mask.astype(jnp.float32)
        cond = model.apply(params, rows, c, mask)
        marg, _ = model.apply(params, rows, mask, method="marginal")
        return {
            "ll": (bernoulli_ll(cond, c) * m).sum(0), "ll_marginal": (bernoulli_ll(marg, c) * m).sum(0),
            "count": m.sum(0), "predicted": (marg * m).sum(0), "clicks": (c * m).sum(0),
            "unseen": jnp.sum((rows < 0) & mask),
        }
    return sums


def accumulate(step: Callable[..., Any], params: Any, log: SessionLog, batch_size: int) -> dict[str, np.ndarray]:
    total: dict[str, np.ndarray] = {}
    for rows, click, mask in log.batches(batch_size):
        for k, v in step(params, rows, click, mask).items():
            total[k] = total.get(k, 0) + np.asarray(v, np.float64)
    total["sessions"] = np.float64(len(log))
    return total


def mean_ll(total: dict[str, np.ndarray]) -> float:
    return float(total["ll"].sum() / max(total["count"].sum(), 1.0))


def metrics(total: dict[str, np.ndarray]) -> dict[str, Any]:
    seen = total["count"] > 0
    count = np.maximum(total["count"], 1.0)
    ppl_at = np.exp2(-total["ll_marginal"] / np.log(2) / count)
    cond_at = np.exp2(-total["ll"] / np.log(2) / count)
    predicted, observed = total["predicted"] / count, total["clicks"] / count
    return {
        "log_likelihood": mean_ll(total),
        "session_log_likelihood": float(total["ll"].sum() / max(total["sessions"], 1.0)),
        "perplexity": float(ppl_at[seen].mean()),
        "perplexity_at": [float(x) for x in ppl_at[seen]],
        "conditional_perplexity": float(cond_at[seen].mean()),
        "conditional_perplexity_at": [float(x) for x in cond_at[seen]],
        "ctr_observed_at": [float(x) for x in observed[seen]],
        "ctr_predicted_at": [float(x) for x in predicted[seen]],
        "calibration_error": float(np.abs(predicted - observed)[seen].mean()),
        "sessions": int(total["sessions"]),
        "impressions": int(total["count"].sum()),
        "unseen_impressions": int(total["unseen"]),
    }


def evaluate(model: ClickModel, params: Any, log: SessionLog, batch_size: int = 8192) -> dict[str, Any]:
    return metrics(accumulate(eval_step(model), params, log, batch_size))
