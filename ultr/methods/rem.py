"""Regression-EM (Wang, Golbandi, Bendersky, Metzler, Najork, WSDM 2018): a relevance tower and a
per-position examination fitted to the E-step's posteriors. The examination's M-step is the
paper's closed form by default (`m_step: closed`), or a gradient step on the tower (`gradient`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ultr.losses.towers import rem_loss, rem_position_posteriors, tower_click_probability
from ultr.errors import DataError
from ultr.methods.base import TowerMethod, gradient_update, option


class Rem(TowerMethod):
    name = "rem"
    unclicked_evidence = True  # P(click) is fitted on every impression
    predicts_clicks = True
    defaults = {
        # closed: Wang et al.'s M-step for examination (mean posterior per position) | gradient:
        # the examination tower also regresses on the posteriors by gradient steps
        "m_step": "closed",
        "bias_momentum": 0.9,  # closed: moving average of the batches' mean posteriors (online EM)
    }

    def closed(self, cfg) -> bool:
        return option(cfg, "m_step", "closed", ("closed", "gradient"), self.name) == "closed"

    def check(self, cfg, context):
        if self.closed(cfg) and context:
            raise DataError("algorithm.rem.m_step=closed fits one examination per position; use propensity=position")

    def sigmoid_examination(self, p):
        return True

    def click_probability(self, p, scores, p_params, position, x):
        return tower_click_probability(scores, p.tower.apply(p_params, position, p.tower_context(x)), "multiplicative")

    def loss(self, p, scores, p_params, batch, x, key):
        clicks, mask = batch["targets"], batch["mask"]
        logits = p.tower.apply(p_params, batch["position"], p.tower_context(x))
        out = rem_loss(scores, logits, clicks, mask)
        aux = {}
        if self.closed(p.cfg):
            aux["_post_sums"], aux["_post_counts"] = rem_position_posteriors(
                scores, logits, clicks, batch["position"], mask, p.list_size)
        return out.total, {"loss": out.total, "rank_loss": out.rank, "propensity_loss": out.propensity, **aux}

    def update_tower(self, p, p_params, grads, opt_state, tx, metrics):
        if not self.closed(p.cfg):
            return gradient_update(p_params, grads, opt_state, tx)
        # The mean posterior P(E=1 | c) per position, as an online-EM moving average over batches.
        ema = float(p.cfg.get("bias_momentum", 0.9))
        sums, counts = metrics["_post_sums"], metrics["_post_counts"]
        theta = jax.nn.sigmoid(p_params["params"]["logits"])
        theta = jnp.where(counts > 0, ema * theta + (1 - ema) * sums / jnp.maximum(counts, 1.0), theta)
        theta = jnp.clip(theta, 1e-6, 1 - 1e-6)
        return {"params": {"logits": jnp.log(theta) - jnp.log1p(-theta)}}, opt_state


METHOD = Rem()
