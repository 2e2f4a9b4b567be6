"""Clicks drawn from a fitted click model's definition (`ClickModel.sample`) on the pairs it learned,
jitted per model and shape (simulated users sample the same definition in `simulator.py`)."""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import ClickModel
from ultr.click_models.module import FitModule


@partial(jax.jit, static_argnums=0)
def _draw_fitted(fitted: FitModule, params: Any, rows: jax.Array, mask: jax.Array, key: jax.Array) -> jax.Array:
    p = fitted.apply(params, rows, method="probabilities")
    return fitted.model.sample(p, mask, jax.random.uniform(key, rows.shape)).astype(jnp.int8)


def sample_clicks(fitted: FitModule, params: Any, rows: np.ndarray, mask: np.ndarray, seed: int,
                  batch_size: int = 65536) -> np.ndarray:
    """Clicks [N, K] int8 for the given lists of parameter rows; the same seed gives the same clicks."""
    out = np.zeros(rows.shape, np.int8)
    key = jax.random.key(seed)
    for i in range(0, len(rows), batch_size):
        key, sub = jax.random.split(key)
        out[i : i + batch_size] = np.asarray(_draw_fitted(fitted, params, jnp.asarray(rows[i : i + batch_size]),
                                                          jnp.asarray(mask[i : i + batch_size]), sub))
    return out
