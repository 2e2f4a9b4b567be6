"""Dependent click model (Guo, Liu, Wang, WSDM 2009): cascade, but after a click at rank k the
user goes on with probability lambda_k; after a skip always.
  P(E_{k+1} | click at k) = lambda_k,  P(E_{k+1} | skip at k) = P(E_k | above) (1 - a_k) / (1 - P(E_k | above) a_k)
  P(E_{k+1}) = P(E_k) (1 - a_k + a_k lambda_k)"""

from __future__ import annotations

import jax
import numpy as np

from ultr.click_models.base import ChainModel, graded, per_rank, shifted_cumprod


class DCM(ChainModel):
    key = "dcm"
    paper = "Guo, Liu and Wang, WSDM 2009"
    # Its scan is faster than its loop for the fit at every batch size measured (1,024-8,192); the
    # simulator's blocks (10^5-10^6 sessions, forward only) are faster with the loop.
    chain_loop_from = 65536
    settings = {"eps_neg": 0.1, "eps_pos": 1.0, "lambdas": None}  # lambdas None: 1 - 0.1 k, floor 0.1

    @classmethod
    def globals(cls, K):
        return {"continuation": ((K,), 0.0)}

    @classmethod
    def marginal(cls, p, mask):
        a, lam = p["attraction"] * mask, p["continuation"][None, : mask.shape[1]]
        exam = shifted_cumprod(1.0 - a + a * lam)
        return exam * a, exam

    @classmethod
    def chain(cls, p, mask):
        lam = p["continuation"]
        return p["attraction"] * mask, 1.0, lambda k: lam[k]

    @classmethod
    def simulation_params(cls, s, labels, K):
        lam = np.clip(1.0 - 0.1 * np.arange(1, K + 1), 0.1, 1.0) if s["lambdas"] is None else per_rank(s["lambdas"], K)
        return {"attraction": graded(labels, s["y_max"], s["eps_neg"], s["eps_pos"]), "continuation": lam}

    @staticmethod
    def replay(params):
        return {"name": "dcm", "lambdas": jax.nn.sigmoid(params["continuation"])}
