"""The online simulation feed: every query's candidates on device, and the users who click.

A query's candidates are a row of `Lists` (document rows into the features table, padded to the
longest list). The users are click models of ultr's own (`ultr.click_models`), sampled in JAX:
  perfect, navigational, informational  the cascade users of Hofmann et al. (2013), which
      Oosterhuis and de Rijke (2018) use with the same click and stop probabilities per grade:
      ultr's SDBN with attraction = P(click | grade) and satisfaction = P(stop | grade) given per
      grade, so the offline simulator can log the same users
  pbm, dcm, ... (any simulation click model)  with the `click_model.*` settings, as offline
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ultr.click_models.base import ClickModel
from ultr.click_models.simulator import gather_params, make_click_model
from ultr.data.batching import query_lists
from ultr.data.letor import FeatureTable
from ultr.errors import DataError

# P(click | grade) and P(stop after a click | grade): Hofmann et al. (2013) for three grades
# (LETOR 3/4: MQ2007/8), Oosterhuis and de Rijke (2018) for five (MSLR, Yahoo, Istella).
CASCADE_USERS: dict[str, dict[int, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "perfect": {2: ((0.0, 0.5, 1.0), (0.0, 0.0, 0.0)),
                4: ((0.0, 0.2, 0.4, 0.8, 1.0), (0.0, 0.0, 0.0, 0.0, 0.0))},
    "navigational": {2: ((0.05, 0.5, 0.95), (0.2, 0.5, 0.9)),
                     4: ((0.05, 0.3, 0.5, 0.7, 0.95), (0.2, 0.3, 0.5, 0.7, 0.9))},
    "informational": {2: ((0.4, 0.7, 0.9), (0.1, 0.3, 0.5)),
                      4: ((0.4, 0.6, 0.7, 0.8, 0.9), (0.1, 0.2, 0.3, 0.4, 0.5))},
}


@dataclass(frozen=True)
class Lists:
    """Candidate lists [Q, W] on device: document rows, graded labels (0 on padding), validity."""

    doc: jax.Array
    label: jax.Array
    mask: jax.Array


jax.tree_util.register_dataclass(Lists, data_fields=["doc", "label", "mask"], meta_fields=[])


def lists(features: FeatureTable, split: str) -> Lists:
    q = query_lists(features, split)
    return Lists(jnp.asarray(q.doc_index), jnp.asarray(q.label.astype(np.int32)), jnp.asarray(q.mask))


@dataclass(frozen=True)
class User:
    """A simulated user: a click model's definition (static) and its parameters per [grade, rank]."""

    name: str
    model: type[ClickModel]

    def clicks(self, tables: Mapping[str, jax.Array], labels: jax.Array, mask: jax.Array, key: jax.Array) -> jax.Array:
        """Clicks [..., k] float32 on displayed lists with these grades."""
        lead = labels.shape[:-1]
        flat_labels, flat_mask = labels.reshape(-1, labels.shape[-1]), mask.reshape(-1, mask.shape[-1])
        u = jax.random.uniform(key, flat_labels.shape)
        return self.model.sample(gather_params(self.model, tables, flat_labels), flat_mask, u).reshape(*lead, -1)


def cascade_user(name: str, y_max: int) -> dict[str, Any]:
    """The cascade user `name` as settings of ultr's SDBN click model (online and offline alike)."""
    if y_max not in CASCADE_USERS[name]:
        raise DataError(f"online.users: {name!r} is defined for grade scales 0..2 and 0..4, the data's is 0..{y_max}")
    click, stop = CASCADE_USERS[name][y_max]
    return {"name": "sdbn", "attraction": list(click), "satisfaction": list(stop)}


def user_click_model(name: str, y_max: int, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The click-model config (`name` + settings) of user `name`: a cascade user, or one of ultr's
    simulation click models with these settings."""
    return cascade_user(name, y_max) if name in CASCADE_USERS else {"name": name, **dict(settings or {})}


def make_user(name: str, y_max: int, k: int, settings: Mapping[str, Any] | None = None) -> tuple[User, dict[str, jax.Array]]:
    """The user `name` for lists of k on a grade scale 0..y_max, and its parameter tables."""
    cm = user_click_model(name, y_max, settings)
    sim = make_click_model(cm.pop("name"), y_max=y_max, **cm)
    return User(name, sim.model), sim.tables(k)
