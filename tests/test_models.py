"""The ranker's layers against plain references: the output-only ELU and the feature-major MLP."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ultr.models.ranker import MLPRanker, elu


def test_elu_values_and_gradient_match_the_definition():
    # ELU(x) = x for x > 0, e^x - 1 otherwise; derivative 1 and e^x. Hand values at 5 points.
    x = jnp.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    want = np.array([np.exp(-3.0) - 1, np.exp(-1.0) - 1, 0.0, 0.5, 2.0])
    want_grad = np.array([np.exp(-3.0), np.exp(-1.0), 1.0, 1.0, 1.0])
    np.testing.assert_allclose(elu(x), want, atol=1e-7)
    np.testing.assert_allclose(jax.grad(lambda v: elu(v).sum())(x), want_grad, atol=1e-7)
    # And against flax's expm1-based ELU over a dense range, to float32 rounding.
    grid = jnp.linspace(-30.0, 10.0, 40_001)
    np.testing.assert_allclose(elu(grid), nn.elu(grid), atol=2e-7)
    np.testing.assert_allclose(jax.grad(lambda v: elu(v).sum())(grid), jax.grad(lambda v: nn.elu(v).sum())(grid), atol=2e-7)
    assert np.isfinite(np.asarray(jax.grad(lambda v: elu(v).sum())(jnp.array([-1e30, 1e30])))).all()


@pytest.mark.parametrize("norm", ["none", "layer"])
def test_feature_major_mlp_equals_row_major_reference(norm):
    """The ranker keeps activations feature-major ([features, rows]) for speed; it must compute the
    ordinary row-wise MLP: h <- act(LN(h @ kernel.T + bias)), score = h @ kernel.T + bias."""
    model = MLPRanker(hidden=(8, 4), norm=norm)
    x = jax.random.normal(jax.random.PRNGKey(0), (3, 5, 6))
    params = model.init(jax.random.PRNGKey(1), x)
    scores = model.apply(params, x)
    assert scores.shape == (3, 5)
    p = jax.tree.map(np.asarray, params["params"])
    h = np.asarray(x, np.float64).reshape(15, 6)
    for i in range(2):
        layer = p[f"FeatureMajorDense_{i}"]
        assert layer["kernel"].shape == ((8, 4)[i], h.shape[1])  # stored [out, in]
        h = h @ layer["kernel"].T + layer["bias"]
        if norm == "layer":
            ln = p[f"LayerNorm_{i}"]
            h = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + 1e-6) * ln["scale"] + ln["bias"]
        h = np.where(h > 0, h, np.expm1(np.minimum(h, 0)))
    out = p["FeatureMajorDense_2"]
    want = (h @ out["kernel"].T + out["bias"])[:, 0].reshape(3, 5)
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rate", [0.1, 0.3, 0.5])
def test_dropout_keeps_the_expected_fraction_and_mean(rate):
    from ultr.models.ranker import dropout

    x = jnp.ones((400, 500))
    y = np.asarray(dropout(x, rate, jax.random.PRNGKey(0)))
    n = y.size
    kept = (y > 0).mean()
    # Binomial(n, 1 - rate): 5 standard deviations.
    assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / (1 - rate)], rtol=1e-6)
    # Neighbouring elements' masks are uncorrelated (the mask hashes consecutive indices).
    m = (y > 0).astype(np.float64)
    for a, b in ((m[:, :-1], m[:, 1:]), (m[:-1], m[1:])):
        r = np.corrcoef(a.ravel(), b.ravel())[0, 1]
        assert abs(r) < 5 / np.sqrt(a.size)
    np.testing.assert_allclose(y.mean(), 1.0, atol=5 * np.sqrt(rate / (1 - rate) / n))
    np.testing.assert_array_equal(y, dropout(x, rate, jax.random.PRNGKey(0)))  # same key, same mask
    other = (np.asarray(dropout(x, rate, jax.random.PRNGKey(1))) > 0).astype(np.float64)
    assert abs(np.corrcoef(m.ravel(), other.ravel())[0, 1]) < 5 / np.sqrt(n)  # another key: another mask
    odd = dropout(jnp.ones((3, 5)), rate, jax.random.PRNGKey(2))  # odd element count
    assert odd.shape == (3, 5)
