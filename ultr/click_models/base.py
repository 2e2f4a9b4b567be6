"""What every click model shares: the definition interface, the per-slot Bernoulli log-likelihood,
the rank recursions of the cascade family, and the simulation parameters' building blocks.

A click model is one class (`models/<key>.py`) of pure functions over fixed-shape session arrays
(slot k = rank k+1) and a parameter dict `p` of probabilities:
  per item   [B, K]  "attraction" (and "satisfaction" for DBN/SDBN)
  global     per rank [K], per (rank, distance) [K, K], or scalars: each model names its own
  click      float [B, K] observed (or drawn) clicks, mask bool [B, K] False on padding slots

It answers, from those parameters:
  conditional(p, click, mask)    P(C_k = 1 | the clicks above k): the exact session likelihood
  marginal(p, mask)              (P(C_k = 1), P(E_k = 1)) with nothing observed
  log_likelihood(p, click, mask) log P(session) [B]
  steps(p, mask)                 the same conditional rank by rank (start state, P(C_k | state), next state)
  sample(p, mask, u)             clicks drawn with uniforms u [B, K]: one pass, or through `steps`
  examination(p, mask)           its examination curve for the lists given

Fitting (`module.py`) fills `p` from per-(query, document) tables and learned globals; simulation
(`simulator.py`) from graded labels and settings; replay from a fitted model's globals and labels;
the online loop samples the same definition in JAX. Nothing else defines a click model.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ultr.errors import DataError
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


def chain_step(exam: jax.Array, a_k: jax.Array, click_k: jax.Array, go_on_k: jax.Array, after_click_k: jax.Array) -> jax.Array:
    """One rank of the cascade-family recursion: P(E_{k+1} | clicks down to k) from P(E_k | clicks above)."""
    skip = exam * (1.0 - a_k) / jnp.maximum(1.0 - exam * a_k, 1e-7)
    return jnp.where(click_k > 0, after_click_k, go_on_k * skip)


def chain_loop(a: jax.Array, click: jax.Array, g: jax.Array, after_click: Callable[[int], jax.Array]) -> jax.Array:
    """The recursion of `chain_examination`, K dependent [B] steps (unrolled: K is static). The
    global parameters enter each step as scalars: broadcast to [B, K] and sliced per rank, the
    backward pass was 1.5-2x slower on CPU."""
    exam, out = jnp.ones(a.shape[:1], a.dtype), []
    for k in range(a.shape[1]):
        out.append(exam)
        exam = chain_step(exam, a[:, k], click[:, k], g[k], after_click(k))
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


Params = Mapping[str, Any]
Step = Callable[[int, Any], jax.Array]
Advance = Callable[[int, Any, jax.Array], Any]


class ClickModel:
    """A click model: class-level pure functions, never instantiated. `key`, `paper`, the tables it
    learns per (query, document) pair and the global parameters it learns are class attributes."""

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
    # Clicks independent given the parameters: `sample` needs one pass instead of one per rank.
    independent: ClassVar[bool] = False
    # Fitted by `pipelines.click_models` (the others are simulation-only user populations).
    fittable: ClassVar[bool] = True
    # Simulation settings and their defaults (`click_model.*` in the config).
    settings: ClassVar[dict[str, Any]] = {}

    @classmethod
    def globals(cls, K: int) -> dict[str, tuple[tuple[int, ...], float]]:
        """The learned global parameters: name -> (shape, starting logit)."""
        return {}

    @classmethod
    def conditional(cls, p: Params, click: jax.Array, mask: jax.Array) -> jax.Array:
        raise NotImplementedError

    @classmethod
    def marginal(cls, p: Params, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        raise NotImplementedError

    @classmethod
    def log_likelihood(cls, p: Params, click: jax.Array, mask: jax.Array) -> jax.Array:
        """log P(the session's clicks) [B]: the chain rule over the conditionals."""
        return (bernoulli_ll(cls.conditional(p, click, mask), click) * mask).sum(axis=1)

    @classmethod
    def examination(cls, p: Params, mask: jax.Array) -> jax.Array:
        """P(E_k = 1) [B, K] for the lists given: the examination curve (the same for every list
        where examination depends on the rank alone)."""
        return cls.marginal(p, mask)[1] * mask

    @classmethod
    def steps(cls, p: Params, mask: jax.Array) -> tuple[Any, Step, Advance]:
        """The model rank by rank, for models whose clicks depend on the clicks above: a start state,
        `prob(k, state)` = P(C_k = 1 | the clicks above, summarised in state) [B], and
        `advance(k, state, click_k)`, the state for rank k+1. `sample` draws through it in O(K);
        tests check that fed the observed clicks it gives `conditional`."""
        raise NotImplementedError(f"{cls.key}: clicks depend on the clicks above but the model defines no steps")

    @classmethod
    def stepped(cls, p: Params, mask: jax.Array, choose: Callable[[int, jax.Array], jax.Array]) -> tuple[jax.Array, jax.Array]:
        """(P(C_k | above), clicks) [B, K] through `steps`, the click at each rank from choose(k, prob)."""
        state, prob_at, advance = cls.steps(p, mask)
        probs, clicks = [], []
        for k in range(mask.shape[1]):
            prob = prob_at(k, state)
            click = choose(k, prob)
            state = advance(k, state, click)
            probs.append(prob)
            clicks.append(click)
        return jnp.stack(probs, axis=1), jnp.stack(clicks, axis=1)

    @classmethod
    def sample(cls, p: Params, mask: jax.Array, u: jax.Array) -> jax.Array:
        """Clicks [B, K] float32 drawn with uniforms u [B, K]: one pass over `conditional` where clicks
        are independent, rank by rank through `steps` otherwise, which is exact for every model. A
        probability at the likelihood floor IMPOSSIBLE is a zero here."""
        def draw(prob, u_k, m_k):
            return ((u_k < prob) & (prob > IMPOSSIBLE) & m_k).astype(jnp.float32)
        if cls.independent:
            return draw(cls.conditional(p, jnp.zeros(u.shape, jnp.float32), mask), u, mask)
        return cls.stepped(p, mask, lambda k, prob: draw(prob, u[:, k], mask[:, k]))[1]

    @classmethod
    def simulation_params(cls, s: Mapping[str, Any], labels: np.ndarray, K: int) -> dict[str, np.ndarray]:
        """Parameters for simulated users: attraction (and satisfaction) from the graded labels
        [N, K] with the settings' end points, the globals from the settings."""
        raise NotImplementedError

    @staticmethod
    def replay(params: dict[str, Any]) -> dict[str, Any]:
        """The simulation settings (name and values) that replay a fit's global parameters (logits),
        attraction coming from labels."""
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


class ChainModel(ClickModel):
    """The cascade family (cascade, DCM, DBN, SDBN, CCM): examination goes down the list by
    `chain_step`, each model naming its attraction, its chance to go on after a skip and its
    examination after a click (`chain`)."""

    @classmethod
    def chain(cls, p: Params, mask: jax.Array) -> tuple[jax.Array, Any, Callable[[int], jax.Array]]:
        """(attraction a [B, K] (0 on padding), go_on after a skip (scalar or [K]), k -> examination
        after a click at rank k ([B] or scalar))."""
        raise NotImplementedError

    @classmethod
    def conditional(cls, p, click, mask):
        a, go_on, after_click = cls.chain(p, mask)
        return chain_examination(a, click, go_on, after_click, cls.chain_loop_from) * a

    @classmethod
    def steps(cls, p, mask):
        a, go_on, after_click = cls.chain(p, mask)
        g = jnp.broadcast_to(jnp.asarray(go_on, a.dtype), (a.shape[1],))
        return (jnp.ones(a.shape[:1], a.dtype), lambda k, exam: exam * a[:, k],
                lambda k, exam, c: chain_step(exam, a[:, k], c, g[k], after_click(k)))


# Eye-tracking examination probabilities of positions 1..10 (Joachims et al. 2005), used by the
# field's standard PBM simulation (Ai et al. 2018; ULTRA).
EYE_TRACKING_THETA = (0.68, 0.61, 0.48, 0.34, 0.28, 0.20, 0.11, 0.10, 0.08, 0.06)
CURVES = ("eye_tracking", "inverse")


def graded(labels: np.ndarray, y_max: int, lo: float, hi: float) -> np.ndarray:
    """lo + (hi - lo) (2^y - 1) / (2^y_max - 1): a grade's attraction (or satisfaction) between two end points."""
    grades = np.arange(y_max + 1, dtype=np.float64)
    per_grade = lo + (hi - lo) * (np.exp2(grades) - 1.0) / (2.0**y_max - 1.0)
    return per_grade[np.clip(labels, 0, y_max)]  # a lookup per item: the labels arrive as millions of slots


def grade_table(labels: np.ndarray, y_max: int, lo: float, hi: float, table: Any, name: str) -> np.ndarray:
    """A probability per grade: `table` (one value per grade 0..y_max) where given, else `graded`
    between the end points (the online literature's users give theirs per grade)."""
    if table is None:
        return graded(labels, y_max, lo, hi)
    per_grade = np.asarray(table, np.float64).reshape(-1)
    if per_grade.size != y_max + 1:
        raise DataError(f"click_model.{name}={list(per_grade)}: give one probability per grade 0..{y_max} ({y_max + 1} values)")
    return per_grade[np.clip(labels, 0, y_max)]


def per_rank(values: Any, K: int) -> np.ndarray:
    """A per-rank list read at ranks 1..K; ranks past its end reuse its last value."""
    v = np.asarray(values, np.float64)
    return v[np.minimum(np.arange(K), len(v) - 1)]


def theta_curve(K: int, curve: str, eta: float) -> np.ndarray:
    """Examination at ranks 1..K: eye-tracking theta_k (past 10: the last value) or 1/k, to the power eta."""
    if curve not in CURVES:
        raise DataError(f"click_model.curve={curve!r}; use one of {list(CURVES)}")
    base = 1.0 / np.arange(1, K + 1) if curve == "inverse" else per_rank(EYE_TRACKING_THETA, K)
    return base ** float(eta)


def probs(logits: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(logits)


def shifted_cumprod(step: jax.Array) -> jax.Array:
    """[B, K] -> prod_{j<k} step_j (1 at k = 0): examination reached through the steps above."""
    ones = jnp.ones_like(step[:, :1])
    return jnp.cumprod(jnp.concatenate([ones, step[:, :-1]], axis=1), axis=1)
