"""Baseline objectives against values worked out by hand on 2-3 item lists, plus edge cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ultr.algorithms.click_models import rem_loss, two_tower_loss
from ultr.algorithms.dla import dla_loss, inverse_weights
from ultr.algorithms.ips import affine_loss, ips_loss, ips_weights
from ultr.algorithms.pairwise import pairwise_debiasing_loss

LN2, LN3 = math.log(2), math.log(3)
POS3 = jnp.array([[1, 2, 3]])
ALL3 = jnp.ones((1, 3), bool)


def test_ips_golden():
    # p = [1, .5, .25] -> w = [1, 2, 4]; s = [ln2, 0, 0] -> softmax [.5, .25, .25]
    # clicks at 1 and 3: -(1 log .5 + 4 log .25) / 5 = 9/5 ln2
    prop = jnp.array([1.0, 0.5, 0.25])
    s = jnp.array([[LN2, 0.0, 0.0]])
    c = jnp.array([[1.0, 0.0, 1.0]])
    np.testing.assert_allclose(ips_weights(POS3, prop, ALL3), [[1, 2, 4]])
    np.testing.assert_allclose(ips_loss(s, c, POS3, ALL3, prop), 9 / 5 * LN2, rtol=1e-6)
    np.testing.assert_allclose(ips_loss(s, c, POS3, ALL3, prop, max_weight=2.0), 5 / 3 * LN2, rtol=1e-6)  # weights [1, 2, 2]


def test_affine_golden():
    # alpha = .5, beta = .1 everywhere; clicks [1, 0, 0] -> targets [1.8, -.2, -.2]; uniform scores:
    # -(1.8 - .2 - .2) * log(1/3) / 1 click = 1.4 ln3
    a, b = jnp.full(3, 0.5), jnp.full(3, 0.1)
    out = affine_loss(jnp.zeros((1, 3)), jnp.array([[1.0, 0.0, 0.0]]), POS3, ALL3, a, b)
    np.testing.assert_allclose(out, 1.4 * LN3, rtol=1e-6)
    assert affine_loss(jnp.zeros((1, 3)), jnp.zeros((1, 3)), POS3, ALL3, a, b) == 0.0


def test_rem_golden():
    # s = e = 0 -> gamma = theta = .5; click [1, 0]: posteriors [1, 1/3]; BCE at logit 0 is ln2 for any target
    s, e = jnp.zeros((1, 2)), jnp.zeros((1, 2))
    c, m = jnp.array([[1.0, 0.0]]), jnp.ones((1, 2), bool)
    out = rem_loss(s, e, c, m)
    np.testing.assert_allclose([out.rank, out.propensity], [LN2, LN2], rtol=1e-6)
    g = jax.grad(lambda s: rem_loss(s, e, c, m).rank)(s)
    np.testing.assert_allclose(g, [[(0.5 - 1) / 2, (0.5 - 1 / 3) / 2]], rtol=1e-5)


def test_two_tower_golden():
    s, e = jnp.zeros((1, 2)), jnp.zeros((1, 2))
    c, m = jnp.array([[1.0, 0.0]]), jnp.ones((1, 2), bool)
    np.testing.assert_allclose(two_tower_loss(s, e, c, m).total, LN2, rtol=1e-6)
    # multiplicative: P(click) = .25 -> (-ln .25 - ln .75) / 2
    mult = two_tower_loss(s, e, c, m, combine="multiplicative").total
    np.testing.assert_allclose(mult, (-math.log(0.25) - math.log(0.75)) / 2, rtol=1e-5)
    with pytest.raises(ValueError):
        two_tower_loss(s, e, c, m, combine="nope")


def test_pairwise_golden():
    # One pair (clicked pos 1, unclicked pos 2), equal scores: softplus(0) = ln2, t = 1
    s = jnp.zeros((1, 2))
    c = jnp.array([[1.0, 0.0]])
    pos, m = jnp.array([[1, 2]]), jnp.ones((1, 2), bool)
    out = pairwise_debiasing_loss(s, c, pos, m, jnp.zeros(2), jnp.zeros(2))
    np.testing.assert_allclose(out.loss, LN2, rtol=1e-6)
    assert out.has_plus.tolist() == [True, False] and out.has_minus.tolist() == [False, True]
    # t-_2 = 2 halves that pair's weight
    out2 = pairwise_debiasing_loss(s, c, pos, m, jnp.zeros(2), jnp.array([0.0, LN2]))
    np.testing.assert_allclose(out2.loss, LN2 / 2, rtol=1e-6)
    # no click or all masked: zero loss, finite gradients
    for cc, mm in ((jnp.zeros((1, 2)), m), (c, jnp.zeros((1, 2), bool))):
        loss, g = jax.value_and_grad(lambda s: pairwise_debiasing_loss(s, cc, pos, mm, jnp.zeros(2), jnp.zeros(2)).loss)(s)
        assert loss == 0.0 and np.isfinite(g).all()


def test_dla_sigmoid_normalisation():
    # sigmoid(0) = .5, sigmoid(ln3) = .75 -> weight of item 2 relative to item 1 = .75 / .5
    e = jnp.array([[LN3, 0.0, 0.0]])
    np.testing.assert_allclose(inverse_weights(e, POS3, ALL3, normalization="sigmoid"), [[1.0, 1.5, 1.5]], rtol=1e-6)
    with pytest.raises(ValueError):
        dla_loss(jnp.zeros((1, 3)), e, jnp.zeros((1, 3)), POS3, ALL3, normalization="nope")
