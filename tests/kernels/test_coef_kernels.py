"""The coefficient-stencil kernels (face weights, Galerkin coarse levels): Numba against the
NumPy reference, and the reference against the assembled matrix."""

from __future__ import annotations

import numpy as np
import pytest

from dcdm.kernels import reference, stencil
from dcdm.problems import Grid

cpu = pytest.importorskip("dcdm.kernels.cpu")
cpu_mg = pytest.importorskip("dcdm.kernels.cpu_mg")


def _weighted_grid(shape, seed, boundary=2, zero_faces=True):
    rng = np.random.default_rng(seed)
    flags = rng.choice([0, 0, 0, 0, 1, 2], size=shape).astype(np.int8)
    weights = []
    for a in range(len(shape)):
        w = rng.uniform(1e-3, 2.0, size=tuple(n + (b == a) for b, n in enumerate(shape)))
        if zero_faces:
            w[rng.random(w.shape) < 0.1] = 0.0
        weights.append(w)
    return Grid(flags, boundary=boundary, face_weights=tuple(weights))


@pytest.mark.parametrize("shape", [(7, 9), (5, 6, 7), (1, 4, 5), (6, 5, 1), (2, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_coef_matvec_matches_reference_and_csr(shape, dtype):
    g = _weighted_grid(shape, 3)
    diag, couplings = g.coefficients()
    diag, couplings = diag.astype(dtype), tuple(k.astype(dtype) for k in couplings)
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)  # any x, not only FLUID
    ref = reference.coef_matvec(diag, couplings, x, np.empty_like(x), 2.5)
    fast = cpu.coef_matvec(diag, couplings, x, np.empty_like(x), 2.5)
    csr = (g.laplacian(dtype).to_csr() * 2.5) @ x.reshape(-1).astype(np.float64)
    fluid = g.fluid.reshape(-1)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(fast, ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(ref.reshape(-1)[fluid], csr[fluid], rtol=tol, atol=tol)
    np.testing.assert_array_equal(ref.reshape(-1)[~fluid], x.reshape(-1)[~fluid])


def test_unit_weights_give_the_plain_operator():
    flags = np.random.default_rng(0).choice([0, 0, 0, 1, 2], size=(6, 7, 5)).astype(np.int8)
    plain = Grid(flags)
    ones = Grid(flags, face_weights=tuple(np.ones(s) for s in
                                          [(7, 7, 5), (6, 8, 5), (6, 7, 6)]))
    assert (plain.laplacian().to_csr() != ones.laplacian().to_csr()).nnz == 0
    x = np.random.default_rng(1).standard_normal(plain.size)
    np.testing.assert_allclose(ones.laplacian().matvec(x), plain.laplacian().matvec(x),
                               rtol=0, atol=1e-13)
    np.testing.assert_array_equal(ones.laplacian().diagonal(), plain.laplacian().diagonal())


def _mg_problem(shape, seed):
    g = _weighted_grid(shape, seed)
    diag, couplings = g.coefficients()
    rng = np.random.default_rng(seed + 1)
    active = diag >= 0
    x = np.where(active, rng.standard_normal(shape), 0.0)
    b = np.where(active, rng.standard_normal(shape), 0.0)
    return diag, couplings, x, b


@pytest.mark.parametrize("shape", [(6, 7, 5), (5, 4, 1), (9, 8, 7)])
@pytest.mark.parametrize("color", [0, 1])
def test_coef_rbgs_sweep_matches_reference(shape, color):
    diag, couplings, x, b = _mg_problem(shape, 5)
    if len(couplings) == 2:
        couplings = (*couplings, np.zeros(shape))
    xr, xf = x.copy(), x.copy()
    reference.coef_rbgs_sweep(diag, couplings, xr, b, 3.0, color)
    cpu_mg.coef_rbgs_sweep(diag, couplings, xf, b, 3.0, color)
    np.testing.assert_allclose(xf, xr, rtol=1e-12, atol=1e-12)
    changed = (xr != x) & (diag > 0)
    parity = np.indices(shape).sum(axis=0) % 2
    assert changed.any() and (parity[changed] == color).all()


def test_coef_rbgs_cells_matches_reference():
    diag, couplings, x, b = _mg_problem((7, 6, 5), 7)
    cells = np.nonzero((np.indices(x.shape).sum(axis=0) % 2 == 1) & (diag >= 0))
    cells = tuple(np.ascontiguousarray(c[::2]) for c in cells)
    xr, xf = x.copy(), x.copy()
    reference.coef_rbgs_cells(diag, couplings, xr, b, 0.5, cells)
    cpu_mg.coef_rbgs_cells(diag, couplings, xf, b, 0.5, cells)
    np.testing.assert_allclose(xf, xr, rtol=1e-12, atol=1e-12)
    assert not np.array_equal(xr, x)


@pytest.mark.parametrize("shape,factors", [((8, 6, 4), (2, 2, 2)), ((7, 5, 3), (2, 2, 2)),
                                           ((6, 6, 1), (2, 2, 1))])
def test_coef_residual_restrict_matches_reference(shape, factors):
    diag, couplings, x, b = _mg_problem(shape, 11)
    coarse = tuple(-(-n // f) for n, f in zip(shape, factors, strict=True))
    diag_c = np.where(np.random.default_rng(2).random(coarse) < 0.2, -1.0, 1.0)
    br, bf = np.full(coarse, 9.0), np.full(coarse, 9.0)
    reference.coef_residual_restrict(diag, couplings, x, b, 1.5, diag_c, br, factors, 0.25)
    cpu_mg.coef_residual_restrict(diag, couplings, x, b, 1.5, diag_c, bf, factors, 0.25)
    np.testing.assert_allclose(bf, br, rtol=1e-12, atol=1e-12)
    assert (br[diag_c < 0] == 0).all()
    # the restricted residual is the block sum of b - A x
    r = b - reference.coef_matvec(diag, couplings, x, np.empty_like(x), 1.5)
    r = np.where(diag >= 0, r, 0)
    assert np.isclose(br[diag_c >= 0].sum(), 0.25 * sum(
        r[tuple(slice(f * I, f * I + f) for f, I in zip(factors, idx, strict=True))].sum()
        for idx in zip(*np.nonzero(diag_c >= 0), strict=True)))


def test_face_coefficients_close_zero_faces_and_air_counts():
    flags = np.zeros((3, 1), dtype=np.int8)
    flags[2, 0] = 2  # AIR
    w0 = np.array([[0.5], [2.0], [4.0], [7.0]])  # faces along axis 0: boundary, 0|1, 1|2, boundary
    w1 = np.zeros((3, 2))  # axis 1 closed
    fp = stencil.pad_flags(flags, 1)
    diag, (k0, k1) = stencil.face_coefficients(fp, (w0, w1))
    # cell 0: SOLID boundary below (closed), face 2.0 to FLUID cell 1; cell 1: 2.0 + AIR 4.0
    assert diag.ravel().tolist() == [2.0, 6.0, -1.0]
    assert k0.ravel().tolist() == [2.0, 0.0, 0.0] and not k1.any()


@pytest.mark.parametrize("shape", [(8, 6, 4), (7, 5, 3), (9, 6, 1), (2, 3, 2)])
@pytest.mark.parametrize("shifted", [False, True])
def test_galerkin_coarsen_matches_reference(shape, shifted):
    g = _weighted_grid(shape, 21)
    diag, couplings = g.coefficients()
    if len(couplings) == 2:
        couplings = (*couplings, np.zeros(shape))
    shift = None
    if shifted:
        shift = np.where(diag >= 0, np.random.default_rng(3).exponential(1.0, shape), 0.0)
        diag = np.where(diag >= 0, diag + shift, diag)
    factors = tuple(2 if n > 1 else 1 for n in shape)
    ref = reference.galerkin_coarsen(diag, couplings, factors, 0.5, shift)
    fast = cpu_mg.galerkin_coarsen(diag, couplings, factors, 0.5, shift)
    for a, b in zip((ref[0], *ref[1]), (fast[0], *fast[1]), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)
    assert (ref[0] >= 0).any()


@pytest.mark.parametrize("shape", [(8, 6, 4), (7, 5, 3), (9, 6, 1)])
@pytest.mark.parametrize("shifted", [False, True])
def test_galerkin_coarsen_code_equals_the_coefficient_route(shape, shifted):
    """From the int8 code (no fine arrays) = from the unit-weight coefficients."""
    flags = np.random.default_rng(5).choice([0, 0, 0, 1, 2], size=shape).astype(np.int8)
    fp = np.pad(flags, 1, constant_values=1)
    code = stencil.stencil_code(fp)
    diag, couplings = stencil.face_coefficients(fp)
    shift = None
    if shifted:
        shift = np.where(code >= 0, np.random.default_rng(6).exponential(1.0, shape), 0.0)
        diag = np.where(diag >= 0, diag + shift, diag)
    factors = tuple(2 if n > 1 else 1 for n in shape)
    want = reference.galerkin_coarsen(diag, couplings, factors, 0.5, shift)
    for got in (reference.galerkin_coarsen_code(code, factors, 0.5, shift),
                cpu_mg.galerkin_coarsen_code(code, factors, 0.5, shift)):
        for a, b in zip((want[0], *want[1]), (got[0], *got[1]), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("shape", [(6, 7, 5), (40, 9, 8), (5, 4, 1), (130, 30, 20), (3, 3, 3)])
@pytest.mark.parametrize("first", [0, 1])
@pytest.mark.parametrize("shifted", [False, True])
def test_fused_pair_sweeps_equal_two_half_sweeps(shape, first, shifted, monkeypatch):
    """The one-pass full sweep (chunks of planes with a lag) gives exactly the two
    half-sweeps' result, serial and parallel, code and coefficient stencils."""
    import dcdm.kernels._jit as jit

    diag, couplings, x, b = _mg_problem(shape, 13)
    if len(couplings) == 2:
        couplings = (*couplings, np.zeros(shape))
    flags = np.where(diag >= 0, 0, 1).astype(np.int8)
    code = stencil.stencil_code(np.pad(flags, 1, constant_values=1))
    x = np.where(code >= 0, x, 0.0)
    shift = np.where(code >= 0, 0.5, 0.0) if shifted else None
    for parallel_min in (10**9, 1):
        monkeypatch.setattr(jit, "PARALLEL_MIN", parallel_min)
        want, got = x.copy(), x.copy()
        reference.rbgs_pair(code, want, b, 2.0, first, shift=shift)
        cpu_mg.rbgs_pair(code, got, b, 2.0, first, shift=shift)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
        want, got = x.copy(), x.copy()
        reference.coef_rbgs_pair(diag, couplings, want, b, 2.0, first)
        cpu_mg.coef_rbgs_pair(diag, couplings, got, b, 2.0, first)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
