"""Position-based model (Craswell et al., WSDM 2008; Chuklin et al. 2015, sec. 3.3):
P(C_k = 1) = gamma_k alpha_qd, examination and attraction independent, clicks independent."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import ClickModel, graded, per_rank, theta_curve


class PBM(ClickModel):
    key = "pbm"
    paper = "Craswell et al., WSDM 2008"
    pair_init = 1.0
    independent = True
    settings = {"eta": 1.0, "eps_neg": 0.1, "eps_pos": 1.0, "curve": "eye_tracking",
                "theta": None}  # theta: examination per rank (a fit's), replaces `curve`

    @classmethod
    def globals(cls, K):
        return {"examination": ((K,), 0.0)}

    @classmethod
    def marginal(cls, p, mask):
        exam = jnp.broadcast_to(p["examination"][None, : mask.shape[1]], mask.shape)
        return exam * p["attraction"] * mask, exam

    @classmethod
    def conditional(cls, p, click, mask):
        return cls.marginal(p, mask)[0]  # clicks are independent given the pair and the rank

    @classmethod
    def simulation_params(cls, s, labels, K):
        theta = theta_curve(K, s["curve"], 1.0) if s["theta"] is None else per_rank(s["theta"], K)
        return {"attraction": graded(labels, s["y_max"], s["eps_neg"], s["eps_pos"]),
                "examination": theta ** float(s["eta"])}

    @staticmethod
    def replay(params):
        return {"name": "pbm", "theta": jax.nn.sigmoid(params["examination"])}

    @staticmethod
    def em_keys(click):
        return np.broadcast_to(np.arange(click.shape[1]), click.shape)

    @staticmethod
    def em_examination(e, K):
        return e[:K]
