"""Objectives against values worked out by hand on 3-item lists, then the edge cases."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ultr.losses.dla import dla_loss, inverse_weights
from ultr.losses.listwise import masked_log_softmax, softmax_cross_entropy
from ultr.losses.naive import naive_loss, oracle_loss

POS = jnp.array([[1, 2, 3]])
ALL = jnp.ones((1, 3), bool)
LN2 = math.log(2.0)


def test_dla_golden_values():
    # e = [ln2, 0, 0] -> pE = [.5, .25, .25] -> wE = [1, 2, 2]; s = 0 -> pR uniform -> wR = 1.
    # Click on item 2: L_rank = -(2 log 1/3) / 2 = log 3, L_prop = -(1 log 1/4) / 1 = log 4.
    e = jnp.array([[LN2, 0.0, 0.0]])
    s = jnp.zeros((1, 3))
    c = jnp.array([[0.0, 1.0, 0.0]])
    out = dla_loss(s, e, c, POS, ALL)
    np.testing.assert_allclose(out.rank, math.log(3), rtol=1e-6)
    np.testing.assert_allclose(out.propensity, math.log(4), rtol=1e-6)
    np.testing.assert_allclose(out.total, math.log(3) + math.log(4), rtol=1e-6)
    np.testing.assert_allclose(dla_loss(s, e, c, POS, ALL, rank_weight=0.5).total, math.log(4) + 0.5 * math.log(3), rtol=1e-6)
    np.testing.assert_allclose(inverse_weights(e, POS, ALL), [[1.0, 2.0, 2.0]], rtol=1e-6)


def test_dla_gradients_are_separate():
    """Two clicks with unequal weights, so a weight does not cancel out of its normalised loss.

    e = [ln2, 0, 0]: pE = [.5, .25, .25], wE = pE_1 / pE_i = [1, 2, 2]
    s = [ln3, 0, 0]: pR = [.6, .2, .2],   wR = [1, 3, 3];  clicks at positions 1 and 2.
    With both weights constant:
      dL/ds = pR - c wE / sum(c wE) = [.6 - 1/3, .2 - 2/3, .2] = [4/15, -7/15, 3/15]
      dL/de = pE - c wR / sum(c wR) = [.5 - 1/4, .25 - 3/4, .25] = [1/4, -1/2, 1/4]
    Without the stop-gradient on wR, the propensity loss also sends a gradient to s (and without the
    one on wE, the ranker loss to e), and these values change."""
    e = jnp.array([[LN2, 0.0, 0.0]])
    s = jnp.array([[math.log(3), 0.0, 0.0]])
    c = jnp.array([[1.0, 1.0, 0.0]])
    g_s, g_e = jax.grad(lambda s, e: dla_loss(s, e, c, POS, ALL).total, argnums=(0, 1))(s, e)
    np.testing.assert_allclose(g_s, [[4 / 15, -7 / 15, 3 / 15]], atol=1e-6)
    np.testing.assert_allclose(g_e, [[1 / 4, -1 / 2, 1 / 4]], atol=1e-6)


def test_batch_normalisation_over_all_sessions():
    # Two sessions, flat propensity: (1 click * log 3 + 2 clicks * log 3/... ) / 3 clicks.
    s = jnp.array([[0.0, 0.0, 0.0], [LN2, 0.0, 0.0]])
    c = jnp.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    # session 2: softmax = [.5, .25, .25] -> -log .5 - log .25 = 3 ln 2
    expected = (math.log(3) + 3 * LN2) / 3
    np.testing.assert_allclose(naive_loss(s, c, jnp.ones((2, 3), bool)), expected, rtol=1e-6)


def test_per_list_normalisation_golden():
    # list A: s = [ln2, 0, 0] -> softmax [.5, .25, .25], weighted targets [1, 0, 4] -> dist [.2, 0, .8]
    # list B: s = [0, 0, pad] -> softmax [.5, .5], weighted targets [2, 0] -> dist [1, 0]
    # per list: (1.8 ln2 + ln2) / 7 = 0.4 ln2;  batch: (ln2 + 8 ln2 + 2 ln2) / 7 = 11/7 ln2
    ln2 = math.log(2)
    s = jnp.array([[ln2, 0.0, 0.0], [0.0, 0.0, 0.0]])
    t = jnp.array([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    w = jnp.array([[1.0, 1.0, 4.0], [2.0, 1.0, 1.0]])
    mask = jnp.array([[True, True, True], [True, True, False]])
    np.testing.assert_allclose(softmax_cross_entropy(s, t, mask, w, per_list=True), 0.4 * ln2, rtol=1e-6)
    np.testing.assert_allclose(softmax_cross_entropy(s, t, mask, w), 11 / 7 * ln2, rtol=1e-6)
    # an enormous weight shrinks the per-list loss (and its gradient) instead of taking it over
    huge = w.at[0, 2].set(1e6)
    g = jax.grad(lambda x: softmax_cross_entropy(x, t, mask, huge, per_list=True))(s)
    assert float(jnp.abs(g).max()) < 1e-5
    with pytest.raises(ValueError):
        dla_loss(s, s, t, jnp.array([[1, 2, 3], [1, 2, 3]]), mask, loss_normalization="nope")


def test_flat_propensity_gives_unit_weights_and_naive_loss():
    s = jnp.array([[0.3, -1.2, 2.0, 0.1]])
    c = jnp.array([[1.0, 0.0, 1.0, 0.0]])
    pos, mask = jnp.array([[1, 2, 3, 4]]), jnp.ones((1, 4), bool)
    np.testing.assert_allclose(inverse_weights(jnp.zeros((1, 4)), pos, mask), jnp.ones((1, 4)))
    np.testing.assert_allclose(dla_loss(s, jnp.zeros((1, 4)), c, pos, mask).rank, naive_loss(s, c, mask), rtol=1e-6)


def test_weight_clipping():
    e = jnp.array([[LN2 * 3, 0.0, 0.0]])  # pE ratio 8
    w = inverse_weights(e, POS, ALL, max_weight=5.0)
    np.testing.assert_allclose(w, [[1.0, 5.0, 5.0]], rtol=1e-6)


def test_relevance_weight_clip_leaves_the_ranker_loss_alone():
    # s = [3 ln2, 0, 0] -> pR = [.8, .1, .1] -> wR = [1, 8, 8], clipped to [1, 5, 5];
    # e = [ln2, 0, 0] -> pE = [.5, .25, .25] -> wE = [1, 2, 2]. Clicks on items 1 and 2:
    # L_prop = (1 ln2 + 5 * 2 ln2) / 6 = 11/6 ln2 (unclipped (ln2 + 16 ln2) / 9 = 17/9 ln2);
    # L_rank = -(log .8 + 2 log .1) / 3 either way.
    s = jnp.array([[3 * LN2, 0.0, 0.0]])
    e = jnp.array([[LN2, 0.0, 0.0]])
    c = jnp.array([[1.0, 1.0, 0.0]])
    clipped = dla_loss(s, e, c, POS, ALL, max_relevance_weight=5.0)
    free = dla_loss(s, e, c, POS, ALL)
    np.testing.assert_allclose(clipped.propensity, 11 / 6 * LN2, rtol=1e-6)
    np.testing.assert_allclose(free.propensity, 17 / 9 * LN2, rtol=1e-6)
    rank = -(math.log(0.8) + 2 * math.log(0.1)) / 3
    np.testing.assert_allclose([clipped.rank, free.rank], [rank, rank], rtol=1e-6)


def test_first_item_is_highest_valid_position():
    # position 1 was dropped (mask False): normalise to the item at position 2
    e = jnp.array([[5.0, LN2, 0.0]])
    mask = jnp.array([[False, True, True]])
    np.testing.assert_allclose(inverse_weights(e, POS, mask), [[0.0, 1.0, 2.0]], rtol=1e-6)


@pytest.mark.parametrize("mask", [jnp.zeros((2, 3), bool), jnp.ones((2, 3), bool)])
def test_no_nan_for_all_masked_or_zero_click(mask):
    s = jnp.array([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0]])  # extreme scores too
    e = jnp.array([[-1e4, 1e4, 0.0], [0.0, 0.0, 0.0]])
    pos = jnp.tile(POS, (2, 1))
    for clicks in (jnp.zeros((2, 3)), jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])):
        loss, grads = jax.value_and_grad(lambda s, e: dla_loss(s, e, clicks, pos, mask).total, argnums=(0, 1))(s, e)
        assert np.isfinite(loss)
        assert all(np.isfinite(g).all() for g in grads)
        if not mask.any() or not clicks.any():
            assert loss == 0.0 and all((g == 0).all() for g in grads)


def test_zero_click_sessions_contribute_nothing():
    e = jnp.array([[LN2, 0.0, 0.0], [1.0, 2.0, 3.0]])
    s = jnp.array([[0.0, 0.0, 0.0], [5.0, -2.0, 1.0]])
    c = jnp.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    pos, mask = jnp.tile(POS, (2, 1)), jnp.ones((2, 3), bool)
    both = dla_loss(s, e, c, pos, mask)
    one = dla_loss(s[:1], e[:1], c[:1], POS, ALL)
    np.testing.assert_allclose(both.total, one.total, rtol=1e-6)


def test_extra_batch_axes():
    s = jnp.zeros((2, 5, 3))
    c = jnp.zeros((2, 5, 3)).at[..., 1].set(1.0)
    out = dla_loss(s, jnp.zeros((2, 5, 3)), c, jnp.broadcast_to(POS, (2, 5, 3)), jnp.ones((2, 5, 3), bool))
    np.testing.assert_allclose(out.rank, math.log(3), rtol=1e-6)


def test_oracle_uses_graded_labels():
    # labels [2, 1, 0], uniform scores: -(2 log 1/3 + 1 log 1/3) / 3 = log 3
    np.testing.assert_allclose(oracle_loss(jnp.zeros((1, 3)), jnp.array([[2.0, 1.0, 0.0]]), ALL), math.log(3), rtol=1e-6)
    # padded item ignored: softmax over 2 valid items
    m = jnp.array([[True, True, False]])
    np.testing.assert_allclose(oracle_loss(jnp.zeros((1, 3)), jnp.array([[1.0, 0.0, 5.0]]), m), LN2, rtol=1e-6)


def test_masked_log_softmax_and_readout():
    ls = masked_log_softmax(jnp.array([[0.0, 0.0, 100.0]]), jnp.array([[True, True, False]]))
    np.testing.assert_allclose(ls, [[-LN2, -LN2, 0.0]], rtol=1e-6)
    from pipelines.config import default_config
    from ultr.train.build import build_steps

    steps = build_steps("dla", default_config(["model.hidden=[8]"]), 2, 3)
    logits = {"params": {"logits": jnp.log(jnp.array([0.68, 0.34, 0.068]))}}
    np.testing.assert_allclose(steps.propensity_curve(logits, None), [1.0, 0.5, 0.1], rtol=1e-5)
    assert softmax_cross_entropy(jnp.zeros((1, 3)), jnp.zeros((1, 3)), ALL) == 0.0


def test_context_tower_curve_is_the_average_over_logged_contexts():
    """The context tower's curve is each logged session's exp(e_k - e_1), with e read at that
    session's shown documents, averaged over the sessions showing positions 1 and k; checked
    against a loop over sessions. The tower's output layer starts at zero, so it is perturbed
    first: a reading that ignores the context would then be a different curve."""
    from pipelines.config import default_config
    from ultr.train.build import build_steps
    from ultr.models.propensity import ContextPropensity

    K, F, S = 4, 3, 7
    steps = build_steps("dla", default_config(["propensity=context", "model.hidden=[8]"]), F, K)
    assert steps.uses_context
    p = steps.init(jax.random.PRNGKey(0), 2).propensity
    leaves, tree = jax.tree_util.tree_flatten(p)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    p = jax.tree_util.tree_unflatten(tree, [x + 0.5 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])
    rng = np.random.default_rng(0)
    features = jnp.asarray(rng.normal(size=(20, F)).astype(np.float32))
    doc = rng.integers(0, 20, size=(S, K)).astype(np.int32)
    mask = np.ones((S, K), bool)
    mask[2, 3] = mask[5, 2:] = False  # shorter lists
    mask[6, 0] = False  # position 1 not shown: this session says nothing about ratios to it
    tower = ContextPropensity(K, (32,))
    total, count = np.zeros(K), np.zeros(K)
    for s in range(S):
        if not mask[s, 0]:
            continue
        e = np.asarray(tower.apply(p, jnp.arange(1, K + 1), features[doc[s]]))
        for k in range(K):
            if mask[s, k]:
                total[k] += math.exp(e[k] - e[0])
                count[k] += 1
    curve = np.asarray(steps.propensity_curve(p, (jnp.asarray(doc), jnp.asarray(mask), features)))
    np.testing.assert_allclose(curve, total / count, rtol=1e-5)
    assert np.abs(np.asarray(steps.propensity_curve(p, None)) - curve).max() > 1e-3  # the context matters
