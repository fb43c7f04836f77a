"""Tests of :mod:`dcdm.problems.rhs`: random, smooth and manufactured right-hand sides."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dcdm.problems import CellType, Grid, rhs, scenes

F, S, A_ = int(CellType.FLUID), int(CellType.SOLID), int(CellType.AIR)
MAKERS = [rhs.random, rhs.smooth]
DTYPES = [np.float32, np.float64]


def _grids():
    yield "smoke2d_open", scenes.smoke((32, 32), obstacles=6, seed=3)
    yield "smoke2d_closed", scenes.smoke((32, 32), obstacles=6, seed=3, open_top=False)
    yield "smoke3d_open", scenes.smoke((16, 16, 16), obstacles=6, seed=3)
    yield "smoke3d_closed", scenes.smoke((16, 16, 16), obstacles=6, seed=3, open_top=False)


GRIDS = dict(_grids())


def _two_regions() -> tuple[Grid, np.ndarray]:
    """Left region open to AIR, right region closed; returns the grid and the closed mask."""
    flags = np.full((10, 8), F, dtype=np.int8)
    flags[4, :] = S
    flags[:4, -1] = A_
    flags[7, 3] = S
    closed = flags == F
    closed[:4] = False
    return Grid(flags), closed


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize("name", list(GRIDS))
def test_zero_on_non_fluid_cells(name, make, dtype):
    g = GRIDS[name]
    b = make(g, seed=4, dtype=dtype)
    assert b.shape == (g.size,)
    assert b.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(b))
    nf = ~g.fluid.ravel()
    assert nf.any()
    assert_array_equal(b[nf], 0.0)
    assert np.count_nonzero(b[~nf]) > 0.99 * g.n_fluid


@pytest.mark.parametrize("make", MAKERS)
def test_seeded(make):
    g = GRIDS["smoke2d_open"]
    assert_array_equal(make(g, seed=5), make(g, seed=5))
    assert not np.allclose(make(g, seed=5), make(g, seed=6))


def test_random_is_masked_white_noise_on_spd_grid():
    g = GRIDS["smoke3d_open"]
    assert not g.is_singular
    raw = np.random.default_rng(9).standard_normal(g.shape)
    assert_array_equal(rhs.random(g, seed=9), np.where(g.fluid, raw, 0.0).ravel())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make", MAKERS)
@pytest.mark.parametrize("name", ["smoke2d_closed", "smoke3d_closed"])
def test_consistent_on_singular_grid(name, make, dtype):
    g = GRIDS[name]
    assert g.is_singular
    b = make(g, seed=2, dtype=dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert g.nullspace.residual(b) <= tol * np.linalg.norm(b)
    # the projection is not a no-op: the raw field had a component in the null space
    # (checked on float64 white noise; smooth fields usually have one too)
    if make is rhs.random:
        raw = np.where(g.fluid, np.random.default_rng(2).standard_normal(g.shape), 0.0).ravel()
        assert g.nullspace.residual(raw) > 1e3 * g.nullspace.residual(b)


def test_projection_only_touches_closed_region():
    g, closed = _two_regions()
    assert g.nullspace.dimension == 1
    b = rhs.random(g, seed=1)
    raw = np.random.default_rng(1).standard_normal(g.shape)
    open_fluid = g.fluid & ~closed
    assert_array_equal(b.reshape(g.shape)[open_fluid], raw[open_fluid])
    assert abs(b.reshape(g.shape)[closed].sum()) < 1e-12
    assert_allclose(b.reshape(g.shape)[closed], raw[closed] - raw[closed].mean(), rtol=1e-12)
    assert_array_equal(b[~g.fluid.ravel()], 0.0)


@pytest.mark.parametrize("name", list(GRIDS))
def test_smooth_is_low_frequency(name):
    g = GRIDS[name]
    A = g.laplacian()
    b_random = rhs.random(g, seed=0)
    ratios_smooth = []
    for seed in range(3):
        b = rhs.smooth(g, seed=seed)
        ratios_smooth.append(np.linalg.norm(A.matvec(b)) / np.linalg.norm(b))
    ratio_random = np.linalg.norm(A.matvec(b_random)) / np.linalg.norm(b_random)
    # white noise has ||A b|| / ||b|| near sqrt(d^2 + 2 d) (d = 2 ndim); low modes far less
    assert ratio_random > 4.0
    assert max(ratios_smooth) < 0.25 * ratio_random


def test_smooth_fewer_modes_is_smoother():
    g = scenes.tank((48, 48), open_top=False)
    A = g.laplacian()

    def rayleigh(b):
        return float(b @ A.matvec(b)) / float(b @ b)

    low = np.mean([rayleigh(rhs.smooth(g, seed=s, modes=1)) for s in range(4)])
    high = np.mean([rayleigh(rhs.smooth(g, seed=s, modes=12)) for s in range(4)])
    assert low < high


@pytest.mark.parametrize("kind", ["smooth", "random"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(GRIDS))
def test_manufactured_b_is_A_x(name, dtype, kind):
    g = GRIDS[name]
    A = g.laplacian(dtype)
    b, x = rhs.manufactured(A, seed=3, kind=kind)
    assert b.dtype == x.dtype == np.dtype(dtype)
    assert b.shape == x.shape == (g.size,)
    ref = A.to_csr().astype(np.float64) @ x.astype(np.float64)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.abs(b - ref).max() <= tol * np.abs(ref).max()
    expected_x = (rhs.smooth if kind == "smooth" else rhs.random)(g, 3, dtype=dtype)
    assert_array_equal(x, expected_x)
    assert_array_equal(b[~g.fluid.ravel()], 0.0)
    if g.is_singular:
        assert g.nullspace.residual(x) <= tol * np.linalg.norm(x)


def test_rhs_docstring_example():
    g = scenes.tank((16, 16))
    A = g.laplacian()
    b, x = rhs.manufactured(A, seed=0)
    assert abs(A.matvec(x) - b).max() < 1e-12


def test_rhs_does_not_touch_grid():
    g = GRIDS["smoke2d_closed"]
    before = g.flags.copy()
    rhs.random(g)
    rhs.smooth(g)
    assert_array_equal(g.flags, before)


@pytest.mark.parametrize("modes", [0, -1, -10])
def test_smooth_rejects_bad_modes(modes):
    with pytest.raises(ValueError, match=f"modes must be >= 1, got {modes}"):
        rhs.smooth(GRIDS["smoke2d_open"], modes=modes)


@pytest.mark.parametrize("kind", ["sine", "", "Smooth", None])
def test_manufactured_rejects_unknown_kind(kind):
    with pytest.raises(ValueError, match="kind must be 'smooth' or 'random'"):
        rhs.manufactured(GRIDS["smoke2d_open"].laplacian(), kind=kind)
