"""Methods added as one file each: ULTRA's DLA with a pairwise loss (`ultr/methods/dla_pairwise.py`)
checked by hand, and the registry's contract."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ultr import methods
from ultr.errors import DataError
from ultr.methods import Parts
from ultr.methods.dla_pairwise import click_weighted_pairwise_loss
from ultr.models.propensity import PositionPropensity


def sig(x):
    return 1 / (1 + np.exp(-x))


def test_click_weighted_pairwise_loss_by_hand():
    """One list, clicks on items 1 and 3: pairs (1, 2) and (3, 2) only; the both-clicked pair (1, 3)
    and the unclicked item with itself carry nothing. -(2 * sigmoid(0) + 3 * sigmoid(ln 3)) = -3.25."""
    scores = jnp.array([[0.0, 0.0, np.log(3.0)]])
    clicks = jnp.array([[1.0, 0.0, 1.0]])
    loss = click_weighted_pairwise_loss(scores, clicks, jnp.ones((1, 3), bool), jnp.array([[2.0, 5.0, 3.0]]))
    np.testing.assert_allclose(loss, -3.25, rtol=1e-6)
    # A padded unclicked item forms no pair; two lists halve the sum.
    masked = click_weighted_pairwise_loss(jnp.tile(scores, (2, 1)), jnp.tile(clicks, (2, 1)),
                                          jnp.array([[True, False, True], [True, True, True]]), jnp.array([[2.0, 5.0, 3.0]] * 2))
    np.testing.assert_allclose(masked, -3.25 / 2, rtol=1e-6)


def test_dla_pairwise_gradients_are_separate():
    """Each tower's gradient is its own loss's with the other tower's weights held constant: two
    clicks with unequal weights, against gradients worked out by hand. Deleting either
    stop_gradient in dla_pairwise.py adds the other loss's gradient through the weights."""
    m = methods.get("dla_pairwise")
    p = Parts(ranker=None, tower=PositionPropensity(3), cfg={}, known={}, list_size=3, num_features=0, context=False)
    theta = np.array([0.6, 0.3, 0.1])
    p_params = {"params": {"logits": jnp.log(jnp.asarray(theta))}}
    s = np.array([0.5, -0.2, 0.1])
    batch = {"position": jnp.array([[1, 2, 3]]), "targets": jnp.array([[1.0, 0.0, 1.0]]), "mask": jnp.ones((1, 3), bool)}
    g_s = jax.grad(lambda sc: m.loss(p, sc, p_params, batch, None, jax.random.key(0))[0])(jnp.asarray(s[None]))[0]
    g_e = jax.grad(lambda pp: m.loss(p, jnp.asarray(s[None]), pp, batch, None, jax.random.key(0))[0])(p_params)["params"]["logits"]
    w_exam = theta[0] / theta  # [1, 2, 6]
    d = lambda x: sig(x) * (1 - sig(x))  # noqa: E731
    want_s = [-w_exam[0] * d(s[0] - s[1]), w_exam[0] * d(s[0] - s[1]) + w_exam[2] * d(s[2] - s[1]), -w_exam[2] * d(s[2] - s[1])]
    np.testing.assert_allclose(g_s, want_s, rtol=1e-5)
    e = np.log(theta)
    w_rel = np.exp(s[0] - s)  # softmax(s)_1 / softmax(s)_i
    want_e = [-w_rel[0] * d(e[0] - e[1]), w_rel[0] * d(e[0] - e[1]) + w_rel[2] * d(e[2] - e[1]), -w_rel[2] * d(e[2] - e[1])]
    np.testing.assert_allclose(g_e, want_e, rtol=1e-5)


def test_dla_pairwise_trains_and_reads_out_a_curve():
    from pipelines.config import default_config
    from ultr.train.build import build_steps

    K, F = 4, 3
    steps = build_steps("dla_pairwise", default_config(["model.hidden=[8]"]), F, K)
    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.normal(size=(30, F)).astype(np.float32))
    batch = {"doc_index": jnp.asarray(rng.integers(0, 30, (8, K)), jnp.int32), "position": jnp.tile(jnp.arange(1, K + 1), (8, 1)),
             "targets": jnp.asarray(rng.integers(0, 2, (8, K)), jnp.float32), "mask": jnp.ones((8, K), bool)}
    state = steps.init(jax.random.PRNGKey(0), 8)
    for _ in range(5):
        state, metrics = steps.train_step(state, batch, features)
    assert np.isfinite(float(metrics["loss"])) and steps.traces[0] == 1
    curve = np.asarray(steps.propensity_curve(state.propensity, None))
    assert curve.shape == (K,) and curve[0] == 1.0 and not np.allclose(curve, 1.0)  # the tower moved


def test_unknown_method_and_missing_known_inputs_are_one_line_errors():
    from pipelines.config import default_config
    from ultr.train.build import build_steps

    with pytest.raises(DataError, match="'nope' is unknown; available: .*dla_pairwise"):
        methods.get("nope")
    with pytest.raises(DataError, match="ips_true needs propensities"):
        build_steps("ips_true", default_config(["model.hidden=[8]"]), 3, 4)
