"""Flax models: rankers f(x) -> score and propensity models g(position[, context]) -> logit."""

from ultr import random_cpu  # noqa: F401  (threefry lowered unrolled on CPU: the same bits, faster)
