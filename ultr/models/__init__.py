"""Flax models: rankers f(x) -> score and propensity models g(position[, context]) -> logit."""
