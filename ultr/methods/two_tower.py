"""The two-tower click model: a relevance tower and a position tower fitted to clicks; only the
relevance tower ranks (additive: Zhuang et al., WWW 2021; multiplicative: PAL, Guo et al., RecSys 2019)."""

from __future__ import annotations

from ultr.algorithms.click_models import two_tower_loss
from ultr.methods.base import TowerMethod


class TwoTower(TowerMethod):
    name = "two_tower"
    unclicked_evidence = True  # P(click) is fitted on every impression
    defaults = {"combine": "additive"}  # additive (logit s + e) | multiplicative (PBM / PAL)

    def sigmoid_examination(self, p):
        # Additive towers are odds ratios (exp(e_k - e_1)); multiplicative ones probabilities.
        return p.cfg.get("combine", "additive") == "multiplicative"

    def loss(self, p, scores, p_params, batch, x):
        logits = p.tower.apply(p_params, batch["position"], p.tower_context(x))
        out = two_tower_loss(scores, logits, batch["targets"], batch["mask"], combine=p.cfg.get("combine", "additive"))
        return out.total, {"loss": out.total, "rank_loss": out.rank, "propensity_loss": out.propensity}


METHOD = TwoTower()
