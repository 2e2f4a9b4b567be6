"""The affine correction for trust bias (Vardasbi, Oosterhuis, de Rijke, CIKM 2020): per click
(c - beta_k) / alpha_k, or aggregated per document over the log (`aggregate: true`)."""

from __future__ import annotations

import numpy as np

from ultr.losses.ips import affine_log_loss, affine_loss
from ultr.errors import DataError
from ultr.methods.base import LISTS, SESSIONS, Method


class Affine(Method):
    name = "affine"
    unclicked_evidence = True  # unbiased only over all logged sessions
    needs = ("alpha", "beta")
    needs_hint = "the trust-bias parameters alpha and beta per position (a trust click model's propensities.json)"
    defaults = {
        "aggregate": True,  # targets (C - B)/A per document aggregated over the log (False: per click (c - beta_k)/alpha_k)
        "clip_negative": True,  # aggregated form: floor the estimates at 0 (see dr)
    }

    def data_kind(self, cfg):
        return LISTS if bool(cfg.get("aggregate", False)) else SESSIONS

    def known(self, src):
        if "affine" not in src.sidecar:
            raise DataError("affine needs trust-bias parameters: simulate with click_model=trust (propensities.json 'affine')")
        return {"alpha": np.asarray(src.sidecar["affine"]["alpha"]), "beta": np.asarray(src.sidecar["affine"]["beta"])}

    def loss(self, p, scores, p_params, batch, x, key):
        clicks, mask = batch["targets"], batch["mask"]
        if self.data_kind(p.cfg) == LISTS:
            loss = affine_log_loss(scores, clicks, batch["exposure"], batch["bias"], mask,
                                   clip_negative=bool(p.cfg.get("clip_negative", True)))
        else:
            loss = affine_loss(scores, clicks, batch["position"], mask, p.known["alpha"], p.known["beta"])
        return loss, {"loss": loss, "rank_loss": loss}


METHOD = Affine()
