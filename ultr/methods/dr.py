"""Doubly-robust estimation (Oosterhuis, TOIS 2023): DR relevance targets per document of each
candidate list, with a direct-method regression trained in the second tower's slot."""

from __future__ import annotations

import numpy as np

from ultr.losses.doubly_robust import dr_loss
from ultr.errors import DataError
from ultr.methods.base import LISTS, Method, gradient_update, optional_float
from ultr.models.ranker import MLPRanker


class Dr(Method):
    name = "dr"
    data = LISTS
    unclicked_evidence = True  # unbiased only over all logged sessions
    needs = ("alpha",)
    needs_hint = "the click model's alpha (and beta) per position (known['alpha'])"
    defaults = {
        "max_weight": None,  # clip 1/rho (inverse expected exposure)
        "clip_negative": True,  # floor the DR estimates at 0 (only trust bias makes them negative)
        "dm_hidden": None,  # direct-method MLP widths; None = the ranker's (model.hidden)
        "direct": True,  # False: no direct method; the aggregated affine/IPS estimates (C - B)/A of shown documents
    }

    def known(self, src):
        # The click model's P(c | k, d) = alpha_k R_d + beta_k: trust bias's own (alpha, beta),
        # else the true examination curve (PBM: alpha = theta, beta = 0).
        if "affine" in src.sidecar:
            return {"alpha": np.asarray(src.sidecar["affine"]["alpha"]), "beta": np.asarray(src.sidecar["affine"]["beta"])}
        if src.true_curve is None:
            raise DataError("dr needs the click model's examination probabilities: simulate the log, or put propensities.json beside clicks=")
        return {"alpha": np.asarray(src.true_curve), "beta": np.zeros(len(src.true_curve))}

    def tower(self, cfg, list_size):
        # The direct method: a relevance regression with the ranker's architecture (or
        # algorithm.dr.dm_hidden) and optimiser.
        m = cfg["model"]
        hidden = (cfg["algorithm"].get(self.name) or {}).get("dm_hidden") or m["hidden"]
        return MLPRanker(hidden=tuple(hidden), activation=m.get("activation", "elu")), cfg["optim"], False

    def init_tower(self, p, key, x):
        return p.tower.init(key, x)

    def loss(self, p, scores, p_params, batch, x, key):
        c = p.cfg
        out = dr_loss(scores, p.tower.apply(p_params, x), batch["targets"], batch["exposure"], batch["bias"],
                      batch["sessions"], batch["mask"], max_weight=optional_float(c, "max_weight"),
                      clip_negative=bool(c.get("clip_negative", True)), direct=bool(c.get("direct", True)))
        return out.total, {"loss": out.total, "rank_loss": out.rank, "dm_loss": out.dm}

    def update_tower(self, p, p_params, grads, opt_state, tx, metrics):
        return gradient_update(p_params, grads, opt_state, tx)


METHOD = Dr()
