"""Cascade model (Craswell et al., WSDM 2008): the user scans top-down, clicks the first
attractive result and stops. P(C_k = 1) = alpha_k prod_{j<k} (1 - alpha_j); a click below the
first one has probability IMPOSSIBLE (see base)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ultr.click_models.base import IMPOSSIBLE, ClickModel, PairTable, shifted_cumprod


class Cascade(ClickModel):
    key = "cascade"
    paper = "Craswell et al., WSDM 2008"

    def setup(self) -> None:
        self.attraction = PairTable(self.rows, self.pair_init)

    def marginal(self, rows: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        a = self.attraction(rows) * mask
        exam = shifted_cumprod(1.0 - a)
        return exam * a, exam

    def conditional(self, rows: jax.Array, click: jax.Array, mask: jax.Array) -> jax.Array:
        a = self.attraction(rows) * mask
        clicked_above = (jnp.cumsum(click, axis=1) - click) > 0
        return jnp.where(clicked_above, IMPOSSIBLE, a)

    @staticmethod
    def replay(params):
        return {"name": "cascade"}
