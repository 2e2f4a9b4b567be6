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

from typing import Any, Callable, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# Clicks after the first one are impossible in the cascade model; the field (PyClick, CLAX) scores
# them with this small probability instead of zero, so a multi-click session costs a finite amount.
IMPOSSIBLE = 1e-8
# log(0) in the examination scan: finite, so that gradients through it stay finite.
NEVER = -1e4
# Click probabilities are clipped here before the log: float32 sigmoid saturates at 1.
P_MIN, P_MAX = 1e-10, 1.0 - 1e-7


def bernoulli_ll(p: jax.Array, click: jax.Array) -> jax.Array:
    """log P(C = click) per slot for click probability p (natural log)."""
    p = jnp.clip(p, P_MIN, P_MAX)
    return click * jnp.log(p) + (1.0 - click) * jnp.log1p(-p)


def _log_positive(x: jax.Array) -> jax.Array:
    """log x, with NEVER for x <= 0 (an exact zero stays a zero through the sums below)."""
    return jnp.where(x > 0, jnp.log(jnp.maximum(x, 1e-37)), NEVER)


# The batch size from which `chain_examination` runs its rank loop rather than its scan, where a
# model does not set its own `chain_loop_from`. Which is faster on CPU depends on the model:
# measured with the fit's own step (benchmarks/RESULTS.md, click models, throughput), the loop wins
# for DBN from 4,096 sessions and for CCM from 1,024; the scan for DCM and SDBN at every size.
LOOP_FROM_BATCH = 4096


def chain_examination(a: jax.Array, click: jax.Array, go_on: jax.Array | float,
                      after_click: Callable[[int], jax.Array], loop_from: int | None = LOOP_FROM_BATCH) -> jax.Array:
    """P(E_k = 1 | clicks above k) [B, K] of the cascade-family models, all ranks at once.

    The recursion rank by rank is: after a click at rank k, examination becomes after_click(k)
    ([B] or a scalar); after a skip, Bayes and the chance g_k to go on (`go_on`: a scalar or one per
    rank) give g_k e (1 - a_k) / (1 - e a_k). Batches of `loop_from` sessions or more run it as that
    loop, smaller ones as one associative scan (`chain_scan`)."""
    B, K = a.shape
    g = jnp.broadcast_to(jnp.asarray(go_on, a.dtype), (K,))
    if loop_from is not None and B >= loop_from:
        return chain_loop(a, click, g, after_click)
    h = jnp.stack([jnp.broadcast_to(after_click(k), (B,)) for k in range(K)], axis=1)
    return chain_scan(a, click, jnp.broadcast_to(g, a.shape), h)


def chain_loop(a: jax.Array, click: jax.Array, g: jax.Array, after_click: Callable[[int], jax.Array]) -> jax.Array:
    """The recursion of `chain_examination`, K dependent [B] steps (unrolled: K is static). The
    global parameters enter each step as scalars: broadcast to [B, K] and sliced per rank, the
    backward pass was 1.5-2x slower on CPU."""
    exam, out = jnp.ones(a.shape[:1], a.dtype), []
    for k in range(a.shape[1]):
        out.append(exam)
        skip = exam * (1.0 - a[:, k]) / jnp.maximum(1.0 - exam * a[:, k], 1e-7)
        exam = jnp.where(click[:, k] > 0, after_click(k), g[k] * skip)
    return jnp.stack(out, axis=1)


def chain_scan(a: jax.Array, click: jax.Array, go_on_after_skip: jax.Array, exam_after_click: jax.Array) -> jax.Array:
    """The recursion of `chain_examination` as one associative scan. In the odds of not examining,
    v = 1 / e - 1, a skip is the affine map v -> v / (g (1 - a)) + (1 - g) / g and a click the
    constant map v -> 1 / h - 1, all with non-negative coefficients. So the whole recursion is one
    scan of composed affine maps (in log space, where the products cannot overflow) instead of K
    dependent steps: log2(K) rounds of [B, K] work, forward and back."""
    clicked = click > 0
    log_g = jnp.log(jnp.clip(go_on_after_skip, 1e-7, 1.0))
    log_slope = jnp.where(clicked, NEVER, -log_g - jnp.log(jnp.clip(1.0 - a, 1e-7, 1.0)))
    skip_shift = _log_positive(-jnp.expm1(log_g)) - log_g  # log((1 - g) / g); log 0 = NEVER when g = 1
    click_value = _log_positive(1.0 / jnp.clip(exam_after_click, 1e-7, 1.0) - 1.0)
    log_shift = jnp.where(clicked, click_value, skip_shift)

    def compose(first, second):  # apply `first`, then `second`
        (s1, b1), (s2, b2) = first, second
        return s1 + s2, jnp.logaddexp(s2 + b1, b2)
    _, log_v = jax.lax.associative_scan(compose, (log_slope, log_shift), axis=1)
    # v before rank 1 is 0 (rank 1 is always examined): rank k reads the maps of ranks above it
    log_v = jnp.concatenate([jnp.full_like(log_v[:, :1], NEVER), log_v[:, :-1]], axis=1)
    return jax.nn.sigmoid(-log_v)  # e = 1 / (1 + v)


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


class ClickModel(nn.Module):
    """Base of the registered models; `key`, `paper` and `pair_tables` are class attributes."""

    rows: int
    positions: int

    key: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    # Per-pair tables; the rest of the parameters are global.
    pair_tables: ClassVar[tuple[str, ...]] = ("attraction",)
    # The pair baselines' starting logit. The likelihood is not concave and early stopping ends
    # on the way, so the start matters; each model's was chosen on the validation part of the
    # Yandex sample (0 or 1, CLAX's start; benchmarks/RESULTS.md, click models).
    pair_init: ClassVar[float] = 0.0
    # Batch size from which `chain_examination` runs its loop instead of its scan (None: never).
    chain_loop_from: ClassVar[int | None] = LOOP_FROM_BATCH

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

    # The exact E-step of a model with per-pair attraction and satisfaction and a continuation
    # (DBN, SDBN; em_dbn.py); None for the others.
    em_posteriors: ClassVar[Any] = None

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
