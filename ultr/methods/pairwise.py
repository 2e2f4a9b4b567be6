"""Pairwise debiasing (Hu et al., WWW 2019): a pairwise loss divided by position biases t+ and t-
that are re-estimated in closed form from the same pairs (`ultr.losses.pairwise`)."""

from __future__ import annotations

import jax.numpy as jnp

from ultr.losses.pairwise import bias_ratios, pairwise_debiasing_loss
from ultr.methods.base import Method


class Pairwise(Method):
    name = "pairwise"
    learns_propensity = True
    reports_curve = True
    defaults = {"bias_momentum": 0.9}  # moving average of the closed-form t+/t- batch sums

    def init_tower(self, p, key, x):
        return {"t_plus_sums": jnp.zeros(p.list_size), "t_minus_sums": jnp.zeros(p.list_size)}

    def loss(self, p, scores, p_params, batch, x, key):
        out = pairwise_debiasing_loss(scores, batch["targets"], batch["position"], batch["mask"],
                                      p_params["t_plus_sums"], p_params["t_minus_sums"])
        return out.loss, {"loss": out.loss, "rank_loss": out.loss, "_plus": out.plus, "_minus": out.minus}

    def update_tower(self, p, p_params, grads, opt_state, tx, metrics):
        # Moving averages of the closed-form sums (their ratios are the biases).
        ema = float(p.cfg.get("bias_momentum", 0.9))
        return {
            "t_plus_sums": ema * p_params["t_plus_sums"] + (1 - ema) * metrics["_plus"],
            "t_minus_sums": ema * p_params["t_minus_sums"] + (1 - ema) * metrics["_minus"],
        }, opt_state

    def curve(self, p, p_params, contexts):
        return bias_ratios(p_params["t_plus_sums"])


METHOD = Pairwise()
