"""Tests of :mod:`dcdm.problems.scenes`: tanks and seeded smoke scenes."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from dcdm.problems import Box, CellType, Grid, scenes

F, S, A_ = int(CellType.FLUID), int(CellType.SOLID), int(CellType.AIR)
SHAPES = [(32, 32), (20, 24), (16, 16, 16), (14, 18, 12)]


def _top(flags: np.ndarray) -> np.ndarray:
    return flags[:, -1, ...]


def _source(shape) -> np.ndarray:
    """The smoke source region kept clear of obstacles (bottom centre, see scenes.py)."""
    lo = tuple(0.35 * s if a != 1 else 0.0 for a, s in enumerate(shape))
    hi = tuple(0.65 * s if a != 1 else 0.2 * shape[1] for a, s in enumerate(shape))
    return Box(lo, hi).mask(shape)


# -- tank -------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 4), (5, 7), (4, 6, 5)])
def test_tank_open_top(shape):
    g = scenes.tank(shape, spacing=0.5)
    assert isinstance(g, Grid)
    assert g.shape == shape
    assert g.spacing == 0.5
    assert g.boundary is CellType.SOLID
    assert np.all(_top(g.flags) == A_)
    assert int((g.flags == A_).sum()) == _top(g.flags).size
    assert int((g.flags == S).sum()) == 0
    assert not g.is_singular


def test_tank_closed_is_singular():
    g = scenes.tank((6, 5, 4), open_top=False)
    assert np.all(g.flags == F)
    assert g.is_singular
    assert g.nullspace.dimension == 1


# -- smoke ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_smoke_is_deterministic_for_a_seed(shape):
    a = scenes.smoke(shape, obstacles=5, seed=7)
    b = scenes.smoke(shape, obstacles=5, seed=7)
    assert_array_equal(a.flags, b.flags)
    assert a.shape == shape


@pytest.mark.parametrize("shape", SHAPES)
def test_smoke_differs_between_seeds(shape):
    flags = [scenes.smoke(shape, obstacles=5, seed=s).flags for s in (0, 1, 2)]
    assert not np.array_equal(flags[0], flags[1])
    assert not np.array_equal(flags[0], flags[2])
    assert not np.array_equal(flags[1], flags[2])


@pytest.mark.parametrize("shape", SHAPES)
def test_smoke_open_top_has_air_on_top_only(shape):
    g = scenes.smoke(shape, obstacles=6, seed=3, open_top=True)
    assert np.all(_top(g.flags) == A_)
    assert int((g.flags == A_).sum()) == _top(g.flags).size


@pytest.mark.parametrize("shape", SHAPES)
def test_smoke_closed_has_no_air_and_is_singular(shape):
    g = scenes.smoke(shape, obstacles=6, seed=3, open_top=False)
    assert not np.any(g.flags == A_)
    assert g.is_singular
    assert g.nullspace.dimension >= 1
    # the obstacles are the same as with an open top (the layout depends on the seed only)
    g_open = scenes.smoke(shape, obstacles=6, seed=3, open_top=True)
    assert_array_equal(g.flags == S, g_open.flags == S)


@pytest.mark.parametrize("k", [0, 1, 3, 8])
@pytest.mark.parametrize("shape", SHAPES)
def test_smoke_places_the_requested_obstacles(shape, k):
    seed = 11
    g = scenes.smoke(shape, obstacles=k, seed=seed)
    solid = g.flags == S
    if k == 0:
        assert not solid.any()
        assert scenes.random_obstacles(shape, 0, np.random.default_rng(seed)) is None
        return
    # the scene draws its layout from default_rng(seed): rebuild it and compare cell by cell
    shapes = scenes.random_obstacles(shape, k, np.random.default_rng(seed))
    assert len(shapes.shapes) == k
    expected = shapes.mask(shape)
    expected[:, -2:, ...] = False
    assert_array_equal(solid, expected)
    if min(shape) >= 17:
        # obstacle sizes are >= 0.06 min(shape) > 1 cell, so each covers some cell centre
        assert all(s.mask(shape).any() for s in shapes.shapes)
        assert solid.sum() > 0
    # more obstacles, more solid cells (same seed: the first draws are shared)
    fewer = scenes.smoke(shape, obstacles=k - 1, seed=seed).flags == S
    assert solid.sum() >= fewer.sum()
    assert np.all(solid[fewer])


@pytest.mark.parametrize("shape", SHAPES)
def test_smoke_keeps_source_and_top_clear(shape):
    for seed in range(4):
        flags = scenes.smoke(shape, obstacles=10, seed=seed).flags
        assert not np.any((flags == S) & _source(shape))
        assert not np.any(flags[:, -2:, ...] == S)


def test_smoke_2d():
    g = scenes.smoke((24, 20), obstacles=4, seed=5, spacing=0.1)
    assert g.ndim == 2
    assert g.shape == (24, 20)
    assert g.spacing == 0.1
    assert 0 < int((g.flags == S).sum()) < g.size // 2
    assert g.n_fluid > g.size // 2
    A = g.laplacian()
    assert A.shape == (480, 480)


def test_smoke_docstring_example():
    g = scenes.smoke((32, 32, 32), obstacles=4, seed=1)
    assert g.shape == (32, 32, 32)
    assert not g.is_singular


@pytest.mark.parametrize("seed", range(6))
def test_smoke_open_top_3d_is_spd(seed):
    assert not scenes.smoke((16, 16, 16), obstacles=8, seed=seed).is_singular


@pytest.mark.parametrize("seed", [11, 19])
def test_smoke_open_top_2d_is_spd(seed):
    assert not scenes.smoke((16, 16), obstacles=8, seed=seed).is_singular


@pytest.mark.parametrize("shape", [(4, 4), (8, 4), (6, 4, 6)])
def test_smoke_smallest_allowed_shape(shape):
    g = scenes.smoke(shape, obstacles=2, seed=0)
    assert g.shape == shape


@pytest.mark.parametrize(("shape", "seed"), [((14, 18, 12), 11), ((8, 8), 36)])
def test_smoke_every_obstacle_has_cells(shape, seed):
    shapes = scenes.random_obstacles(shape, 1, np.random.default_rng(seed))
    assert all(s.mask(shape).any() for s in shapes.shapes)
    assert (scenes.smoke(shape, obstacles=1, seed=seed).flags == S).any()


@pytest.mark.parametrize("shape", [(4, 4), (8, 4), (6, 4, 6)])
def test_smoke_smallest_allowed_shape_without_obstacles(shape):
    g = scenes.smoke(shape, obstacles=0)
    assert g.shape == shape
    assert np.all(_top(g.flags) == A_)


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 8), (8, 3), (8, 8, 2), (8,), (4, 4, 4, 4), ()])
@pytest.mark.parametrize("make", [scenes.smoke, scenes.tank])
def test_scenes_reject_bad_shape(make, shape):
    with pytest.raises(ValueError, match="shape must be 2 or 3 sizes, each >= 4"):
        make(shape)


def test_random_obstacles_rejects_bad_shape(rng):
    with pytest.raises(ValueError, match="shape must be 2 or 3 sizes, each >= 4"):
        scenes.random_obstacles((2, 9), 3, rng)


@pytest.mark.parametrize("obstacles", [-1, -10, 2.5, True, "3", None])
def test_smoke_rejects_bad_obstacles(obstacles):
    with pytest.raises(ValueError, match="obstacles must be an integer >= 0"):
        scenes.smoke((8, 8), obstacles=obstacles)


def test_smoke_rejects_bad_spacing():
    with pytest.raises(ValueError, match="spacing must be a positive finite number"):
        scenes.smoke((8, 8), spacing=-1.0)


@pytest.mark.parametrize("shape", [(24, 12), (20, 10, 8)])
def test_baffles_compartments_meet_only_through_the_openings(shape):
    g = scenes.baffles(shape, walls=3, opening=2)
    assert not g.is_singular  # the outlet grounds every compartment through the openings
    flags = np.array(g.flags)
    walls = [i for i in range(shape[0]) if (flags[i] == CellType.SOLID).any()]
    assert walls == [round((k + 1) * shape[0] / 4) for k in range(3)]
    holes = [int((flags[i] == CellType.FLUID).sum()) for i in walls]
    assert holes == [2 if len(shape) == 2 else 4] * 3
    air = np.argwhere(flags == CellType.AIR)
    assert air[:, 0].min() == walls[-1] + 1 and (air[:, 1] == shape[1] - 1).all()
    # sealing the holes cuts every compartment but the last from the air: singular
    sealed = flags.copy()
    for i in walls:
        sealed[i] = CellType.SOLID
    grid = Grid(sealed)
    assert grid.is_singular and grid.nullspace.labels.max() == 2  # three closed compartments


def test_baffles_closed_is_singular_and_bad_input():
    assert scenes.baffles((12, 8), walls=2, open_top=False).is_singular
    with pytest.raises(ValueError, match="walls must be an integer >= 1"):
        scenes.baffles((12, 8), walls=0)
    with pytest.raises(ValueError, match="opening must be an integer >= 1"):
        scenes.baffles((12, 8), opening=True)
    with pytest.raises(ValueError, match="no room for 7 walls"):
        scenes.baffles((12, 8), walls=7)
    with pytest.raises(ValueError, match="opening must fit the wall: at most 6 cells"):
        scenes.baffles((12, 8), opening=7)


def test_baffles_mg_pcg_reaches_the_true_tolerance():
    """The thin-wall scene is hard for the flag-coarsened multigrid (issue 16), never wrong."""
    import dcdm
    from dcdm.problems import rhs

    g = scenes.baffles((32, 32, 32), walls=3, opening=2)
    A, b = g.laplacian(), rhs.random(g, seed=0)
    res = dcdm.solve(A, b, method="cg", M="mg", rtol=1e-8, maxiter=2000)
    true = np.linalg.norm(b - A.matvec(res.x))
    assert res.converged and true <= 1e-8 * np.linalg.norm(b)
