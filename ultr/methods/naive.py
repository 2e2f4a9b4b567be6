"""The naive baseline: clicks taken as relevance labels, ignoring position bias."""

from __future__ import annotations

from ultr.losses.naive import naive_loss
from ultr.methods.base import Method


class Naive(Method):
    name = "naive"

    def loss(self, p, scores, p_params, batch, x, key):
        loss = naive_loss(scores, batch["targets"], batch["mask"])
        return loss, {"loss": loss, "rank_loss": loss}


METHOD = Naive()
