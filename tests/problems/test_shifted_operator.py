"""``alpha L + diag(shift)`` on a grid (:class:`dcdm.problems.ShiftedGridLaplacian`): its
mat-vecs against the assembled matrix, its arithmetic, null spaces and errors; the
multigrid and Gauss-Seidel preconditioners that follow the shift."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

import dcdm
from dcdm.problems import CellType, Grid, ShiftedGridLaplacian, scenes
from dcdm.solvers.precond.mg import GeometricMG

F, S, A_ = int(CellType.FLUID), int(CellType.SOLID), int(CellType.AIR)


def _grid(rng, shape, boundary=CellType.SOLID) -> Grid:
    u = rng.random(shape)
    flags = np.full(shape, F, dtype=np.int8)
    flags[u < 0.15] = S
    flags[(u >= 0.15) & (u < 0.2)] = A_
    return Grid(flags, spacing=0.5, boundary=boundary)


@pytest.mark.parametrize("shape", [(7, 5), (6, 5, 4)])
@pytest.mark.parametrize("boundary", [CellType.SOLID, CellType.AIR])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matvec_matches_the_assembled_operator(rng, shape, boundary, dtype):
    g = _grid(rng, shape, boundary)
    d = rng.exponential(1.0, g.size)
    K = g.laplacian(dtype).shifted(d, alpha=2.5)
    fluid = g.fluid.reshape(-1)
    expect = (2.5 * g.laplacian().to_csr().toarray()
              + np.diag(np.where(fluid, d, 0.0)))
    expect[~fluid] = np.eye(g.size)[~fluid]  # non-FLUID rows stay identity rows
    assert_allclose(K.to_csr().toarray(), expect, rtol=1e-6)
    x = rng.standard_normal(g.size).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert_allclose(K.matvec(x), expect @ x, rtol=tol, atol=tol * np.abs(expect @ x).max())
    xf = np.where(fluid, x, 0).astype(dtype)
    assert_allclose(K.matvec_fluid(xf), np.where(fluid, expect @ xf, 0), rtol=tol,
                    atol=tol * np.abs(expect @ xf).max())
    assert_allclose(K.diagonal(), np.diag(expect), rtol=1e-6)
    assert K.matvec(x).dtype == dtype and K.scale == 2.5 / 0.25


def test_shift_off_fluid_is_ignored_and_the_operator_is_read_only(rng):
    g = _grid(rng, (6, 6))
    K = g.laplacian().shifted(np.ones(g.shape))
    assert_array_equal(K.shift, np.where(g.fluid.reshape(-1), 1.0, 0.0))
    with pytest.raises(ValueError):
        K.shift[0] = 5.0


def test_sums_and_multiples_stay_shifted_operators(rng):
    g = _grid(rng, (6, 7))
    A = g.laplacian()
    B = Grid(g.flags.copy(), spacing=0.5).laplacian()  # an equal grid, another object
    K = A.shifted(1.5) + 0.25 * B
    assert isinstance(K, ShiftedGridLaplacian)
    assert K.alpha == 1.25
    assert_allclose(K.shift, np.where(g.fluid.reshape(-1), 1.5, 0))
    x = rng.standard_normal(g.size)
    fluid = g.fluid.reshape(-1)
    assert_allclose(K.matvec(x)[fluid], (1.25 * (A @ x) + 1.5 * x)[fluid], rtol=1e-12)
    assert isinstance(A * 3, ShiftedGridLaplacian) and (A * 3).alpha == 3.0
    with pytest.raises(ValueError, match="different grids"):
        A + Grid(np.zeros((6, 7), np.int8)).laplacian()
    with pytest.raises(TypeError):
        A + np.eye(g.size)


@pytest.mark.parametrize("kwargs, match", [
    (dict(shift=-1.0), "shift must be >= 0"),
    (dict(shift=np.nan), "shift must be finite"),
    (dict(shift=np.ones(5)), "shift must be a number, a vector of length 42"),
    (dict(shift=1.0, alpha=0.0), "alpha must be a positive finite number"),
    (dict(shift=1.0, alpha=np.inf), "alpha must be a positive finite number"),
])
def test_bad_shift_or_alpha_is_refused_by_name(kwargs, match):
    g = Grid(np.zeros((6, 7), np.int8))
    with pytest.raises(ValueError, match=match):
        g.laplacian().shifted(**kwargs)


def test_a_positive_shift_removes_its_regions_null_vector():
    flags = np.full((8, 6), F, dtype=np.int8)
    flags[3, :] = S  # two closed regions
    g = Grid(flags)
    assert g.laplacian().shifted(0.0).nullspace.dimension == 2
    d = np.zeros(flags.shape)
    d[6, 2] = 1e-3  # in the second region only
    ns = g.laplacian().shifted(d).nullspace
    assert ns.dimension == 1 and (ns.labels.reshape(flags.shape)[:3] == 0).all()
    assert g.laplacian().shifted(1.0).nullspace is None


def test_torch_matvec_matches_numpy(rng):
    torch = pytest.importorskip("torch")
    g = _grid(rng, (5, 6, 4))
    K = g.laplacian().shifted(rng.exponential(1.0, g.size), alpha=0.5)
    x = rng.standard_normal(g.size)
    assert_allclose(K.matvec(torch.from_numpy(x)).numpy(), K.matvec(x), rtol=1e-12)


# -- the preconditioners follow the shift ----------------------------------------------------


@pytest.mark.parametrize("shape", [(24, 24, 24), (40, 33)])
@pytest.mark.parametrize("open_top", [True, False])
def test_shifted_vcycle_is_symmetric_and_positive(rng, shape, open_top):
    g = scenes.smoke(shape, obstacles=5, seed=3, open_top=open_top)
    K = g.laplacian().shifted(rng.exponential(10.0, g.size), alpha=2.0)
    M = GeometricMG().build(K)
    assert M.stats["mg_shifted"] and M.stats["mg_coarse_solver"] == "cholesky"
    f = g.fluid.ravel()
    for _ in range(3):
        x = np.where(f, rng.standard_normal(g.size), 0)
        y = np.where(f, rng.standard_normal(g.size), 0)
        Mx, My = M.apply(x), M.apply(y)
        assert abs(x @ My - y @ Mx) <= 1e-12 * np.linalg.norm(x) * np.linalg.norm(My)
        assert x @ Mx > 0


# the Galerkin coarsening (the default) takes one iteration more than the flag rule on L
# alone in this open tank (10 vs 9), the price of keeping thin walls on the coarse grids
@pytest.mark.parametrize("magnitude, coarsening, most", [
    (0.0, "galerkin", 10), (0.0, "flags", 9), (1.0, "galerkin", 8), (1.0, "flags", 8),
    (1e2, "galerkin", 4), (1e4, "galerkin", 2), (1e4, "flags", 2)])
def test_mg_built_on_the_shifted_operator_keeps_its_iterations(rng, magnitude, coarsening, most):
    """MG on ``L + D`` takes no more iterations than on ``L`` whatever D's size; an MG
    built on ``L`` alone degrades as D grows (the mismatch the shift removes)."""
    g = scenes.smoke((32, 32, 32), obstacles=8, seed=0)
    A = g.laplacian()
    K = A.shifted(magnitude * rng.exponential(1.0, g.size))
    b = np.where(g.fluid.ravel(), rng.standard_normal(g.size), 0)
    res = dcdm.solve(K, b, M=GeometricMG(coarsening=coarsening), rtol=1e-8)
    assert res.converged and res.iterations <= most
    assert np.linalg.norm(b - K @ res.x) <= 1e-8 * np.linalg.norm(b)
    if magnitude >= 1e2:
        P = GeometricMG().build(A)
        stale = dcdm.solve(K, b, M=lambda r: P.apply(r), rtol=1e-8, maxiter=200)
        assert stale.iterations > 20 * res.iterations


def test_mg_on_a_shifted_closed_box_is_spd_and_on_an_unshifted_one_singular(rng):
    g = scenes.smoke((24, 24, 24), obstacles=3, seed=1, open_top=False)
    b = np.where(g.fluid.ravel(), rng.standard_normal(g.size), 0)
    res = dcdm.solve(g.laplacian().shifted(1e-2), b, M="mg", rtol=1e-8)
    assert res.converged and res.iterations <= 10
    assert res.stats["mg_coarse_solver"] == "cholesky"
    assert "nullspace_dimension" not in res.stats
    res0 = dcdm.solve(g.laplacian().shifted(0.0), b - b[g.fluid.ravel()].mean()
                      * g.fluid.ravel(), M="mg", rtol=1e-8)
    assert res0.converged and res0.stats["mg_coarse_solver"] == "pseudo-inverse"


@pytest.mark.parametrize("M", ["mg", "rbgs"])
def test_torch_application_matches_numpy(rng, M):
    torch = pytest.importorskip("torch")
    g = scenes.smoke((20, 18, 16), obstacles=3, seed=2)
    K = g.laplacian().shifted(rng.exponential(5.0, g.size))
    P = dcdm.solvers.precond.registry.make_preconditioner(M, K)
    r = np.where(g.fluid.ravel(), rng.standard_normal(g.size), 0)
    assert_allclose(P.apply(torch.from_numpy(r)).numpy(), P.apply(r), rtol=1e-10,
                    atol=1e-12 * np.abs(P.apply(r)).max())


def test_rbgs_solves_the_shifted_rows(rng):
    g = scenes.smoke((16, 16), obstacles=2, seed=0)
    K = g.laplacian().shifted(rng.exponential(1e3, g.size))
    b = np.where(g.fluid.ravel(), rng.standard_normal(g.size), 0)
    res = dcdm.solve(K, b, M="rbgs", rtol=1e-10)
    assert res.converged and res.iterations <= 8
    assert sp.issparse(K.to_csr())
