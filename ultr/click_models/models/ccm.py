"""Click chain model (Guo et al., WWW 2009): after a skip the user goes on with tau_1; after a
click on a result of relevance a with tau_2 (1 - a) + tau_3 a. Attraction is the relevance a.
  P(E_{k+1} | click at k) = tau_2 (1 - a_k) + tau_3 a_k,  P(E_{k+1} | skip at k) = tau_1 P(E_k | above) (1 - a_k) / (1 - P(E_k | above) a_k)
  P(E_{k+1}) = P(E_k) [(1 - a_k) tau_1 + a_k (tau_2 (1 - a_k) + tau_3 a_k)]"""

from __future__ import annotations

import jax
import numpy as np

from ultr.click_models.base import ChainModel, graded, shifted_cumprod


class CCM(ChainModel):
    key = "ccm"
    paper = "Guo et al., WWW 2009"
    pair_init = 1.0
    chain_loop_from = 1024  # its loop is faster than its scan from the smallest batch measured
    settings = {"eps_neg": 0.1, "eps_pos": 1.0, "tau": (0.9, 0.5, 0.1)}

    @classmethod
    def globals(cls, K):
        return {"tau": ((3,), 0.0)}  # the start was chosen with pair_init

    @classmethod
    def marginal(cls, p, mask):
        a, (t1, t2, t3) = p["attraction"] * mask, p["tau"]
        exam = shifted_cumprod((1.0 - a) * t1 + a * (t2 * (1.0 - a) + t3 * a))
        return exam * a, exam

    @classmethod
    def chain(cls, p, mask):
        a, (t1, t2, t3) = p["attraction"] * mask, p["tau"]
        return a, t1, lambda k: t2 * (1.0 - a[:, k]) + t3 * a[:, k]

    @classmethod
    def simulation_params(cls, s, labels, K):
        return {"attraction": graded(labels, s["y_max"], s["eps_neg"], s["eps_pos"]), "tau": np.asarray(s["tau"], np.float64)}

    @staticmethod
    def replay(params):
        return {"name": "ccm", "tau": jax.nn.sigmoid(params["tau"])}
