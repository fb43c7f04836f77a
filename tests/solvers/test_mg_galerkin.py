"""The multigrid's Galerkin coarsening (issue 16): coarse operators equal ``P^T A P / 2``,
the V-cycle stays a symmetric positive definite linear map with thin walls, face weights
and shifts, and MG-PCG keeps its iteration counts where the flag rule broke down."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.csgraph  # noqa: F401  (sp.csgraph)

from dcdm import solve
from dcdm.kernels import stencil
from dcdm.problems import Grid, gallery, rhs
from dcdm.solvers.precond.coarsening import BETA, coarsen_coefficients
from dcdm.solvers.precond.mg import GeometricMG


def _prolongation(shape, factors) -> sp.csr_array:
    """Piecewise-constant P (fine cells x coarse cells), every fine cell to its parent."""
    coarse = tuple(-(-n // f) for n, f in zip(shape, factors, strict=True))
    parent = np.ravel_multi_index(
        tuple(i // f for i, f in zip(np.indices(shape), factors, strict=True)), coarse)
    n = int(np.prod(shape))
    return sp.csr_array((np.ones(n), (np.arange(n), parent.ravel())),
                        shape=(n, int(np.prod(coarse))))


def _weighted(shape, seed):
    rng = np.random.default_rng(seed)
    flags = rng.choice([0, 0, 0, 0, 0, 1, 2], size=shape).astype(np.int8)
    weights = tuple(rng.uniform(1e-3, 1.0, s) * (rng.random(s) > 0.1)
                    for s in [tuple(n + (b == a) for b, n in enumerate(shape))
                              for a in range(len(shape))])
    return Grid(flags, face_weights=weights)


@pytest.mark.parametrize("shape", [(8, 6, 4), (7, 5, 3), (9, 6, 1)])
@pytest.mark.parametrize("shifted", [False, True])
def test_coarse_operator_is_half_the_galerkin_product(shape, shifted):
    g = _weighted(shape, 4)
    diag, couplings = g.coefficients()
    if len(couplings) == 2:
        couplings = (*couplings, np.zeros(shape))
    active = diag >= 0
    shift = None
    if shifted:
        shift = np.where(active, np.random.default_rng(1).exponential(1.0, shape), 0.0)
        diag = np.where(active, diag + shift, diag)
    factors = tuple(2 if n > 1 else 1 for n in shape)
    dc, kc = coarsen_coefficients(diag, couplings, factors, shift=shift)
    # inactive rows and columns zero (diag 0, no couplings): P^T A P sees the unknowns only
    A = stencil.assemble_coefficients(np.where(active, diag, 0.0), couplings, 1.0, np.float64)
    P = _prolongation(shape, factors)
    expect = BETA * (P.T @ A @ P)
    if shifted:
        expect = expect + (1 - BETA) * sp.diags_array(P.T @ shift.ravel())
    got = stencil.assemble_coefficients(np.maximum(dc, 0.0), kc, 1.0, np.float64)
    np.testing.assert_allclose(got.toarray(), expect.toarray(), rtol=1e-12, atol=1e-12)
    assert ((dc < 0) == (P.T @ active.ravel() == 0).reshape(dc.shape)).all()


@pytest.mark.parametrize("wall", [9, 10])
def test_thin_wall_survives_coarsening(wall):
    """A one-cell wall without a hole, at either parity: the first coarse level couples
    nothing across it (two separate parts), where the flag rule merges the two sides."""
    flags = np.zeros((20, 8, 6), dtype=np.int8)
    flags[wall] = 1
    flags[:, -1] = 2  # AIR on top of both compartments
    A = Grid(flags).laplacian()
    M = GeometricMG(max_coarse=100).build(A)
    lev = M.levels[1]
    C = stencil.assemble_coefficients(lev.diag_host, lev.couplings_host, 1.0, np.float64)
    active = np.flatnonzero(lev.diag_host.ravel() > 0)
    n_parts = sp.csgraph.connected_components(C[active][:, active], directed=False)[0]
    assert n_parts == 2
    res = solve(A, rhs.random(A.grid), M="mg", rtol=1e-8)
    assert res.converged and res.iterations <= 10


@pytest.mark.parametrize("build", [
    lambda: gallery.baffles((16, 12, 10))[0],
    lambda: gallery.twophase((16, 14, 12))[0],
    lambda: gallery.cutcell((24, 20))[0],
    lambda: gallery.twophase((18, 16), open_top=False)[0],
    lambda: _weighted((12, 10, 9), 2).laplacian().shifted(0.3),
])
def test_vcycle_is_symmetric_positive_definite(build):
    """The V-cycle as a dense matrix on the unknowns: symmetric to rounding, and positive
    definite on the complement of the null space (plain CG applies)."""
    A = build()
    M = GeometricMG().build(A)
    n = A.shape[0]
    support = A.support if hasattr(A, "support") else np.ones(n, bool)
    idx = np.flatnonzero(support)
    B = np.zeros((idx.size, idx.size))
    e = np.zeros(n)
    for j, c in enumerate(idx):
        e[c] = 1.0
        B[:, j] = M.apply(e)[idx]
        e[c] = 0.0
    assert np.abs(B - B.T).max() <= 1e-10 * np.abs(B).max()
    ns = A.nullspace
    if ns is not None:  # positive on the complement of the constants of closed regions
        labels = ns.labels[idx]
        Q = np.stack([(labels == k) / np.sqrt((labels == k).sum())
                      for k in range(ns.n_regions)], axis=1)
        proj = np.eye(idx.size) - Q @ Q.T
        B = proj @ B @ proj
    w = np.linalg.eigvalsh(0.5 * (B + B.T))
    n_null = 0 if ns is None else ns.n_regions
    assert (w > -1e-10 * w.max()).all()
    assert w[n_null] > 1e-8 * w.max()


@pytest.mark.parametrize("name, n, most, flags_least", [
    ("baffles3d", 32, 8, 30), ("baffles2d", 256, 10, 50)])
def test_thin_walls_keep_mg_iterations_low(name, n, most, flags_least):
    """Issue 16's thin-wall tanks: <= 12 iterations with the Galerkin coarsening, where the
    flag rule, which erases the baffles on its coarse grids, needs several times more."""
    A, b = gallery.build(name, n)
    res = solve(A, b, M="mg", rtol=1e-6)
    assert res.converged and res.iterations <= most
    assert np.linalg.norm(b - A @ res.x) <= 1e-6 * np.linalg.norm(b)
    old = solve(A, b, M=GeometricMG(coarsening="flags"), rtol=1e-6)
    assert old.converged and old.iterations >= flags_least


@pytest.mark.parametrize("name, n, most", [("twophase3d", 32, 16), ("cutcell3d", 32, 8),
                                           ("twophase2d", 128, 16), ("cutcell2d", 128, 10)])
def test_weighted_grids_converge_with_mg_and_beat_amg_iterations(name, n, most):
    A, b = gallery.build(name, n)
    res = solve(A, b, M="mg", rtol=1e-6)
    assert res.converged and res.iterations <= most
    assert np.linalg.norm(b - A.to_csr() @ res.x) <= 1e-6 * np.linalg.norm(b)
    amg = solve(A, b, M="amg", rtol=1e-6)
    assert res.iterations <= 1.5 * amg.iterations


def test_weighted_vcycle_on_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    A, b = gallery.twophase((12, 10, 8))
    M = GeometricMG().build(A)
    z = M.apply(b)
    zt = M.apply(torch.from_numpy(b))
    np.testing.assert_allclose(zt.numpy(), z, rtol=1e-10, atol=1e-12 * np.abs(z).max())


def test_coarsening_option_errors():
    A, b = gallery.twophase((8, 8))
    with pytest.raises(ValueError, match="coarsening must be one of"):
        GeometricMG(coarsening="amg")
    with pytest.raises(ValueError, match="coarsening='flags' cannot see face weights"):
        solve(A, b, M="mg", coarsening="flags")
    res = solve(A, b, M="mg", rtol=1e-8)
    assert res.stats["mg_coarsening"] == "galerkin"
