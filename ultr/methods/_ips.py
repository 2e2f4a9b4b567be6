"""What the three IPS methods share: the loss on known propensities; they differ in where the
propensities come from (`known`)."""

from __future__ import annotations

from ultr.losses.ips import ips_loss
from ultr.methods.base import KnownPropensityMethod, optional_float


class IpsMethod(KnownPropensityMethod):
    defaults = {"max_weight": None}  # clip the inverse propensity weights (None = no clipping)

    def loss(self, p, scores, p_params, batch, x, key):
        loss = ips_loss(scores, batch["targets"], batch["position"], batch["mask"], p.known["propensity"],
                        max_weight=optional_float(p.cfg, "max_weight"))
        return loss, {"loss": loss, "rank_loss": loss}
