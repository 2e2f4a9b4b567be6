"""Dependent click model (Guo, Liu, Wang, WSDM 2009): cascade, but after a click at rank k the
user goes on with probability lambda_k; after a skip always.
  P(E_{k+1} | click at k) = lambda_k,  P(E_{k+1} | skip at k) = P(E_k | above) (1 - a_k) / (1 - P(E_k | above) a_k)
  P(E_{k+1}) = P(E_k) (1 - a_k + a_k lambda_k)"""

from __future__ import annotations

import flax.linen as nn
import jax

from ultr.click_models.base import ClickModel, PairTable, chain_examination, probs, shifted_cumprod


class DCM(ClickModel):
    key = "dcm"
    paper = "Guo, Liu and Wang, WSDM 2009"
    chain_loop_from = None  # its scan is faster than its loop at every batch size measured (1,024-8,192)

    def setup(self) -> None:
        self.attraction = PairTable(self.rows, self.pair_init)
        self.continuation = self.param("continuation", nn.initializers.zeros, (self.positions,))

    def marginal(self, rows: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        a, lam = self.attraction(rows) * mask, probs(self.continuation)[None, : rows.shape[1]]
        exam = shifted_cumprod(1.0 - a + a * lam)
        return exam * a, exam

    def conditional(self, rows: jax.Array, click: jax.Array, mask: jax.Array) -> jax.Array:
        a, lam = self.attraction(rows) * mask, probs(self.continuation)
        return chain_examination(a, click, 1.0, lambda k: lam[k], self.chain_loop_from) * a

    @staticmethod
    def replay(params):
        return {"name": "dcm", "lambdas": jax.nn.sigmoid(params["continuation"])}
