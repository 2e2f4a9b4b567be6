"""What every click model shares: per-pair parameter tables, the click-probability interface and
the per-slot Bernoulli log-likelihood.

A model is a Flax module over fixed-shape session arrays (slot k = rank k+1):
  rows  int32 [B, K]  parameter row of the (query, document) pair; -1 = a pair never seen in training
  click float [B, K]  observed clicks (0/1)
  mask  bool  [B, K]  False on padding slots

and answers two questions, both as click probabilities [B, K]:
  conditional(rows, click, mask)  P(C_k = 1 | the clicks observed above k): the exact session likelihood
  marginal(rows, mask)            (P(C_k = 1), P(E_k = 1)) with nothing observed: perplexity, simulation
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Clicks after the first one are impossible in the cascade model; the field (PyClick, CLAX) scores
# them with this small probability instead of zero, so a multi-click session costs a finite amount.
IMPOSSIBLE = 1e-8
# Click probabilities are clipped here before the log: float32 sigmoid saturates at 1.
P_MIN, P_MAX = 1e-10, 1.0 - 1e-7


def bernoulli_ll(p: jax.Array, click: jax.Array) -> jax.Array:
    """log P(C = click) per slot for click probability p (natural log)."""
    p = jnp.clip(p, P_MIN, P_MAX)
    return click * jnp.log(p) + (1.0 - click) * jnp.log1p(-p)


def after_skip(exam: jax.Array, attraction: jax.Array) -> jax.Array:
    """P(E_k = 1 | E-chain so far, C_k = 0) by Bayes: exam (1 - a) / (1 - exam a)."""
    return exam * (1.0 - attraction) / jnp.maximum(1.0 - exam * attraction, 1e-7)


class PairTable(nn.Module):
    """One probability per (query, document) row: sigmoid(baseline + offset[row]). The baseline is
    shared by every row and learned with them, so it moves with the whole log from the first step
    and is the answer for rows of -1 (pairs unseen in training): the prior is learned, not set."""

    rows: int

    @nn.compact
    def __call__(self, idx: jax.Array) -> jax.Array:
        offsets = self.param("offsets", nn.initializers.zeros, (self.rows,))
        baseline = self.param("baseline", nn.initializers.zeros, ())
        return jax.nn.sigmoid(baseline + jnp.where(idx >= 0, offsets[jnp.maximum(idx, 0)], 0.0))


class ClickModel(nn.Module):
    """Base of the registered models; `key`, `paper` and `pair_tables` are class attributes."""

    rows: int
    positions: int

    key: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    # Per-pair tables; the rest of the parameters are global.
    pair_tables: ClassVar[tuple[str, ...]] = ("attraction",)

    def conditional(self, rows: jax.Array, click: jax.Array, mask: jax.Array) -> jax.Array:
        raise NotImplementedError

    def marginal(self, rows: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    def __call__(self, rows: jax.Array, click: jax.Array, mask: jax.Array) -> jax.Array:
        return self.conditional(rows, click, mask)

    @staticmethod
    def replay(params: dict[str, Any]) -> dict[str, Any]:
        """The simulator (`ultr.simulation.click_models` name and settings) that replays this
        model's global parameters, attraction coming from labels."""
        raise NotImplementedError

    @staticmethod
    def em_keys(click: np.ndarray) -> np.ndarray | None:
        """Closed-form EM (em.py): the examination parameter index of each slot [N, K], fixed by the
        observed clicks; None for a model without this closed form."""
        return None

    @staticmethod
    def em_examination(e: np.ndarray, K: int) -> np.ndarray:
        """EM's examination estimates (one per key) in the shape of the `examination` parameter."""
        raise NotImplementedError


def probs(logits: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(logits)


def shifted_cumprod(step: jax.Array) -> jax.Array:
    """[B, K] -> prod_{j<k} step_j (1 at k = 0): examination reached through the steps above."""
    ones = jnp.ones_like(step[:, :1])
    return jnp.cumprod(jnp.concatenate([ones, step[:, :-1]], axis=1), axis=1)
