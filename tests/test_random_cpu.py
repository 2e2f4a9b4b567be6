"""The unrolled threefry lowering on CPU draws the same numbers as JAX's default (rolled) one."""

import jax
import numpy as np

from ultr import random_cpu


def test_threefry_is_unrolled_on_cpu_and_draws_the_default_bits():
    """Golden values drawn with stock JAX 0.10.2 (the rolled lowering), before ultr registers its
    rule: a different hash would change every simulated log and run."""
    assert random_cpu.UNROLLED
    hlo = jax.jit(lambda k: jax.random.bits(k, (6,))).lower(jax.random.key(42)).compile().as_text()
    assert " while(" not in hlo  # the rolled lowering is a while loop over the round groups
    assert np.asarray(jax.random.bits(jax.random.key(0), (6,))).tolist() == [
        4070199207, 4202968722, 1427181096, 2012915765, 2447653815, 710830403]
    assert np.asarray(jax.jit(lambda k: jax.random.bits(k, (6,)))(jax.random.key(42))).tolist() == [
        2098992034, 2919706841, 2646866425, 2409546199, 1935504149, 2516274904]
    assert jax.random.key_data(jax.random.split(jax.random.key(7), 2)).tolist() == [
        [3625411723, 1954958720], [195045567, 4062205631]]
    np.testing.assert_array_equal(np.asarray(jax.random.uniform(jax.random.key(3), (3,))),
                                  np.float32([0.07405257225036621, 0.938144326210022, 0.6489570140838623]))
