"""DLA (Ai et al., SIGIR 2018): the ranker and a propensity tower, each trained on the other's
inverse weights; the loss lives in `ultr.algorithms.dla`."""

from __future__ import annotations

from ultr.algorithms.dla import dla_loss
from ultr.methods.base import TowerMethod, optional_float


class Dla(TowerMethod):
    name = "dla"
    defaults = {
        "rank_weight": 1.0,  # lambda in L = L_prop + lambda * L_rank
        "max_weight": None,  # clip inverse weights (None = no clipping)
        "max_relevance_weight": None,  # clip the inverse relevance weights alone
        "normalization": "softmax",  # softmax (reference) | sigmoid
        # batch (ALGORITHMS.md and ULTRA's code) | list (each session's targets normalised and counted once)
        "loss_normalization": "batch",
    }

    def sigmoid_examination(self, p):
        return p.cfg.get("normalization", "softmax") == "sigmoid"

    def loss(self, p, scores, p_params, batch, x):
        c = p.cfg
        logits = p.tower.apply(p_params, batch["position"], p.tower_context(x))
        out = dla_loss(scores, logits, batch["targets"], batch["position"], batch["mask"],
                       rank_weight=float(c.get("rank_weight", 1.0)), max_weight=optional_float(c, "max_weight"),
                       normalization=c.get("normalization", "softmax"),
                       loss_normalization=c.get("loss_normalization", "batch"),
                       max_relevance_weight=optional_float(c, "max_relevance_weight"))
        return out.total, {"loss": out.total, "rank_loss": out.rank, "propensity_loss": out.propensity}


METHOD = Dla()
