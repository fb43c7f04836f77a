"""Shared fixtures for the ``dcdm.problems`` tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from dcdm.problems import CellType

SEED = 20240611


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: every test sees the same random numbers on every run."""
    return np.random.default_rng(SEED)


@pytest.fixture
def random_flags(rng: np.random.Generator) -> Callable[..., np.ndarray]:
    """Factory of random flag fields mixing FLUID, SOLID and AIR codes."""

    def make(shape, p_solid: float = 0.25, p_air: float = 0.1) -> np.ndarray:
        u = rng.random(shape)
        flags = np.full(shape, CellType.FLUID, dtype=np.int8)
        flags[u < p_solid] = CellType.SOLID
        flags[(u >= p_solid) & (u < p_solid + p_air)] = CellType.AIR
        return flags

    return make
