"""Shared fixtures for the smoke-solver tests."""

from __future__ import annotations

import numpy as np
import pytest

from dcdm.problems.smoke.state import face_shape


@pytest.fixture
def random_velocity(rng: np.random.Generator):
    """Factory: random face velocities on a grid of ``shape``."""

    def make(shape, scale: float = 1.0) -> list[np.ndarray]:
        return [scale * rng.standard_normal(face_shape(shape, a)) for a in range(len(shape))]

    return make
