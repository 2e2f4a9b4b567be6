"""User browsing model (Dupret and Piwowarski, SIGIR 2008): examination depends on the rank k and
the distance d to the last click above (d = k when there is none): P(C_k = 1 | clicks above) =
gamma_{k,d} alpha_qd. The marginal sums over where the last click was (K^2 work per session).
Simulation: gamma_{k,d} = theta_k^eta decay^(d-1), or a fit's table ** eta."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ultr.click_models.base import ClickModel, graded, theta_curve


def distance_to_last_click(click: jax.Array) -> jax.Array:
    """[B, K] clicks -> d [B, K]: rank minus the rank of the last click above (rank itself if none)."""
    rank = jnp.arange(1, click.shape[1] + 1)[None, :]
    last = lax.cummax(jnp.where(click > 0, rank, 0), axis=1)
    last_above = jnp.concatenate([jnp.zeros_like(last[:, :1]), last[:, :-1]], axis=1)
    return rank - last_above


class UBM(ClickModel):
    key = "ubm"
    paper = "Dupret and Piwowarski, SIGIR 2008"
    settings = {"eta": 1.0, "decay": 0.9, "eps_neg": 0.1, "eps_pos": 1.0, "curve": "eye_tracking",
                "table": None}  # table: gamma[k-1][d-1] (a fit's), replaces curve and decay

    @classmethod
    def globals(cls, K):
        return {"examination": ((K, K), 0.0)}  # gamma[k-1, d-1]; entries with d > k never occur

    @classmethod
    def conditional(cls, p, click, mask):
        K = mask.shape[1]
        exam = p["examination"][jnp.arange(K)[None, :], distance_to_last_click(click) - 1]
        return exam * p["attraction"] * mask

    @classmethod
    def steps(cls, p, mask):
        a, gamma = p["attraction"] * mask, p["examination"]
        # state: the rank of the last click above (0: none), so d - 1 = k - last at slot k
        return (jnp.zeros(mask.shape[:1], jnp.int32), lambda k, last: gamma[k, k - last] * a[:, k],
                lambda k, last, c: jnp.where(c > 0, k + 1, last))

    @classmethod
    def marginal(cls, p, mask):
        a, gamma = p["attraction"] * mask, p["examination"]
        B, K = mask.shape
        # last[:, j]: P(the last click so far is at rank j), j = 0 meaning no click yet
        last = jnp.zeros((B, K + 1), a.dtype).at[:, 0].set(1.0)
        clicks, exams = [], []
        for k in range(K):
            # gamma_{k+1, d} for every possible last click j <= k: d = k + 1 - j
            g = jnp.concatenate([gamma[k, k - jnp.arange(k + 1)], jnp.zeros(K - k, gamma.dtype)])[None, :]
            exam = (last * g).sum(axis=1)
            click_from = last * g * a[:, k : k + 1]
            last = (last - click_from).at[:, k + 1].set(click_from.sum(axis=1))
            clicks.append(exam * a[:, k])
            exams.append(exam)
        return jnp.stack(clicks, axis=1), jnp.stack(exams, axis=1)

    @classmethod
    def simulation_params(cls, s, labels, K):
        if s["table"] is None:
            d = np.arange(1, K + 1)[None, :]
            table = theta_curve(K, s["curve"], s["eta"])[:, None] * float(s["decay"]) ** (d - 1)
        else:
            t = np.asarray(s["table"], np.float64)
            rows, cols = np.minimum(np.arange(K), t.shape[0] - 1), np.minimum(np.arange(K), t.shape[1] - 1)
            table = t[rows][:, cols] ** float(s["eta"])
        return {"attraction": graded(labels, s["y_max"], s["eps_neg"], s["eps_pos"]), "examination": table}

    @staticmethod
    def replay(params):
        return {"name": "ubm", "table": jax.nn.sigmoid(params["examination"])}

    @staticmethod
    def em_keys(click):
        K = click.shape[1]
        return np.arange(K)[None, :] * K + np.asarray(distance_to_last_click(click)) - 1

    @staticmethod
    def em_examination(e, K):
        return e.reshape(K, K)
