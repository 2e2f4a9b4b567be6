"""Click chain model (Guo et al., WWW 2009): after a skip the user goes on with tau_1; after a
click on a result of relevance a with tau_2 (1 - a) + tau_3 a. Attraction is the relevance a.
  P(E_{k+1} | click at k) = tau_2 (1 - a_k) + tau_3 a_k,  P(E_{k+1} | skip at k) = tau_1 P(E_k | above) (1 - a_k) / (1 - P(E_k | above) a_k)
  P(E_{k+1}) = P(E_k) [(1 - a_k) tau_1 + a_k (tau_2 (1 - a_k) + tau_3 a_k)]"""

from __future__ import annotations

import flax.linen as nn
import jax

from ultr.click_models.base import ClickModel, PairTable, chain_examination, probs, shifted_cumprod


class CCM(ClickModel):
    key = "ccm"
    paper = "Guo et al., WWW 2009"
    pair_init = 1.0
    chain_loop_from = 1024  # its loop is faster than its scan from the smallest batch measured

    def setup(self) -> None:
        self.attraction = PairTable(self.rows, self.pair_init)
        self.tau = self.param("tau", nn.initializers.zeros, (3,))  # chosen with pair_init

    def marginal(self, rows: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        a, (t1, t2, t3) = self.attraction(rows) * mask, probs(self.tau)
        exam = shifted_cumprod((1.0 - a) * t1 + a * (t2 * (1.0 - a) + t3 * a))
        return exam * a, exam

    def conditional(self, rows: jax.Array, click: jax.Array, mask: jax.Array) -> jax.Array:
        a, (t1, t2, t3) = self.attraction(rows) * mask, probs(self.tau)
        return chain_examination(a, click, t1, lambda k: t2 * (1.0 - a[:, k]) + t3 * a[:, k], self.chain_loop_from) * a

    @staticmethod
    def replay(params):
        return {"name": "ccm", "tau": jax.nn.sigmoid(params["tau"])}
