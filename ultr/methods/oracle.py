"""The full-information upper bound: the listwise loss on the expert labels of whole candidate lists."""

from __future__ import annotations

from ultr.losses.naive import oracle_loss
from ultr.methods.base import LABELS, Method


class Oracle(Method):
    name = "oracle"
    data = LABELS

    def loss(self, p, scores, p_params, batch, x, key):
        loss = oracle_loss(scores, batch["targets"], batch["mask"])
        return loss, {"loss": loss, "rank_loss": loss}


METHOD = Oracle()
