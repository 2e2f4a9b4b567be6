"""A click model to fit: its definition (`models/<key>.py`) with parameters learned per
(query, document) pair (`pair_tables`, indexed by parameter row) and globally (`globals`), as one
Flax module. Every probability goes through a sigmoid, so the optimiser works on logits."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ultr.click_models.base import ClickModel


class PairTable(nn.Module):
    """One probability per (query, document) row: sigmoid(baseline + offset[row]). The baseline is
    shared by every row and learned with them, so it moves with the whole log from the first step
    and is the answer for rows of -1 (pairs unseen in training): the prior is learned, not set."""

    rows: int
    init: float = 0.0  # the baseline's starting logit

    @nn.compact
    def __call__(self, idx: jax.Array) -> jax.Array:
        offsets = self.param("offsets", nn.initializers.zeros, (self.rows,))
        baseline = self.param("baseline", nn.initializers.constant(self.init), ())
        return jax.nn.sigmoid(baseline + jnp.where(idx >= 0, offsets[jnp.maximum(idx, 0)], 0.0))
class FitModule(nn.Module):
    """Session arrays: rows int32 [B, K] (parameter row of each shown pair, -1 = unseen in
    training), click float [B, K], mask bool [B, K]. `__call__` is the conditional click
    probability, `marginal` the (click, examination) marginals: the definition's, on these parameters."""

    model: type[ClickModel]
    rows: int
    positions: int

    @property
    def key(self) -> str:
        return self.model.key

    @nn.compact
    def probabilities(self, rows: jax.Array) -> dict[str, jax.Array]:
        p = {name: PairTable(self.rows, self.model.pair_init, name=name)(rows) for name in self.model.pair_tables}
        for name, (shape, init) in self.model.globals(self.positions).items():
            p[name] = jax.nn.sigmoid(self.param(name, nn.initializers.constant(init), shape))
        return p

    def __call__(self, rows: jax.Array, click: jax.Array, mask: jax.Array) -> jax.Array:
        return self.model.conditional(self.probabilities(rows), click, mask)

    def marginal(self, rows: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.model.marginal(self.probabilities(rows), mask)


def module(model: type[ClickModel], rows: int, positions: int) -> FitModule:
    return FitModule(model, rows, positions)
