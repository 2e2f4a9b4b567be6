"""Cascade model (Craswell et al., WSDM 2008): the user scans top-down, clicks the first
attractive result and stops. P(C_k = 1) = alpha_k prod_{j<k} (1 - alpha_j); a click below the
first one has probability IMPOSSIBLE (see base), which sampling reads as zero."""

from __future__ import annotations

import jax.numpy as jnp

from ultr.click_models.base import IMPOSSIBLE, ChainModel, graded, shifted_cumprod


class Cascade(ChainModel):
    key = "cascade"
    paper = "Craswell et al., WSDM 2008"
    settings = {"eps_neg": 0.1, "eps_pos": 1.0}

    @classmethod
    def marginal(cls, p, mask):
        a = p["attraction"] * mask
        exam = shifted_cumprod(1.0 - a)
        return exam * a, exam

    @classmethod
    def chain(cls, p, mask):
        return p["attraction"] * mask, 1.0, lambda k: 0.0  # after a click the user has stopped

    @classmethod
    def conditional(cls, p, click, mask):
        clicked_above = (jnp.cumsum(click, axis=1) - click) > 0
        return jnp.where(clicked_above, IMPOSSIBLE, p["attraction"] * mask)

    @classmethod
    def simulation_params(cls, s, labels, K):
        return {"attraction": graded(labels, s["y_max"], s["eps_neg"], s["eps_pos"])}

    @staticmethod
    def replay(params):
        return {"name": "cascade"}
