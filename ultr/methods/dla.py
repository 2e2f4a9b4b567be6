"""DLA (Ai et al., SIGIR 2018): the ranker and a propensity tower, each trained on the other's
inverse weights; the loss lives in `ultr.losses.dla`. The propensity tower can be disentangled
from relevance (observation dropout, gradient reversal: `ultr.methods._disentangle`)."""

from __future__ import annotations

from ultr.losses.dla import dla_loss
from ultr.methods._disentangle import DISENTANGLE_DEFAULTS, DisentangledTowerMethod
from ultr.methods.base import optional_float


class Dla(DisentangledTowerMethod):
    name = "dla"
    defaults = {
        "rank_weight": 1.0,  # lambda in L = L_prop + lambda * L_rank
        "max_weight": None,  # clip inverse weights (None = no clipping)
        "max_relevance_weight": None,  # clip the inverse relevance weights alone
        "normalization": "softmax",  # softmax (reference) | sigmoid
        # batch (ALGORITHMS.md and ULTRA's code) | list (each session's targets normalised and counted once)
        "loss_normalization": "batch",
        **DISENTANGLE_DEFAULTS,
    }

    def sigmoid_examination(self, p):
        return p.cfg.get("normalization", "softmax") == "sigmoid"

    def loss(self, p, scores, p_params, batch, x, key):
        c = p.cfg
        logits, raw = self.bias_logits(p, p_params, batch, x, key)
        out = dla_loss(scores, logits, batch["targets"], batch["position"], batch["mask"],
                       rank_weight=float(c.get("rank_weight", 1.0)), max_weight=optional_float(c, "max_weight"),
                       normalization=c.get("normalization", "softmax"),
                       loss_normalization=c.get("loss_normalization", "batch"),
                       max_relevance_weight=optional_float(c, "max_relevance_weight"))
        adversary = self.disentangle_loss(p, p_params, raw, scores, batch)
        total = out.total + adversary
        return total, {"loss": total, "rank_loss": out.rank, "propensity_loss": out.propensity, "adversary_loss": adversary}


METHOD = Dla()
