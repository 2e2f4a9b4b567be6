"""The rankers the online methods learn: linear (the papers' default; zeros at the start, so the
first lists are uniform for PDGD and the score order for DBGD/MGD), an MLP (ultr's Flax ranker), or
the MLP plus a linear term (mlp_skip: a skip connection from the features to the score, as in
wide-and-deep models; the model class contains the linear ranker, which starts at zeros as above)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from ultr.errors import DataError
from ultr.models.ranker import MLPRanker


class LinearRanker(nn.Module):
    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.param("w", nn.initializers.zeros, (x.shape[-1],))
        return x @ w


class SkipMLPRanker(nn.Module):
    hidden: Sequence[int] = (32,)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return LinearRanker(name="linear")(x) + MLPRanker(hidden=tuple(self.hidden), activation=self.activation, name="mlp")(x)


def zero_output_layer(params: dict) -> dict:
    """The same parameters with the MLP's last layer at zero (a linear ranker's are zeros already):
    the ranker's first scores are all 0, so PDGD's first lists are uniform, as the linear ranker's;
    with mlp_skip the model starts as that linear ranker and the hidden path grows from zero."""
    tree = params["params"]
    mlp = tree.get("mlp", tree)
    layers = sorted((k for k in mlp if k.startswith("FeatureMajorDense_")), key=lambda k: int(k.rsplit("_", 1)[1]))
    if not layers:
        return params
    mlp = {**mlp, layers[-1]: jax.tree.map(jnp.zeros_like, mlp[layers[-1]])}
    return {**params, "params": {**tree, "mlp": mlp} if "mlp" in tree else mlp}


def make_ranker(kind: str, hidden: Sequence[int] = (32,), activation: str = "tanh") -> nn.Module:
    if kind == "linear":
        return LinearRanker()
    if kind == "mlp":
        return MLPRanker(hidden=tuple(hidden), activation=activation)
    if kind == "mlp_skip":
        return SkipMLPRanker(hidden=tuple(hidden), activation=activation)
    raise DataError(f"online ranker={kind!r}; use linear, mlp or mlp_skip")
