"""A mixture of position-based users of different bias severity: each session belongs to class c
with weight w_c, whose examination is theta_k ** eta_c. Clicks are independent given the class, so
  P(C_k = 1) = sum_c w_c theta_k^eta_c a_k,
  P(C_k = 1 | clicks above) = sum_c P(c | clicks above) theta_k^eta_c a_k,
the class posterior updated by Bayes' rule down the list."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import P_MIN, ClickModel, graded, theta_curve


class Mixture(ClickModel):
    key = "mixture"
    paper = "a mixture of PBM users (ultr's severity mixture)"
    fittable = False
    settings = {"etas": (0.5, 1.0, 2.0), "weights": None, "eps_neg": 0.1, "eps_pos": 1.0, "curve": "eye_tracking"}

    @classmethod
    def _class_clicks(cls, p, mask):
        """P(C_k = 1 | class c) [C, B, K]."""
        return p["examination"][:, None, : mask.shape[1]] * (p["attraction"] * mask)[None]

    @classmethod
    def marginal(cls, p, mask):
        w = p["weights"][:, None, None]
        exam = jnp.broadcast_to((w[:, :, 0] * p["examination"][:, : mask.shape[1]]).sum(0)[None, :], mask.shape)
        return (w * cls._class_clicks(p, mask)).sum(0), exam

    @classmethod
    def conditional(cls, p, click, mask):
        per_class = cls._class_clicks(p, mask)
        # log P(c_j | class): one log of the observed outcome's probability
        ll = jnp.log(jnp.clip(jnp.where(click[None] > 0, per_class, 1.0 - per_class), P_MIN, 1.0)) * mask[None]
        above = jnp.cumsum(ll, axis=2) - ll  # log P(clicks above k | c)
        post = jax.nn.softmax(jnp.log(p["weights"])[:, None, None] + above, axis=0)
        return (post * per_class).sum(0)

    @classmethod
    def steps(cls, p, mask):
        a, exam, C = p["attraction"] * mask, p["examination"], p["examination"].shape[0]
        # state: the class posterior given the clicks above, one [B] array per class (C is small and
        # static), updated by Bayes' rule in probability space: sampling through [C, B] reductions
        # and logs was 2-4x slower on CPU
        def advance(k, post, c):
            joint = [w * jnp.where(c > 0, exam[i, k] * a[:, k], 1.0 - exam[i, k] * a[:, k]) for i, w in enumerate(post)]
            total = jnp.maximum(sum(joint), 1e-30)
            return tuple(j / total for j in joint)
        start = tuple(jnp.broadcast_to(p["weights"][i], a.shape[:1]) for i in range(C))
        return start, lambda k, post: sum(w * exam[i, k] for i, w in enumerate(post)) * a[:, k], advance

    @classmethod
    def simulation_params(cls, s, labels, K):
        w = np.ones(len(s["etas"])) if s["weights"] is None else np.asarray(s["weights"], np.float64)
        return {"attraction": graded(labels, s["y_max"], s["eps_neg"], s["eps_pos"]),
                "examination": np.stack([theta_curve(K, s["curve"], e) for e in s["etas"]]), "weights": w / w.sum()}
