import numpy as np
import pytest

from dcdm.problems.smoke import advect

SHAPES = [(11, 9), (7, 8, 6)]
needs_numba = pytest.mark.skipif("numba" not in advect.available(), reason="numba missing")


@needs_numba
@pytest.mark.parametrize("shape", SHAPES)
def test_numba_matches_numpy_oracle(shape, rng, random_velocity):
    u = random_velocity(shape, scale=3.0)  # back-traces leave the grid: clamping is exercised
    q = rng.random(shape)
    np.testing.assert_allclose(advect.advect_scalar(q, u, 0.7, 0.5, backend="numba"),
                               advect.advect_scalar(q, u, 0.7, 0.5, backend="numpy"),
                               rtol=1e-13, atol=1e-13)
    for got, want in zip(advect.advect_velocity(u, 0.7, 0.5, backend="numba"),
                         advect.advect_velocity(u, 0.7, 0.5, backend="numpy"), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("backend", advect.available())
@pytest.mark.parametrize("shape", SHAPES)
def test_constant_field_and_range_are_preserved(shape, backend, rng, random_velocity):
    u = random_velocity(shape, scale=2.0)
    np.testing.assert_allclose(advect.advect_scalar(np.full(shape, 0.3), u, 1.0, 1.0,
                                                    backend=backend), 0.3, rtol=1e-14)
    q = rng.random(shape)
    out = advect.advect_scalar(q, u, 1.0, 1.0, backend=backend)
    assert out.min() >= q.min() - 1e-15 and out.max() <= q.max() + 1e-15


@pytest.mark.parametrize("backend", advect.available())
def test_uniform_velocity_translates_by_whole_cells(backend, rng):
    shape = (10, 6, 5)
    u = [np.zeros((11, 6, 5)), np.full((10, 7, 5), 2.0), np.zeros((10, 6, 6))]
    q = rng.random(shape)
    out = advect.advect_scalar(q, u, dt=0.5, spacing=0.5, backend=backend)  # 2 cells up
    np.testing.assert_allclose(out[:, 2:], q[:, :-2], rtol=1e-14)
    np.testing.assert_allclose(out[:, :2], np.repeat(q[:, :1], 2, axis=1), rtol=1e-14)


def test_input_is_not_modified(rng, random_velocity):
    u = random_velocity((6, 7))
    before = [v.copy() for v in u]
    advect.advect_velocity(u, 0.3, 1.0)
    for a, b in zip(u, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_errors_name_the_argument(random_velocity):
    u = random_velocity((6, 7))
    with pytest.raises(ValueError, match="dt must be a finite number >= 0"):
        advect.advect_velocity(u, -1.0, 1.0)
    with pytest.raises(ValueError, match="spacing must be a positive"):
        advect.advect_scalar(np.zeros((6, 7)), u, 1.0, 0.0)
    with pytest.raises(ValueError, match="q is 3-D but velocity has 2 components"):
        advect.advect_scalar(np.zeros((6, 7, 2)), u, 1.0, 1.0)
    with pytest.raises(ValueError, match="not an advection back-end"):
        advect.advect_velocity(u, 1.0, 1.0, backend="cuda")
