"""Dynamic Bayesian network model (Chapelle and Zhang, WWW 2009): a click at rank k satisfies the
user with sigma_qd, an unsatisfied user goes on with gamma (one global parameter).
  P(E_{k+1} | click at k) = gamma (1 - s_k),  P(E_{k+1} | skip at k) = gamma P(E_k | above) (1 - a_k) / (1 - P(E_k | above) a_k)
  P(E_{k+1}) = P(E_k) gamma (1 - a_k s_k)"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from ultr.click_models.base import ClickModel, PairTable, chain_examination, probs, shifted_cumprod
from ultr.click_models.em_dbn import dbn_posteriors


class DBN(ClickModel):
    key = "dbn"
    paper = "Chapelle and Zhang, WWW 2009"
    pair_tables = ("attraction", "satisfaction")
    fixed_continuation: ClassVar[bool] = False

    def setup(self) -> None:
        self.attraction = PairTable(self.rows, self.pair_init)
        self.satisfaction = PairTable(self.rows, self.pair_init)
        if not self.fixed_continuation:
            self.continuation = self.param("continuation", nn.initializers.constant(2.0), ())

    def _gamma(self) -> jax.Array:
        return jnp.ones(()) if self.fixed_continuation else probs(self.continuation)

    def marginal(self, rows: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        a, s = self.attraction(rows) * mask, self.satisfaction(rows)
        exam = shifted_cumprod(self._gamma() * (1.0 - a * s))
        return exam * a, exam

    def conditional(self, rows: jax.Array, click: jax.Array, mask: jax.Array) -> jax.Array:
        a, s, gamma = self.attraction(rows) * mask, self.satisfaction(rows), self._gamma()
        return chain_examination(a, click, gamma, lambda k: gamma * (1.0 - s[:, k]), self.chain_loop_from) * a

    em_posteriors = staticmethod(dbn_posteriors)

    @staticmethod
    def replay(params):
        gamma = jax.nn.sigmoid(params["continuation"]) if "continuation" in params else 1.0
        return {"name": "dbn", "gamma": gamma}
