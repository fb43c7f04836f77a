"""Tests of :mod:`dcdm.problems.gallery`: named, seeded test problems."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dcdm.problems import CellType, GridLaplacian, gallery


@pytest.mark.parametrize(("shape", "diag"), [((6, 6, 6), 6.0), ((5, 7, 4), 6.0), ((8, 8), 4.0)])
def test_poisson_diagonal_everywhere(shape, diag):
    A, b = gallery.poisson(shape)
    g = A.grid
    assert g.boundary is CellType.AIR
    assert g.n_fluid == g.size
    assert not g.is_singular
    assert_array_equal(A.diagonal(), diag)
    C = A.to_csr()
    assert_array_equal(C.diagonal(), diag)
    off = C - diag * np.eye(g.size)
    assert set(np.unique(off).tolist()) == {-1.0, 0.0}
    # each row: one -1 per in-domain neighbour
    n_nb = (C != 0).sum(axis=1) - 1
    assert n_nb.min() == len(shape)  # corners
    assert n_nb.max() == 2 * len(shape)  # interior
    assert b.shape == (g.size,)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["random", "smooth", "ones"])
def test_poisson_rhs_kinds(kind, dtype):
    A, b = gallery.poisson((6, 5), rhs=kind, seed=2, dtype=dtype)
    assert A.dtype == b.dtype == np.dtype(dtype)
    if kind == "ones":
        assert_array_equal(b, 1.0)
    else:
        assert np.std(b) > 0
        _, b2 = gallery.poisson((6, 5), rhs=kind, seed=2, dtype=dtype)
        assert_array_equal(b, b2)


def test_build_smoke2d_16():
    A, b = gallery.build("smoke2d", 16)
    assert isinstance(A, GridLaplacian)
    assert A.shape == (256, 256)
    assert A.grid.shape == (16, 16)
    assert b.shape == (256,)
    assert np.all(np.isfinite(b))
    assert_array_equal(b[~A.grid.fluid.ravel()], 0.0)
    assert np.any(A.grid.flags == CellType.SOLID)
    assert np.all(A.grid.flags[:, -1] == CellType.AIR)


@pytest.mark.parametrize("name", sorted(gallery.PROBLEMS))
def test_build_every_problem(name):
    A, b = gallery.build(name, 8, seed=1)
    ndim = 2 if name.endswith("2d") else 3
    assert A.grid.shape == (8,) * ndim
    assert A.shape == (8**ndim, 8**ndim)
    assert b.shape == (8**ndim,)
    assert_array_equal(b[~A.grid.fluid.ravel()], 0.0)
    A2, b2 = gallery.build(name, np.int64(8), seed=1)
    assert_array_equal(A2.grid.flags, A.grid.flags)
    assert_array_equal(b2, b)


def test_smoke_matches_scene_and_passes_options():
    A, b = gallery.smoke(
        (12, 12, 12), obstacles=3, open_top=False, rhs="ones", seed=4, dtype=np.float32
    )
    assert A.dtype == np.float32
    assert A.grid.is_singular
    assert not np.any(A.grid.flags == CellType.AIR)
    assert_array_equal(b, A.grid.mask(np.ones(A.grid.size, dtype=np.float32)))


def test_gallery_docstring_example():
    A, _ = gallery.build("smoke3d", n=16)
    assert A.shape == (4096, 4096)


def test_poisson_matvec_of_ones_is_boundary_count():
    A, _ = gallery.poisson((4, 5))
    y = A.matvec(np.ones(20)).reshape(4, 5)
    expected = np.zeros((4, 5))
    expected[0] += 1
    expected[-1] += 1
    expected[:, 0] += 1
    expected[:, -1] += 1
    assert_allclose(y, expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", ["poisson", "smoke", "Poisson2d", "smoke4d", ""])
def test_build_rejects_unknown_name(name):
    with pytest.raises(ValueError, match=rf"problem={name!r} is not known; choose one of"):
        gallery.build(name, 8)


@pytest.mark.parametrize("n", [3, 0, -4, 8.0, True, "8", None])
def test_build_rejects_bad_n(n):
    with pytest.raises(ValueError, match="n must be an integer >= 4"):
        gallery.build("poisson2d", n)


@pytest.mark.parametrize("kind", ["zeros", "Random", ""])
def test_rejects_unknown_rhs(kind):
    with pytest.raises(ValueError, match="rhs must be 'random', 'smooth' or 'ones'"):
        gallery.poisson((5, 5), rhs=kind)
    with pytest.raises(ValueError, match="rhs must be 'random', 'smooth' or 'ones'"):
        gallery.build("smoke2d", 8, rhs=kind)


@pytest.mark.parametrize(("name", "scene"), [("twophase", "two_phase"), ("cutcell", "cut_cells")])
@pytest.mark.parametrize("ndim", [2, 3])
def test_weighted_problems_match_their_scenes(name, scene, ndim, monkeypatch):
    from dcdm.problems import rhs, scenes

    A, b = gallery.build(f"{name}{ndim}d", 12, seed=3)
    g = getattr(scenes, scene)((12,) * ndim, seed=3)
    assert A.grid.same_as(g) and A.grid.face_weights is not None
    assert not A.grid.is_singular
    assert_array_equal(b, rhs.random(g, seed=3))
    # the operator carries the weights: it differs from the unweighted one on the same flags
    plain = type(g)(g.flags).laplacian().to_csr()
    assert (A.to_csr() != plain).nnz > 0
    x = np.random.default_rng(0).standard_normal(A.shape[0])
    assert_allclose(A.matvec(x), A.to_csr() @ x, rtol=1e-12, atol=1e-14)


def test_weighted_problems_pass_their_options():
    A, b = gallery.twophase((10, 10), ratio=10.0, bubbles=0, rhs="ones", dtype=np.float32)
    assert A.dtype == b.dtype == np.float32
    assert all(np.all(w == np.float64(0.1)) for w in A.grid.face_weights)
    assert_array_equal(b, A.grid.mask(np.ones(100, dtype=np.float32)))
    A, _ = gallery.cutcell((10, 10, 10), obstacles=0, open_top=False, rhs="smooth")
    assert A.grid.is_singular and not np.any(A.grid.flags == CellType.AIR)
    with pytest.raises(ValueError, match="ratio must be a finite number >= 1"):
        gallery.build("twophase2d", 8, ratio=0.5)
    with pytest.raises(ValueError, match="obstacles must be an integer >= 0"):
        gallery.build("cutcell3d", 8, obstacles=-1)
