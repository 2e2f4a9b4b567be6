"""The two-tower click model: a relevance tower and a position tower fitted to clicks; only the
relevance tower ranks (additive: Zhuang et al., WWW 2021; multiplicative: PAL, Guo et al., RecSys 2019).
Its position tower can be disentangled from relevance as Zhang et al. (KDD 2023) do for this model
(`ultr.methods._disentangle`)."""

from __future__ import annotations

from ultr.losses.towers import tower_click_probability, two_tower_loss
from ultr.methods._disentangle import DISENTANGLE_DEFAULTS, DisentangledTowerMethod
from ultr.methods.base import option


class TwoTower(DisentangledTowerMethod):
    name = "two_tower"
    unclicked_evidence = True  # P(click) is fitted on every impression
    predicts_clicks = True
    defaults = {"combine": "additive", **DISENTANGLE_DEFAULTS}  # combine: additive (logit s + e) | multiplicative (PBM / PAL)

    def sigmoid_examination(self, p):
        # Additive towers are odds ratios (exp(e_k - e_1)); multiplicative ones probabilities.
        return self.combine(p) == "multiplicative"

    def combine(self, p):
        return option(p.cfg, "combine", "additive", ("additive", "multiplicative"), self.name)

    def click_probability(self, p, scores, p_params, position, x):
        return tower_click_probability(scores, p.tower.apply(p_params, position, p.tower_context(x)), self.combine(p))

    def loss(self, p, scores, p_params, batch, x, key):
        logits, raw = self.bias_logits(p, p_params, batch, x, key)
        out = two_tower_loss(scores, logits, batch["targets"], batch["mask"], combine=self.combine(p))
        adversary = self.disentangle_loss(p, p_params, raw, scores, batch)
        total = out.total + adversary
        return total, {"loss": total, "rank_loss": out.rank, "propensity_loss": out.propensity, "adversary_loss": adversary}


METHOD = TwoTower()
