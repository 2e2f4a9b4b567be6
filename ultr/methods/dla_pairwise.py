"""DLA with a pairwise loss on both towers: ULTRA's `DLA` with `loss_func=click_weighted_pairwise_loss`
(Ai et al., SIGIR 2018, Section 4 lets any ranking loss stand in for the softmax one).

For each list, every (clicked i, unclicked j) pair scores -w_i sigmoid(s_i - s_j): the clicked
item's inverse propensity weight (for the ranker) or inverse relevance weight (for the propensity
tower) times the probability that it is ranked above the unclicked one, summed and divided by
the number of lists. The weights are DLA's (`ultr.losses.dla.inverse_weights`), constants for
the tower they weight. Deviation: ULTRA's loop counts its first pair twice; here each pair counts once."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ultr.losses.dla import inverse_weights
from ultr.methods.base import optional_float
from ultr.methods.dla import Dla


def click_weighted_pairwise_loss(logits: jax.Array, clicks: jax.Array, mask: jax.Array, weights: jax.Array) -> jax.Array:
    """-sum over lists of sum over (clicked i, unclicked j) of w_i sigmoid(l_i - l_j), / lists. Shapes [B, K]."""
    pos, neg = (clicks > 0) & mask, (clicks <= 0) & mask
    pair = pos[..., :, None] & neg[..., None, :]
    above = jax.nn.sigmoid(logits[..., :, None] - logits[..., None, :])
    return -jnp.sum(jnp.where(pair, weights[..., :, None] * above, 0.0)) / max(clicks.shape[0], 1)


class DlaPairwise(Dla):
    name = "dla_pairwise"
    defaults = {"rank_weight": 1.0, "max_weight": None, "normalization": "softmax"}

    def loss(self, p, scores, p_params, batch, x, key):
        c, pos, clicks, mask = p.cfg, batch["position"], batch["targets"], batch["mask"]
        logits = p.tower.apply(p_params, pos, p.tower_context(x))
        normalization, max_weight = c.get("normalization", "softmax"), optional_float(c, "max_weight")
        w_exam = jax.lax.stop_gradient(inverse_weights(logits, pos, mask, max_weight, normalization))
        w_rel = jax.lax.stop_gradient(inverse_weights(scores, pos, mask, max_weight, normalization))
        l_rank = click_weighted_pairwise_loss(scores, clicks, mask, w_exam)
        l_prop = click_weighted_pairwise_loss(logits, clicks, mask, w_rel)
        total = l_prop + float(c.get("rank_weight", 1.0)) * l_rank
        return total, {"loss": total, "rank_loss": l_rank, "propensity_loss": l_prop}


METHOD = DlaPairwise()
