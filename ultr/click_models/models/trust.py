"""Trust bias (Agarwal et al., WWW 2019; Vardasbi et al., CIKM 2020): an examined item is clicked
with eps+_k if relevant and eps-_k if not, both depending on the rank:
  P(C_k = 1) = theta_k (eps-_k + (eps+_k - eps-_k) R) = alpha_k R + beta_k,
R = P(relevant) the per-item table ("attraction"); clicks independent. Simulation: R = (2^y - 1) /
(2^y_max - 1), theta_k ** eta, and by default eps+_k = 1 - (k+1)/100, eps-_k = 0.65/k."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import ClickModel, graded, per_rank, theta_curve


class TrustBias(ClickModel):
    key = "trust"
    paper = "Agarwal et al., WWW 2019"
    independent = True
    fittable = False
    settings = {"eta": 1.0, "curve": "eye_tracking", "eps_pos": None, "eps_neg": None}

    @classmethod
    def affine(cls, p):
        """(alpha_k, beta_k) [K] of P(click) = alpha_k R + beta_k: what affine correction divides out."""
        return p["examination"] * (p["eps_pos"] - p["eps_neg"]), p["examination"] * p["eps_neg"]

    @classmethod
    def marginal(cls, p, mask):
        K = mask.shape[1]
        alpha, beta = (v[None, :K] for v in cls.affine(p))
        exam = jnp.broadcast_to(p["examination"][None, :K], mask.shape)
        return (alpha * p["attraction"] + beta) * mask, exam

    @classmethod
    def conditional(cls, p, click, mask):
        return cls.marginal(p, mask)[0]

    @classmethod
    def simulation_params(cls, s, labels, K):
        k = np.arange(1, K + 1)
        return {"attraction": graded(labels, s["y_max"], 0.0, 1.0), "examination": theta_curve(K, s["curve"], s["eta"]),
                "eps_pos": 1.0 - (k + 1) / 100.0 if s["eps_pos"] is None else per_rank(s["eps_pos"], K),
                "eps_neg": 0.65 / k if s["eps_neg"] is None else per_rank(s["eps_neg"], K)}
