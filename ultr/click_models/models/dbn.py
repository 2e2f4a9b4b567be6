"""Dynamic Bayesian network model (Chapelle and Zhang, WWW 2009): a click at rank k satisfies the
user with sigma_qd, an unsatisfied user goes on with gamma (one global parameter).
  P(E_{k+1} | click at k) = gamma (1 - s_k),  P(E_{k+1} | skip at k) = gamma P(E_k | above) (1 - a_k) / (1 - P(E_k | above) a_k)
  P(E_{k+1}) = P(E_k) gamma (1 - a_k s_k)
Simulation: satisfaction from the labels with its own end points (sat_neg, sat_pos); or attraction
and satisfaction given per grade (`attraction`, `satisfaction`: one value per grade 0..y_max), as the
online literature's cascade users are defined."""

from __future__ import annotations

from typing import ClassVar

import jax
import jax.numpy as jnp

from ultr.click_models.base import ChainModel, grade_table, shifted_cumprod
from ultr.click_models.em_dbn import dbn_posteriors


class DBN(ChainModel):
    key = "dbn"
    paper = "Chapelle and Zhang, WWW 2009"
    pair_tables = ("attraction", "satisfaction")
    fixed_continuation: ClassVar[bool] = False
    settings = {"eps_neg": 0.1, "eps_pos": 1.0, "gamma": 0.9, "sat_neg": 0.0, "sat_pos": 1.0, "attraction": None, "satisfaction": None}

    @classmethod
    def globals(cls, K):
        return {} if cls.fixed_continuation else {"continuation": ((), 2.0)}

    @classmethod
    def _gamma(cls, p):
        return jnp.ones(()) if cls.fixed_continuation else p["continuation"]

    @classmethod
    def marginal(cls, p, mask):
        a, s = p["attraction"] * mask, p["satisfaction"]
        exam = shifted_cumprod(cls._gamma(p) * (1.0 - a * s))
        return exam * a, exam

    @classmethod
    def chain(cls, p, mask):
        s, gamma = p["satisfaction"], cls._gamma(p)
        return p["attraction"] * mask, gamma, lambda k: gamma * (1.0 - s[:, k])

    em_posteriors = staticmethod(dbn_posteriors)

    @classmethod
    def simulation_params(cls, s, labels, K):
        out = {"attraction": grade_table(labels, s["y_max"], s["eps_neg"], s["eps_pos"], s.get("attraction"), "attraction"),
               "satisfaction": grade_table(labels, s["y_max"], s["sat_neg"], s["sat_pos"], s.get("satisfaction"), "satisfaction")}
        return out if cls.fixed_continuation else {**out, "continuation": float(s["gamma"])}

    @staticmethod
    def replay(params):
        gamma = jax.nn.sigmoid(params["continuation"]) if "continuation" in params else 1.0
        return {"name": "dbn", "gamma": gamma}
