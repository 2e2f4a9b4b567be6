"""Flax models: rankers f(x) -> score and propensity models g(position[, context]) -> logit."""

from ultr import random_cpu  # noqa: F401  (JAX's unrolled threefry lowering on CPU: the same bits, faster)
