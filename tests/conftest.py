"""Fixtures every test folder shares: one seeded generator, one random flag field."""

import functools

import numpy as np
import pytest

SEED = 20261127


@pytest.fixture
def rng():
    """A seeded generator: every test sees the same random numbers on every run."""
    return np.random.default_rng(SEED)


def random_flags(rng, shape, p_solid=0.15, p_air=0.05):
    """Random FLUID/SOLID/AIR flag field."""
    u = rng.random(shape)
    flags = np.zeros(shape, dtype=np.int8)
    flags[u < p_solid] = 1
    flags[(u >= p_solid) & (u < p_solid + p_air)] = 2
    return flags


@pytest.fixture(name="random_flags")
def random_flags_factory(rng):
    """``random_flags(shape, p_solid=..., p_air=...)`` drawing from the test's ``rng``."""
    return functools.partial(random_flags, rng)
