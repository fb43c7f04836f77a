"""Tests of :mod:`dcdm.problems.scenes`: tanks and seeded smoke scenes."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dcdm.problems import Box, CellType, Grid, Sphere, Union, scenes

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


# -- face-weighted scenes: two-phase bubbles and cut cells (issue 16) --------------------------


WEIGHTED_SHAPES = [(16, 16), (12, 20), (12, 12, 12), (10, 14, 8)]


def _weights_equal(a: Grid, b: Grid) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.face_weights, b.face_weights, strict=True))


@pytest.mark.parametrize("shape", WEIGHTED_SHAPES)
@pytest.mark.parametrize("make", [scenes.two_phase, scenes.cut_cells])
def test_weighted_scenes_are_deterministic_for_a_seed(make, shape):
    a, b, c = make(shape, seed=7), make(shape, seed=7), make(shape, seed=8)
    assert a.same_as(b) and _weights_equal(a, b)
    assert not _weights_equal(a, c)
    assert a.shape == shape
    assert [w.shape for w in a.face_weights] == [
        tuple(n + (ax == a_) for ax, n in enumerate(shape)) for a_ in range(len(shape))]


@pytest.mark.parametrize("shape", WEIGHTED_SHAPES)
def test_two_phase_has_bubbles_in_a_heavy_liquid(shape):
    ratio = 500.0
    g = scenes.two_phase(shape, ratio=ratio, bubbles=4, seed=3, spacing=0.5)
    assert g.spacing == 0.5 and g.boundary is CellType.SOLID
    assert np.all(_top(g.flags) == A_) and int((g.flags == A_).sum()) == _top(g.flags).size
    assert not np.any(g.flags == S)
    # the densities the scene drew: liquid `ratio`, bubbles 1
    rho = np.full(shape, ratio)
    for s in scenes.random_spheres(shape, 4, np.random.default_rng(3)):
        assert s.mask(shape).any() and not s.mask(shape)[:, -2:, ...].any()
        rho[s.mask(shape)] = 1.0
    assert 0 < (rho == 1).sum() < rho.size // 2
    bubble_faces = 0
    for a, w in enumerate(g.face_weights):
        n = shape[a]
        lo = np.take(rho, range(n), axis=a)
        hi = np.take(rho, range(1, n), axis=a)
        inner = np.take(w, range(1, n), axis=a)
        both_liquid = (np.take(lo, range(n - 1), axis=a) == ratio) & (hi == ratio)
        both_bubble = (np.take(lo, range(n - 1), axis=a) == 1) & (hi == 1)
        assert_allclose(inner[both_liquid], 1 / ratio, rtol=1e-15)
        assert_allclose(inner[both_bubble], 1.0, rtol=1e-15)
        assert_allclose(inner[~both_liquid & ~both_bubble], 2 / (1 + ratio), rtol=1e-15)
        bubble_faces += both_bubble.sum()
    assert bubble_faces > 0
    assert not g.is_singular


def test_two_phase_options():
    closed = scenes.two_phase((12, 12, 12), bubbles=3, seed=1, open_top=False)
    assert not np.any(closed.flags == A_)
    # a closed tank: the constants are the null space (row sums vanish up to rounding)
    C = closed.laplacian().to_csr()
    assert np.abs(C @ np.ones(C.shape[0])).max() < 1e-15
    opened = scenes.two_phase((12, 12, 12), bubbles=3, seed=1)
    assert _weights_equal(closed, opened)  # the layout depends on the seed only
    plain = scenes.two_phase((12, 12), ratio=1, bubbles=5)
    assert all(np.all(w == 1.0) for w in plain.face_weights)
    none = scenes.two_phase((12, 12), bubbles=0, ratio=10.0)
    assert all(np.all(w == 0.1) for w in none.face_weights)


def test_two_phase_closed_is_singular():
    closed = scenes.two_phase((12, 12, 12), bubbles=3, seed=1, open_top=False)
    assert closed.is_singular and closed.nullspace.dimension == 1


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(8, 8), (24, 24), (8, 8, 8), (16, 16, 16)])
def test_two_phase_is_spd_and_solvable(shape, seed, monkeypatch):
    import dcdm
    from dcdm.problems import rhs

    g = scenes.two_phase(shape, seed=seed)
    assert not g.is_singular
    A, b = g.laplacian(), rhs.random(g, seed=seed)
    res = dcdm.solve(A, b, method="cg", M="jacobi", rtol=1e-8, maxiter=5000)
    assert res.converged
    assert np.linalg.norm(b - A.to_csr() @ res.x) <= 1e-8 * np.linalg.norm(b)


def test_face_fractions_match_the_chords_of_a_disc():
    disc = Sphere((6.3, 5.7), 3.4)
    for samples in (8, 64):
        ws = scenes.face_fractions((12, 12), [disc], samples=samples)
        for a, w in enumerate(ws):
            assert w.shape == tuple(12 + (b == a) for b in range(2))
            c, t = disc.center[a], disc.center[1 - a]
            for i in range(13):  # the face x_a = i, x_t in [j, j + 1], is closed on the chord
                half = np.sqrt(max(disc.radius**2 - (i - c) ** 2, 0.0))
                j = np.arange(12)
                closed = np.clip(np.minimum(j + 1, t + half) - np.maximum(j, t - half), 0, 1)
                assert_allclose(np.take(w, i, axis=a), 1 - closed, atol=1 / samples)


def test_face_fractions_of_a_ball_in_3d():
    ball = Sphere((5.0, 5.0, 5.0), 2.5)
    ws = scenes.face_fractions((10, 10, 10), [ball])
    for a, w in enumerate(ws):
        assert w.shape == tuple(10 + (b == a) for b in range(3))
        assert np.all((w >= 0) & (w <= 1))
        assert_array_equal(w * 16, np.round(w * 16))  # 4 x 4 samples per face
    # the face through the centre, x = 5: the disc of radius 2.5 closes 19.6 of its cells'
    # area; the sampled closed area is within a sample per crossed face of that
    assert abs((1 - ws[0][5]).sum() - np.pi * 2.5**2) < 0.1 * np.pi * 2.5**2
    assert np.all(ws[0][:3] == 1) and np.all(ws[0][8:] == 1)
    # the union of two spheres closes at least what each closes
    other = Sphere((6.0, 4.0, 5.0), 2.0)
    both = scenes.face_fractions((10, 10, 10), [ball, other])
    single = scenes.face_fractions((10, 10, 10), [other])
    for u, a, b in zip(both, ws, single, strict=True):
        assert np.all(u <= np.minimum(a, b))


@pytest.mark.parametrize("shape", [*WEIGHTED_SHAPES, (32, 32, 32)])
def test_cut_cells_fractions_and_cell_rule(shape):
    g = scenes.cut_cells(shape, obstacles=6, seed=2, spacing=0.25)
    assert g.spacing == 0.25
    w = np.concatenate([x.ravel() for x in g.face_weights])
    assert np.all((w >= 0) & (w <= 1))
    assert ((w > 0) & (w < 1)).any() and (w == 0).any()
    samples = 8 if len(shape) == 2 else 16
    assert_array_equal(w * samples, np.round(w * samples))
    assert np.all(_top(g.flags) == A_)
    spheres = scenes.random_spheres(shape, 6, np.random.default_rng(2), radii=(0.06, 0.14))
    inside = Union(*spheres).mask(shape)
    solid = g.flags == S
    assert solid.any() and np.all(inside[solid])  # only cells in the spheres turn solid
    assert (inside & (g.flags == F)).any()  # and some stay FLUID: cut cells
    # a FLUID cell keeps an open face to the rest of the tank (a non-zero diagonal)
    diag, _ = g.coefficients()
    assert diag[g.fluid].min() > 0
    assert not g.is_singular


def test_cut_cells_seal_pockets():
    shape, k, seed = (16, 16), 20, 2  # a layout whose spheres close off pockets of fluid
    fractions = scenes.face_fractions(
        shape, scenes.random_spheres(shape, k, np.random.default_rng(seed), radii=(0.06, 0.14)))
    closed = np.ones(shape, dtype=bool)
    for a, w in enumerate(fractions):
        closed &= (np.take(w, range(shape[a]), axis=a) == 0) & (
            np.take(w, range(1, shape[a] + 1), axis=a) == 0)
    flags = np.array(scenes.tank(shape).flags)
    flags[closed] = S
    assert Grid(flags, face_weights=fractions).is_singular  # the cell rule alone leaves pockets
    g = scenes.cut_cells(shape, obstacles=k, seed=seed)
    assert not g.is_singular
    assert (g.flags == S).sum() > closed.sum()
    shut = scenes.cut_cells(shape, obstacles=k, seed=seed, open_top=False)
    assert shut.is_singular and shut.nullspace.dimension == 1  # the tank's body only
    assert_array_equal(shut.flags[:, :-1] == S, g.flags[:, :-1] == S)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("shape", [(8, 8), (24, 24), (8, 8, 8), (16, 16, 16)])
def test_cut_cells_open_top_is_spd(shape, seed):
    g = scenes.cut_cells(shape, seed=seed)
    assert not g.is_singular
    C = g.laplacian().to_csr()
    assert (C != C.T).nnz == 0
    assert C.diagonal().min() > 0


def test_cut_cells_without_obstacles_is_the_tank():
    g = scenes.cut_cells((8, 8, 8), obstacles=0)
    assert_array_equal(g.flags, scenes.tank((8, 8, 8)).flags)
    assert all(np.all(w == 1) for w in g.face_weights)


@pytest.mark.parametrize("value", [-1, 2.5, True, "3", None])
@pytest.mark.parametrize(("make", "name"), [(scenes.two_phase, "bubbles"),
                                            (scenes.cut_cells, "obstacles")])
def test_weighted_scenes_reject_bad_counts(make, name, value):
    with pytest.raises(ValueError, match=f"{name} must be an integer >= 0, got"):
        make((8, 8), **{name: value})


@pytest.mark.parametrize("ratio", [0.5, 0.0, -3.0, np.nan, np.inf, True, "10", None])
def test_two_phase_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio must be a finite number >= 1"):
        scenes.two_phase((8, 8), ratio=ratio)


@pytest.mark.parametrize("make", [scenes.two_phase, scenes.cut_cells])
def test_weighted_scenes_reject_bad_shape_and_spacing(make):
    with pytest.raises(ValueError, match="shape must be 2 or 3 sizes, each >= 4"):
        make((3, 8))
    with pytest.raises(ValueError, match="spacing must be a positive finite number"):
        make((8, 8), spacing=0.0)


def test_face_fractions_reject_bad_input():
    with pytest.raises(ValueError, match="samples must be an integer >= 1, got 0"):
        scenes.face_fractions((8, 8), [], samples=0)
    with pytest.raises(ValueError, match="spheres must be 2-D Sphere objects"):
        scenes.face_fractions((8, 8), [Sphere((1.0, 2.0, 3.0), 1.0)])
    with pytest.raises(ValueError, match="spheres must be 3-D Sphere objects"):
        scenes.face_fractions((8, 8, 8), [Box((0, 0, 0), (1, 1, 1))])
