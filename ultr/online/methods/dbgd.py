"""Dueling Bandit Gradient Descent (Yue and Joachims, ICML 2009), with team-draft interleaving
(Radlinski et al., CIKM 2008) as the comparison, as in Hofmann et al. (2013) and Oosterhuis and
de Rijke (2018): each interaction perturbs the current ranker's weights w by delta along a uniformly
random unit vector u, interleaves the two rankings, and when the candidate's team gets more clicks
moves w by alpha along u."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ultr.online.interleaving import credit, team_draft
from ultr.online.methods.base import Feed, OnlineMethod, directions, ranker_order


@dataclass(frozen=True)
class DBGD(OnlineMethod):
    key = "dbgd"
    paper = "Yue and Joachims, ICML 2009"
    delta: float = 1.0  # exploration step
    alpha: float = 0.01  # update step
    temperature: float = 0.0  # each ranker's list: 0 by score, > 0 Plackett-Luce sampled

    def interact(self, state, key, x, mask, label, feed: Feed):
        k_dir, k_order, k_mix, k_click = jax.random.split(key, 4)
        flat, (u,), unravel = directions(k_dir, state, 1)
        scores = jnp.stack([self.model.apply(state, x), self.model.apply(unravel(flat + self.delta * u), x)])
        orders, valid = jax.vmap(lambda kk, s: ranker_order(kk, s, mask, feed.k, self.temperature))(jax.random.split(k_order, 2), scores)
        slots, team, shown = team_draft(k_mix, orders, valid, feed.k, mask.shape[0])
        clicks = feed.user.clicks(feed.tables, label[slots], shown, k_click)
        won = credit(team, clicks, 2)
        return unravel(flat + self.alpha * u * (won[1] > won[0])), slots, shown, clicks


METHOD = DBGD
