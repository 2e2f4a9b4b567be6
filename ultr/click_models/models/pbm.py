"""Position-based model (Craswell et al., WSDM 2008; Chuklin et al. 2015, sec. 3.3):
P(C_k = 1) = gamma_k alpha_qd, examination and attraction independent, clicks independent."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import ClickModel, PairTable, probs


class PBM(ClickModel):
    key = "pbm"
    paper = "Craswell et al., WSDM 2008"
    pair_init = 1.0

    def setup(self) -> None:
        self.attraction = PairTable(self.rows, self.pair_init)
        self.examination = self.param("examination", nn.initializers.zeros, (self.positions,))

    def marginal(self, rows: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        exam = jnp.broadcast_to(probs(self.examination)[None, : rows.shape[1]], rows.shape)
        return exam * self.attraction(rows) * mask, exam

    def conditional(self, rows: jax.Array, click: jax.Array, mask: jax.Array) -> jax.Array:
        return self.marginal(rows, mask)[0]  # clicks are independent given the pair and the rank

    @staticmethod
    def replay(params):
        return {"name": "pbm", "theta": jax.nn.sigmoid(params["examination"])}

    @staticmethod
    def em_keys(click):
        return np.broadcast_to(np.arange(click.shape[1]), click.shape)

    @staticmethod
    def em_examination(e, K):
        return e[:K]
