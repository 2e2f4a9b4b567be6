"""Disentangling relevance from bias (Zhang, Yan, Qin, Zhuang, Shen, Wang, Bendersky, Najork:
"Towards Disentangling Relevance and Bias in Unbiased Learning to Rank", KDD 2023).

Positions come from the logging policy, which ranks by relevance, so the bias (observation) tower
can explain relevance-driven clicks through position alone and starve the relevance tower. Two of
the paper's remedies act on the bias tower's output o (one logit per shown item):

- observation dropout: o is dropped (inverted dropout) during training, so clicks must also be
  explained without it and the relevance tower keeps what it learns;
- gradient reversal: an adversarial linear head a = w o + b regresses a relevance signal (the
  relevance tower's score, held constant, or the clicks) with squared error. The head minimises
  that error; the gradient reaching o is multiplied by -eta, so the bias tower is pushed to carry
  as little of the relevance signal as it can while it explains position.
"""

from __future__ import annotations

from functools import partial
from typing import Mapping

import jax
import jax.numpy as jnp


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def reverse_gradient(x: jax.Array, eta: float) -> jax.Array:
    """Identity forward; the backward pass multiplies the incoming gradient by -eta."""
    return x


def _reverse_fwd(x, eta):
    return x, None


def _reverse_bwd(eta, _, g):
    return (-eta * g,)


reverse_gradient.defvjp(_reverse_fwd, _reverse_bwd)


def adversarial_loss(bias_logits: jax.Array, head: Mapping[str, jax.Array], label: jax.Array, mask: jax.Array,
                     eta: float) -> jax.Array:
    """Mean over valid items of (w * GRL_eta(o) + b - label)^2: minimised by the head (w, b),
    maximised (scaled by eta) by whatever produced the bias logits o."""
    pred = head["w"] * reverse_gradient(bias_logits, eta) + head["b"]
    err = jnp.where(mask, (pred - label) ** 2, 0.0)
    return jnp.sum(err) / jnp.maximum(jnp.sum(mask), 1)
