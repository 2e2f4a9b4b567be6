"""Naive baseline: clicks taken as relevance labels, ignoring position bias."""

from __future__ import annotations

import jax

from ultr.losses.listwise import softmax_cross_entropy


def naive_loss(scores: jax.Array, clicks: jax.Array, mask: jax.Array) -> jax.Array:
    """Listwise softmax loss with clicks as labels and unit weights. Shapes [..., K]."""
    return softmax_cross_entropy(scores, clicks, mask)


def oracle_loss(scores: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
    """Full-information upper bound: the same loss on the true graded labels of whole candidate lists."""
    return softmax_cross_entropy(scores, labels, mask)
