"""The generic array-API kernels (dcdm.kernels.xp) against the NumPy reference (the oracle),
on torch CPU tensors standing in for device arrays; and the dispatch by array type."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest

from dcdm import kernels
from dcdm.kernels import arrays, reference
from dcdm.kernels import xp as kx
from dcdm.problems import CellType, Grid, faces
from dcdm.solvers.precond.mg import GeometricMG
from tests.conftest import random_flags

torch = pytest.importorskip("torch")

SHAPES = [(1, 1), (5, 7), (33, 17), (1, 4, 3), (6, 5, 7), (9, 31, 4), (7, 1, 5)]
DTYPES = [np.float32, np.float64]


def _t(a):
    return torch.from_numpy(np.array(a, copy=True))


def _tol(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", [CellType.SOLID, CellType.AIR])
def test_matvecs_match_reference(rng, shape, dtype, boundary):
    g = Grid(random_flags(rng, shape), spacing=0.5, boundary=boundary)
    x = rng.standard_normal(shape).astype(dtype)
    xf = np.where(g.fluid, x, 0).astype(dtype)
    fp, code, _ = g.kernel_arrays(_t(x))
    assert isinstance(code, torch.Tensor) and code.dtype == torch.int8
    tol = _tol(dtype)

    ref = reference.laplacian_matvec(g.padded_flags, x, np.empty_like(x), 4.0)
    xt = _t(x)
    out = kx.laplacian_matvec(fp, xt, torch.full_like(xt, float("nan")), 4.0)
    assert out.dtype == xt.dtype
    np.testing.assert_allclose(out.numpy(), ref, rtol=tol, atol=tol * max(np.abs(ref).max(), 1))
    np.testing.assert_array_equal(xt.numpy(), x)  # input untouched

    ref = reference.laplacian_matvec_fluid(g.stencil_code, xf, np.empty_like(xf), 4.0)
    out = kx.laplacian_matvec_fluid(code, _t(xf), torch.full_like(xt, float("nan")), 4.0)
    np.testing.assert_allclose(out.numpy(), ref, rtol=tol, atol=tol * max(np.abs(ref).max(), 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 1001])
def test_vector_kernels_match_reference(rng, dtype, n):
    x, r, p, Ap = (rng.standard_normal(n).astype(dtype) for _ in range(4))
    tol = _tol(dtype)
    xr, rr = x.copy(), r.copy()
    rr_ref = reference.cg_update(xr, rr, p, Ap, 0.37)
    xt, rt = _t(x), _t(r)
    rr_t = kx.cg_update(xt, rt, _t(p), _t(Ap), 0.37)
    assert isinstance(rr_t, float) and rr_t == pytest.approx(rr_ref, rel=10 * tol)
    np.testing.assert_allclose(xt.numpy(), xr, rtol=tol, atol=tol)
    np.testing.assert_allclose(rt.numpy(), rr, rtol=tol, atol=tol)

    d = kx.dot(_t(x), _t(p))
    assert isinstance(d, float)
    assert d == pytest.approx(reference.dot(x, p), rel=10 * tol, abs=tol * n)

    pt = _t(p)
    assert kx.xpby(_t(x), -0.5, pt) is pt  # in place
    np.testing.assert_allclose(pt.numpy(), reference.xpby(x, -0.5, p.copy()), rtol=tol, atol=tol)
    yt = _t(r)
    assert kx.axpy(2.5, _t(x), yt) is yt
    np.testing.assert_allclose(yt.numpy(), reference.axpy(2.5, x, r.copy()), rtol=tol, atol=tol)


def _level_pair(rng, shape, boundary):
    """A fine and a coarse level of a real MG hierarchy (3-D arrays) with stencil codes (the
    flag coarsening; Galerkin levels are coefficient stencils, tested below)."""
    g = Grid(random_flags(rng, shape, p_solid=0.1, p_air=0.05), spacing=0.5, boundary=boundary)
    mg = GeometricMG(max_coarse=8, coarsening="flags").build(g.laplacian())
    return mg.levels[0], mg.levels[1], mg._weight


MG_SHAPES = [(9, 7, 1), (8, 11, 6), (13, 5, 9)]


@pytest.mark.parametrize("shape", MG_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", [CellType.SOLID, CellType.AIR])
@pytest.mark.parametrize("shifted", [False, True])
def test_mg_kernels_match_reference(rng, shape, dtype, boundary, shifted):
    fine, coarse, weight = _level_pair(rng, shape, boundary)
    tol = _tol(dtype)
    sup = fine.code >= 0
    x = np.where(sup, rng.standard_normal(fine.code.shape), 0).astype(dtype)
    b = np.where(sup, rng.standard_normal(fine.code.shape), 0).astype(dtype)
    code_t = _t(fine.code)
    shift = np.where(sup, rng.exponential(2.0, sup.shape), 0).astype(dtype) if shifted else None
    kw, kw_t = dict(shift=shift), dict(shift=None if shift is None else _t(shift))

    for color in (0, 1):
        xr = x.copy()
        reference.rbgs_sweep(fine.code, xr, b, fine.scale, color, **kw)
        xt = _t(x)
        kx.rbgs_sweep(code_t, xt, _t(b), fine.scale, color, **kw_t)
        np.testing.assert_allclose(xt.numpy(), xr, rtol=tol, atol=tol * np.abs(xr).max())

    bc_ref = np.full(coarse.code.shape, np.nan, dtype=dtype)
    reference.residual_restrict(fine.code, x, b, fine.scale, coarse.code, bc_ref, fine.factors,
                                weight, **kw)
    bc = torch.full(coarse.code.shape, float("nan"), dtype=_t(x).dtype)
    kx.residual_restrict(code_t, _t(x), _t(b), fine.scale, _t(coarse.code), bc, fine.factors,
                         weight, work=torch.empty_like(_t(x)), **kw_t)
    np.testing.assert_allclose(bc.numpy(), bc_ref, rtol=tol, atol=tol * np.abs(bc_ref).max())

    xc = rng.standard_normal(coarse.code.shape).astype(dtype)
    xr = x.copy()
    reference.prolong_add(xc, fine.code, xr, fine.factors)
    xt = _t(x)
    kx.prolong_add(_t(xc), code_t, xt, fine.factors)
    np.testing.assert_allclose(xt.numpy(), xr, rtol=tol, atol=tol)

    for color in (0, 1):
        cells = fine.band[color]
        xr = x.copy()
        reference.rbgs_cells(fine.code, xr, b, fine.scale, cells, **kw)
        xt = _t(x)
        kx.rbgs_cells(code_t, xt, _t(b), fine.scale, tuple(_t(c.astype(np.int64)) for c in cells),
                      **kw_t)
        np.testing.assert_allclose(xt.numpy(), xr, rtol=tol, atol=tol * np.abs(xr).max())


# -- coefficient stencils (face weights), on NumPy arrays and CPU torch tensors ---------------

LIBS = ["numpy", "torch"]


def _as(lib, a):
    """A private copy of ``a`` as a NumPy array or a torch tensor."""
    return np.array(a, copy=True) if lib == "numpy" else _t(a)


def _np(a):
    return a if isinstance(a, np.ndarray) else a.numpy()


def _weighted_grid(rng, shape, boundary=CellType.SOLID, **flag_kw):
    """A grid with random flags and random face weights (some faces closed, weight 0)."""
    weights = tuple(np.where(rng.random(s) < 0.1, 0.0, rng.uniform(0.05, 3.0, s))
                    for s in faces.face_shapes(shape))
    return Grid(random_flags(rng, shape, **flag_kw), spacing=0.5, boundary=boundary,
                face_weights=weights)


def _coefficients(grid, dtype, ndim=None):
    """``grid.coefficients()`` in ``dtype``; with ``ndim=3`` a 2-D grid as ``n0 x n1 x 1``
    (its third couplings all zero)."""
    diag, couplings = grid.coefficients()
    diag, couplings = diag.astype(dtype), [k.astype(dtype) for k in couplings]
    if ndim == 3 and diag.ndim == 2:
        diag, couplings = diag[..., None], [k[..., None] for k in couplings]
        couplings.append(np.zeros_like(diag))
    return diag, tuple(couplings)


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", [CellType.SOLID, CellType.AIR])
def test_coef_matvec_matches_reference(rng, lib, shape, dtype, boundary):
    g = _weighted_grid(rng, shape, boundary)
    diag, couplings = _coefficients(g, dtype)
    assert diag.min() < 0 or g.fluid.all()  # identity rows are exercised where there are any
    x = rng.standard_normal(shape).astype(dtype)
    tol = _tol(dtype)
    ref = reference.coef_matvec(diag, couplings, x, np.empty_like(x), 4.0)
    xa = _as(lib, x)
    out = _as(lib, np.full(shape, np.nan, dtype))
    res = kx.coef_matvec(_as(lib, diag), tuple(_as(lib, k) for k in couplings), xa, out, 4.0)
    assert res is out and out.dtype == xa.dtype
    np.testing.assert_allclose(_np(out), ref, rtol=tol, atol=tol * max(np.abs(ref).max(), 1))
    np.testing.assert_array_equal(_np(xa), x)  # input untouched


@pytest.mark.parametrize("dtype", DTYPES)
def test_coef_matvec_on_grid_coefficients_like_torch(rng, dtype):
    g = _weighted_grid(rng, (6, 5, 7), CellType.AIR)
    x = _t(rng.standard_normal(g.shape).astype(dtype))
    diag, couplings = g.coefficients(x)  # converted by the grid, in x's dtype
    assert isinstance(diag, torch.Tensor) and diag.dtype == x.dtype
    ref = g.laplacian().to_csr().astype(dtype) @ x.numpy().ravel()
    out = kx.coef_matvec(diag, couplings, x, torch.empty_like(x), 1 / g.spacing**2)
    tol = _tol(dtype)
    np.testing.assert_allclose(out.numpy().ravel(), ref, rtol=tol, atol=tol * np.abs(ref).max())


# (grid shape, coarsening factors): 2-D grids run as n0 x n1 x 1 with factors (2, 2, 1)
COEF_MG_CASES = [((9, 7), (2, 2, 1)), ((8, 11, 6), (2, 2, 2)), ((13, 5, 9), (2, 2, 1)),
                 ((7, 1, 5), (2, 1, 2)), ((5, 6, 3), (1, 2, 2))]


@pytest.mark.parametrize("lib", LIBS)
@pytest.mark.parametrize(("shape", "factors"), COEF_MG_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_coef_mg_kernels_match_reference(rng, lib, shape, factors, dtype):
    tol = _tol(dtype)
    diag, couplings = _coefficients(_weighted_grid(rng, shape, p_solid=0.15, p_air=0.1),
                                    dtype, ndim=3)
    shape3 = diag.shape
    sup = diag >= 0
    x = np.where(sup, rng.standard_normal(shape3), 0).astype(dtype)
    b = np.where(sup, rng.standard_normal(shape3), 0).astype(dtype)
    dg, ks, bt = _as(lib, diag), tuple(_as(lib, k) for k in couplings), _as(lib, b)
    parity = np.indices(shape3).sum(axis=0) % 2

    for color in (0, 1):
        xr, xa = x.copy(), _as(lib, x)
        reference.coef_rbgs_sweep(diag, couplings, xr, b, 4.0, color)
        kx.coef_rbgs_sweep(dg, ks, xa, bt, 4.0, color)
        np.testing.assert_allclose(_np(xa), xr, rtol=tol, atol=tol * np.abs(xr).max())
        # every cell of the colour (those with diag <= 0 stay), and a random subset of them
        every = np.nonzero(parity == color)
        pick = rng.random(every[0].size) < 0.5
        some = tuple(c[pick] for c in every)
        for cells in (every, some):
            xr, xa = x.copy(), _as(lib, x)
            reference.coef_rbgs_cells(diag, couplings, xr, b, 4.0, cells)
            kx.coef_rbgs_cells(dg, ks, xa, bt, 4.0,
                               tuple(_as(lib, c.astype(np.int64)) for c in cells))
            np.testing.assert_allclose(_np(xa), xr, rtol=tol, atol=tol * np.abs(xr).max())

    cshape = tuple(-(-n // f) for n, f in zip(shape3, factors, strict=True))
    diag_c, _ = _coefficients(_weighted_grid(rng, cshape[:len(shape)]), dtype, ndim=3)
    bc_ref = np.full(diag_c.shape, np.nan, dtype=dtype)
    reference.coef_residual_restrict(diag, couplings, x, b, 4.0, diag_c, bc_ref, factors, 0.25)
    for work in (None, _as(lib, np.empty_like(x))):
        bc = _as(lib, np.full(diag_c.shape, np.nan, dtype=dtype))
        kx.coef_residual_restrict(dg, ks, _as(lib, x), bt, 4.0, _as(lib, diag_c), bc, factors,
                                  0.25, work=work)
        np.testing.assert_allclose(_np(bc), bc_ref, rtol=tol,
                                   atol=tol * max(np.abs(bc_ref).max(), 1))

    # the transfer up takes the fine diag in place of the stencil code (test: >= 0)
    xc = rng.standard_normal(diag_c.shape).astype(dtype)
    xr, xa = x.copy(), _as(lib, x)
    reference.prolong_add(xc, diag, xr, factors)
    kx.prolong_add(_as(lib, xc), dg, xa, factors)
    np.testing.assert_allclose(_np(xa), xr, rtol=tol, atol=tol)
    np.testing.assert_array_equal(_np(xa)[~sup], 0)


def test_coef_kernels_with_unit_weights_are_the_laplacian(rng):
    g = Grid(random_flags(rng, (7, 6, 5)), spacing=0.5, boundary=CellType.AIR)
    diag, couplings = _coefficients(g, np.float64)
    x = np.where(g.fluid, rng.standard_normal(g.shape), 0)
    want = reference.laplacian_matvec_fluid(g.stencil_code, x, np.empty_like(x), 4.0)
    out = kx.coef_matvec(_t(diag), tuple(_t(k) for k in couplings), _t(x),
                         torch.empty(g.shape, dtype=torch.float64), 4.0)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-12)


def test_coef_rbgs_cells_with_no_cells_is_a_no_op():
    x = torch.ones((2, 2, 2), dtype=torch.float64)
    empty = torch.zeros(0, dtype=torch.int64)
    kx.coef_rbgs_cells(torch.full_like(x, 6.0), (torch.ones_like(x),) * 3, x, x, 1.0,
                       (empty,) * 3)
    assert bool(torch.all(x == 1))


def test_rbgs_cells_with_no_cells_is_a_no_op():
    x = torch.ones((2, 2, 2))
    empty = torch.zeros(0, dtype=torch.int64)
    kx.rbgs_cells(torch.zeros((2, 2, 2), dtype=torch.int8), x, x, 1.0, (empty,) * 3)
    assert bool(torch.all(x == 1))


def test_edge_conversions_round_trip():
    a = np.arange(6, dtype=np.int8).reshape(2, 3)
    a.flags.writeable = False
    t = arrays.asarray_like(a, torch.zeros(1))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.int8
    t[0, 0] = 9  # a private copy: the read-only host array is not shared
    assert a[0, 0] == 0
    np.testing.assert_array_equal(arrays.to_numpy(t)[1], a[1])
    assert arrays.asarray_like(a, np.zeros(1)) is a
    assert arrays.asarray_like(a, torch.zeros(1), np.float32).dtype == torch.float32


def test_grid_converts_kernel_arrays_once_per_namespace_and_device(rng):
    g = Grid(random_flags(rng, (4, 5)))
    first = g.kernel_arrays(torch.zeros(1))
    assert g.kernel_arrays(torch.ones(3, dtype=torch.float64)) is first
    fp, code, fluid = first
    np.testing.assert_array_equal(code.numpy(), g.stencil_code)
    np.testing.assert_array_equal(fp.numpy(), g.padded_flags)
    np.testing.assert_array_equal(fluid.numpy(), g.fluid)
    assert g.kernel_arrays(np.zeros(1))[1] is g.stencil_code


# -- dispatch ----------------------------------------------------------------------------------


def test_dispatch_non_numpy_arrays_to_the_generic_kernels():
    t = torch.zeros(3)
    assert kernels.select(t) is kx
    assert kernels.mg_backend(t) is kx
    assert kernels.select(t, "xp") is kx
    assert "xp" in kernels.available_backends()
    # a NumPy subclass still gets the NumPy reference
    assert kernels.select(np.zeros(3).view(np.recarray)) is reference


def test_dispatch_without_a_gpu_never_picks_cuda():
    if kernels._load("cuda") is not None:
        pytest.skip("a GPU is present")
    assert "cuda" not in kernels.available_backends()
    with pytest.raises(ImportError, match="kernel back-end 'cuda' is not available"):
        kernels.select(torch.zeros(1), "cuda")


class _FakeCupyArray:
    """Looks like a CuPy array to the dispatch (which goes by the type's module)."""


_FakeCupyArray.__module__ = "cupy._core.core"


class _FakeCudaTensor:
    """Looks like a CUDA torch tensor to the dispatch."""

    is_cuda = True


_FakeCudaTensor.__module__ = "torch"


@pytest.fixture
def fake_cuda(monkeypatch):
    """A stand-in CUDA kernel module with only some of the kernels, as if a GPU were here."""
    calls = []

    def laplacian_matvec_fluid(code, x, out, scale):
        calls.append(("fluid", code, x, out))
        return out

    def dot(x, y):
        calls.append(("dot", x, y))
        return 1.5

    def residual_restrict(*args, work=None):
        calls.append(("restrict", work))

    mod = SimpleNamespace(__name__="fake_cuda", available=lambda: True, dot=dot,
                          laplacian_matvec_fluid=laplacian_matvec_fluid,
                          residual_restrict=residual_restrict)
    monkeypatch.setattr(kernels, "_load_cuda", lambda: mod)
    monkeypatch.setattr(kernels, "_from_dlpack", lambda t: ("cupy-view", t))
    kernels._load.cache_clear()
    kernels._device_backend.cache_clear()
    yield mod, calls
    kernels._load.cache_clear()
    kernels._device_backend.cache_clear()


def test_dispatch_cupy_to_cuda_and_fills_gaps_with_generic(fake_cuda):
    mod, _ = fake_cuda
    k = kernels.select(_FakeCupyArray())
    assert k.dot is mod.dot and k.laplacian_matvec_fluid is mod.laplacian_matvec_fluid
    assert k.cg_update is kx.cg_update  # not in the CUDA module: the generic kernel
    mg = kernels.mg_backend(_FakeCupyArray())
    assert mg.residual_restrict is mod.residual_restrict and mg.rbgs_sweep is kx.rbgs_sweep
    # CPU torch tensors stay on the generic kernels even with a GPU present
    assert kernels.select(torch.zeros(1)) is kx
    assert "cuda" in kernels.available_backends()


def test_dispatch_cuda_tensors_through_dlpack(fake_cuda):
    _, calls = fake_cuda
    x, out, code = _FakeCudaTensor(), _FakeCudaTensor(), _FakeCudaTensor()
    k = kernels.select(x)
    assert k.laplacian_matvec_fluid(code, x, out, 2.0) is out  # the caller's tensor back
    name, c, xc, oc = calls[-1]
    assert name == "fluid"
    assert (c, xc, oc) == (("cupy-view", code), ("cupy-view", x), ("cupy-view", out))
    assert k.dot(x, x) == 1.5
    work = _FakeCudaTensor()
    kernels.mg_backend(x).residual_restrict(1, 2, work=work)
    assert calls[-1] == ("restrict", ("cupy-view", work))


def test_importing_the_kernels_imports_no_gpu_library():
    import subprocess

    code = ("import sys, numpy as np; from dcdm import kernels; kernels.select(np.zeros(2)); "
            "print('torch' in sys.modules, 'cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
