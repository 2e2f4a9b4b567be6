"""Disentangling relevance from bias (Zhang et al., KDD 2023): gradient reversal and observation
dropout, golden values worked out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ultr import methods
from ultr.losses.disentangle import adversarial_loss, reverse_gradient
from ultr.errors import DataError
from ultr.methods import Parts
from ultr.models.propensity import PositionPropensity


def test_reverse_gradient_is_identity_forward_and_minus_eta_backward():
    x = jnp.array([1.0, -2.0])
    assert np.array_equal(reverse_gradient(x, 3.0), x)
    g = jax.grad(lambda v: jnp.sum(reverse_gradient(v, 3.0) * jnp.array([2.0, 5.0])))(x)
    np.testing.assert_allclose(g, [-6.0, -15.0])


def test_adversarial_loss_golden():
    # o = [1, 2, 7 (padding)], head w = 0.5, b = 0, label [1, 0]: pred [0.5, 1.0]
    # loss = (0.25 + 1) / 2 = 0.625
    o, label = jnp.array([[1.0, 2.0, 7.0]]), jnp.array([[1.0, 0.0, 9.0]])
    mask = jnp.array([[True, True, False]])
    head = {"w": jnp.asarray(0.5), "b": jnp.asarray(0.0)}
    assert float(adversarial_loss(o, head, label, mask, 2.0)) == pytest.approx(0.625)
    g_o, g_head = jax.grad(adversarial_loss, argnums=(0, 1))(o, head, label, mask, 2.0)
    # d/do = 2 (pred - label) w / n = [-0.25, 0.5]; reversed with eta = 2: [0.5, -1.0]; padding 0
    np.testing.assert_allclose(g_o, [[0.5, -1.0, 0.0]])
    # the head itself descends: d/dw = 2 (pred - label) o / n = (-1 * 1 + 2 * 2) / 2 = 1.5
    assert float(g_head["w"]) == pytest.approx(1.5)
    assert float(g_head["b"]) == pytest.approx(0.5)  # (-1 + 2) / 2


def _parts(name, **cfg):
    return Parts(ranker=None, tower=PositionPropensity(3), cfg={**methods.get(name).defaults, **cfg}, known={},
                 list_size=3, num_features=0, context=False)


BATCH = {"position": jnp.array([[1, 2, 3]]), "targets": jnp.array([[1.0, 0.0, 1.0]]), "mask": jnp.ones((1, 3), bool)}
SCORES = jnp.array([[0.5, -0.2, 0.1]])


@pytest.mark.parametrize("name", ["dla", "two_tower"])
def test_gradient_reversal_pushes_the_bias_tower_up_the_adversary_loss(name):
    m = methods.get(name)
    p_off, p_on = _parts(name), _parts(name, gradient_reversal=2.0)
    params = m.init_tower(p_on, jax.random.key(0), jnp.zeros((1, 3), jnp.int32))
    assert set(params["params"]) == {"logits", "adversary"}
    params = {"params": {"logits": jnp.array([0.3, -0.1, -0.6]),
                         "adversary": {"w": jnp.asarray(0.5), "b": jnp.asarray(0.1)}}}
    key = jax.random.key(0)

    def grads(p):
        return jax.grad(lambda pp: m.loss(p, SCORES, pp, BATCH, None, key)[0])(params)["params"]

    off, on = grads(p_off), grads(p_on)
    # The adversary regresses the ranker's scores (held constant) on the bias logits:
    # pred = 0.5 o + 0.1; its tower gradient is -eta * 2 (pred - s) * 0.5 / 3.
    o, s = params["params"]["logits"], SCORES[0]
    adv = 2 * (0.5 * o + 0.1 - s) * 0.5 / 3
    np.testing.assert_allclose(on["logits"] - off["logits"], -2.0 * adv, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(on["adversary"]["w"], np.sum(2 * (0.5 * o + 0.1 - s) * o) / 3, rtol=1e-5)
    # The ranker gets nothing from the adversary (its score is the label, held constant).
    g_s_off = jax.grad(lambda sc: m.loss(p_off, sc, params, BATCH, None, key)[0])(SCORES)
    g_s_on = jax.grad(lambda sc: m.loss(p_on, sc, params, BATCH, None, key)[0])(SCORES)
    np.testing.assert_allclose(g_s_on, g_s_off, rtol=1e-6)


def test_adversary_can_regress_clicks():
    m = methods.get("two_tower")
    p = _parts("two_tower", gradient_reversal=1.0, adversarial_label="clicks")
    params = {"params": {"logits": jnp.array([0.3, -0.1, -0.6]),
                         "adversary": {"w": jnp.asarray(1.0), "b": jnp.asarray(0.0)}}}
    _, metrics = m.loss(p, SCORES, params, BATCH, None, jax.random.key(0))
    o, c = np.array([0.3, -0.1, -0.6]), np.array([1.0, 0.0, 1.0])
    assert float(metrics["adversary_loss"]) == pytest.approx(np.mean((o - c) ** 2), rel=1e-6)


def test_observation_dropout_drops_the_bias_logit_from_the_click_model():
    """Two-tower additive: with the position logit dropped an item's click logit is s alone; kept
    logits are scaled by 1 / (1 - rate) (inverted dropout)."""
    m = methods.get("two_tower")
    p = _parts("two_tower", observation_dropout=0.5)
    params = {"params": {"logits": jnp.array([0.3, -0.1, -0.6])}}
    batch = {**BATCH, "position": jnp.tile(jnp.array([[1, 2, 3]]), (64, 1)),
             "targets": jnp.tile(BATCH["targets"], (64, 1)), "mask": jnp.ones((64, 3), bool)}
    logits, raw = m.bias_logits(p, params, batch, None, jax.random.key(3))
    assert np.array_equal(raw[0], [0.3, -0.1, -0.6]) or np.allclose(raw[0], [0.3, -0.1, -0.6])
    kept = np.isclose(np.asarray(logits), 2 * np.asarray(raw))
    dropped = np.asarray(logits) == 0
    assert np.all(kept | dropped) and 0.3 < dropped.mean() < 0.7
    s = jnp.tile(SCORES, (64, 1))
    loss, _ = m.loss(p, s, params, batch, None, jax.random.key(3))
    z = np.asarray(s) + np.asarray(logits)
    c = np.asarray(batch["targets"])
    expected = np.mean(np.log1p(np.exp(-z)) * c + np.log1p(np.exp(z)) * (1 - c))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # Off by default, and the same key gives the same mask (deterministic).
    assert np.array_equal(m.bias_logits(_parts("two_tower"), params, batch, None, jax.random.key(3))[0], raw)
    again, _ = m.bias_logits(p, params, batch, None, jax.random.key(3))
    assert np.array_equal(again, logits)


@pytest.mark.parametrize("cfg, word", [({"observation_dropout": 1.0}, "observation_dropout"),
                                       ({"gradient_reversal": -1}, "gradient_reversal"),
                                       ({"adversarial_label": "labels"}, "adversarial_label")])
def test_bad_settings_name_the_key(cfg, word):
    with pytest.raises(DataError, match=word):
        methods.get("dla").check({**methods.get("dla").defaults, **cfg}, False)
