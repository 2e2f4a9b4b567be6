"""User browsing model (Dupret and Piwowarski, SIGIR 2008): examination depends on the rank k and
the distance d to the last click above (d = k when there is none): P(C_k = 1 | clicks above) =
gamma_{k,d} alpha_qd. The marginal sums over where the last click was (K^2 work per session)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ultr.click_models.base import ClickModel, PairTable, probs


def distance_to_last_click(click: jax.Array) -> jax.Array:
    """[B, K] clicks -> d [B, K]: rank minus the rank of the last click above (rank itself if none)."""
    rank = jnp.arange(1, click.shape[1] + 1)[None, :]
    last = lax.cummax(jnp.where(click > 0, rank, 0), axis=1)
    last_above = jnp.concatenate([jnp.zeros_like(last[:, :1]), last[:, :-1]], axis=1)
    return rank - last_above


class UBM(ClickModel):
    key = "ubm"
    paper = "Dupret and Piwowarski, SIGIR 2008"

    def setup(self) -> None:
        self.attraction = PairTable(self.rows, self.pair_init)
        # gamma[k-1, d-1]; entries with d > k never occur
        self.examination = self.param("examination", nn.initializers.zeros, (self.positions, self.positions))

    def conditional(self, rows: jax.Array, click: jax.Array, mask: jax.Array) -> jax.Array:
        K = rows.shape[1]
        gamma = probs(self.examination)
        exam = gamma[jnp.arange(K)[None, :], distance_to_last_click(click) - 1]
        return exam * self.attraction(rows) * mask

    def marginal(self, rows: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        a, gamma = self.attraction(rows) * mask, probs(self.examination)
        B, K = rows.shape
        # last[:, j]: P(the last click so far is at rank j), j = 0 meaning no click yet
        last = jnp.zeros((B, K + 1)).at[:, 0].set(1.0)
        clicks, exams = [], []
        for k in range(K):
            # gamma_{k+1, d} for every possible last click j <= k: d = k + 1 - j
            g = jnp.concatenate([gamma[k, k - jnp.arange(k + 1)], jnp.zeros(K - k)])[None, :]
            exam = (last * g).sum(axis=1)
            click_from = last * g * a[:, k : k + 1]
            last = (last - click_from).at[:, k + 1].set(click_from.sum(axis=1))
            clicks.append(exam * a[:, k])
            exams.append(exam)
        return jnp.stack(clicks, axis=1), jnp.stack(exams, axis=1)

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
