import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


def random_flags(rng, shape, p_solid=0.15, p_air=0.05):
    """Random FLUID/SOLID/AIR flag field."""
    u = rng.random(shape)
    flags = np.zeros(shape, dtype=np.int8)
    flags[u < p_solid] = 1
    flags[(u >= p_solid) & (u < p_solid + p_air)] = 2
    return flags
