"""Multileave Gradient Descent (Schuth et al., WSDM 2016): DBGD with n candidate rankers at once,
w + delta u_j for n random unit vectors u_j, compared with the current ranker by team-draft
multileaving (Schuth et al., CIKM 2014). Every candidate that gets more clicks than the current
ranker wins; w moves by alpha along the mean of the winners' u_j (the paper's mean-winner update),
and stays when none wins."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ultr.online.interleaving import credit, team_draft
from ultr.online.methods.base import Feed, OnlineMethod, directions, ranker_order


@dataclass(frozen=True)
class MGD(OnlineMethod):
    key = "mgd"
    paper = "Schuth et al., WSDM 2016"
    vmap_seeds = True
    candidates: int = 9
    delta: float = 1.0
    alpha: float = 0.01
    temperature: float = 0.0

    def interact(self, state, key, x, mask, label, feed: Feed):
        k_dir, k_order, k_mix, k_click = jax.random.split(key, 4)
        flat, u, unravel = directions(k_dir, state, self.candidates)
        rankers = jnp.concatenate([flat[None], flat[None] + self.delta * u])  # [n + 1, P]: the current one first
        scores = jax.vmap(lambda p: self.model.apply(unravel(p), x))(rankers)
        orders, valid = jax.vmap(lambda kk, s: ranker_order(kk, s, mask, feed.k, self.temperature))(
            jax.random.split(k_order, self.candidates + 1), scores)
        slots, team, shown = team_draft(k_mix, orders, valid, feed.k, mask.shape[0])
        clicks = feed.user.clicks(feed.tables, label[slots], shown, k_click)
        won = credit(team, clicks, self.candidates + 1)
        winners = won[1:] > won[0]
        step = (winners[:, None] * u).sum(0) / jnp.maximum(winners.sum(), 1)
        return unravel(flat + self.alpha * step), slots, shown, clicks


METHOD = MGD
