"""Clicks drawn from a fitted (or hand-set) click model: rank by rank, each click from the model's
conditional probability given the clicks already drawn above it. This is exact for every model
here, since P(C_k | everything above) is what `conditional` answers."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import ClickModel


@partial(jax.jit, static_argnums=0)
def _draw(model: ClickModel, params: Any, rows: jax.Array, mask: jax.Array, key: jax.Array) -> jax.Array:
    u = jax.random.uniform(key, rows.shape)
    # zeros that depend on u: XLA would otherwise constant-fold each rank's pass at this batch size
    click = jnp.where(u < 0.0, 1.0, 0.0)
    for k in range(rows.shape[1]):  # clicks below k do not enter P(C_k | above), so zeros there are harmless
        p = model.apply(params, rows, click, mask)[:, k]
        click = click.at[:, k].set(((u[:, k] < p) & mask[:, k]).astype(jnp.float32))
    return click.astype(jnp.int8)


def sample_clicks(model: ClickModel, params: Any, rows: np.ndarray, mask: np.ndarray, seed: int,
                  batch_size: int = 65536) -> np.ndarray:
    """Clicks [N, K] int8 for the given lists; the same seed gives the same clicks."""
    out = np.zeros(rows.shape, np.int8)
    key = jax.random.key(seed)
    for i in range(0, len(rows), batch_size):
        key, sub = jax.random.split(key)
        out[i : i + batch_size] = np.asarray(_draw(model, params, jnp.asarray(rows[i : i + batch_size]),
                                                   jnp.asarray(mask[i : i + batch_size]), sub))
    return out
