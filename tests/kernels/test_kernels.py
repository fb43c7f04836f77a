"""Every fast kernel against the NumPy reference (the oracle)."""

import numpy as np
import pytest

from dcdm import kernels
from dcdm.kernels import reference
from dcdm.problems import CellType, Grid
from tests.conftest import random_flags

pytest.importorskip("numba")
from dcdm.kernels import cpu

SHAPES = [(1, 1), (5, 7), (33, 17), (1, 4, 3), (6, 5, 7), (16, 16, 16), (9, 31, 4)]


def _flags(rng, shape):
    return random_flags(rng, shape, p_solid=0.2, p_air=0.1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", [CellType.SOLID, CellType.AIR])
def test_numba_matvec_matches_reference(rng, shape, dtype, boundary):
    g = Grid(_flags(rng, shape), spacing=0.5, boundary=boundary)
    x = rng.standard_normal(shape).astype(dtype)
    x_before = x.copy()
    ref = reference.laplacian_matvec(g.padded_flags, x, np.empty_like(x), 4.0)
    out = cpu.laplacian_matvec(g.padded_flags, x, np.full_like(x, np.nan), 4.0)
    assert out.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol * np.abs(ref).max())
    np.testing.assert_array_equal(x, x_before)


def test_dispatch_picks_numba_for_numpy_and_reference_when_forced(monkeypatch):
    x = np.zeros(3)
    assert kernels.select(x) is cpu
    assert kernels.select(x, "numpy") is reference
    monkeypatch.setenv("DCDM_KERNELS", "numpy")
    assert kernels.select(x) is reference
    assert set(kernels.available_backends()) >= {"numpy", "numba"}


def test_dispatch_rejects_unknown_backend():
    with pytest.raises(ValueError, match="backend='cuda9' is not a kernel back-end"):
        kernels.select(np.zeros(2), "cuda9")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 7, 1000, 100_003])
def test_vector_kernels_match_reference(rng, dtype, n):
    x, r, p, Ap = (rng.standard_normal(n).astype(dtype) for _ in range(4))
    alpha = 0.37
    tol = 1e-5 if dtype == np.float32 else 1e-12
    xr, rr_, pr, Apr = x.copy(), r.copy(), p.copy(), Ap.copy()
    rr_ref = reference.cg_update(xr, rr_, pr, Apr, alpha)
    xn, rn = x.copy(), r.copy()
    rr = cpu.cg_update(xn, rn, p, Ap, alpha)
    np.testing.assert_allclose(xn, xr, rtol=tol, atol=tol)
    np.testing.assert_allclose(rn, rr_, rtol=tol, atol=tol)
    assert rr == pytest.approx(rr_ref, rel=10 * tol)

    np.testing.assert_allclose(cpu.dot(x, p), reference.dot(x, p), rtol=10 * tol, atol=tol * n)

    z = x.copy()
    p1, p2 = p.copy(), p.copy()
    np.testing.assert_allclose(cpu.xpby(z, -0.5, p1), reference.xpby(z, -0.5, p2), rtol=tol,
                               atol=tol)
    y1, y2 = r.copy(), r.copy()
    np.testing.assert_allclose(cpu.axpy(2.5, x, y1), reference.axpy(2.5, x, y2), rtol=tol,
                               atol=tol)


def test_reference_diagonal_matches_csr(rng):
    g = Grid(_flags(rng, (5, 6, 7)), spacing=2.0)
    A = g.laplacian()
    np.testing.assert_allclose(A.diagonal(), A.to_csr().diagonal())


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", [CellType.SOLID, CellType.AIR])
def test_fluid_matvec_equals_general_on_fluid_supported_vectors(rng, shape, dtype, boundary):
    g = Grid(_flags(rng, shape), spacing=0.5, boundary=boundary)
    x = np.where(g.fluid, rng.standard_normal(shape), 0).astype(dtype)
    general = reference.laplacian_matvec(g.padded_flags, x, np.empty_like(x), 4.0)
    ref = reference.laplacian_matvec_fluid(g.stencil_code, x, np.empty_like(x), 4.0)
    out = cpu.laplacian_matvec_fluid(g.stencil_code, x, np.full_like(x, np.nan), 4.0)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    atol = tol * max(np.abs(general).max(), 1)
    np.testing.assert_allclose(ref, general, rtol=tol, atol=atol)
    np.testing.assert_allclose(out, general, rtol=tol, atol=atol)


def test_stencil_code_is_diagonal_count_or_minus_one(rng):
    g = Grid(_flags(rng, (6, 7, 5)))
    A = g.laplacian()
    code = g.stencil_code
    np.testing.assert_array_equal(code[~g.fluid], -1)
    np.testing.assert_array_equal(code[g.fluid], A.diagonal().reshape(g.shape)[g.fluid])
