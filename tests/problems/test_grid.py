"""Tests of :mod:`dcdm.problems.grid`: flag validation, the stencil, its CSR form, null spaces."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from dcdm.problems import CellType, Grid, GridLaplacian
from dcdm.solvers import detect_nullspace

F, S, A_ = int(CellType.FLUID), int(CellType.SOLID), int(CellType.AIR)

SHAPES = [(7, 5), (9, 11), (1, 6), (7, 5, 6), (3, 4, 5)]
BOUNDARIES = [CellType.SOLID, CellType.AIR]
DTYPES = [np.float32, np.float64]


def _tol(dtype) -> float:
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def _same_partition(a: np.ndarray, b: np.ndarray) -> None:
    """Assert two region labellings (``-1`` = in no region) agree up to renumbering."""
    a = np.asarray(a).reshape(-1)
    b = np.asarray(b).reshape(-1)
    assert_array_equal(a < 0, b < 0)
    inside = a >= 0
    pairs = set(zip(a[inside].tolist(), b[inside].tolist(), strict=True))
    assert len(pairs) == len(np.unique(a[inside])) == len(np.unique(b[inside]))


def _two_regions() -> tuple[Grid, np.ndarray, np.ndarray]:
    """Two FLUID regions split by a SOLID wall; the left one is open to AIR at the top.

    Returns the grid and grid-shaped boolean masks of the open and the closed region.
    """
    flags = np.full((8, 6), F, dtype=np.int8)
    flags[3, :] = S
    flags[:3, -1] = A_
    flags[5, 2] = S  # an obstacle inside the closed region
    open_region = np.zeros(flags.shape, dtype=bool)
    open_region[:3, :-1] = True
    closed = flags == F
    closed[:3] = False
    return Grid(flags), open_region, closed


# -- construction and validation ----------------------------------------------------------


def test_grid_properties():
    flags = np.zeros((4, 5), dtype=np.int8)
    flags[1, 1] = S
    flags[:, -1] = A_
    g = Grid(flags, spacing=0.5)
    assert g.shape == (4, 5)
    assert g.ndim == 2
    assert g.size == 20
    assert g.n_fluid == 4 * 4 - 1
    assert g.n_regions == 1
    assert g.spacing == 0.5
    assert g.boundary is CellType.SOLID
    assert g.flags.dtype == np.int8
    assert_array_equal(g.fluid, flags == F)
    assert g.padded_flags.shape == (6, 7)
    assert np.all(g.padded_flags[0] == S) and np.all(g.padded_flags[:, -1] == S)
    assert "SOLID" in repr(g) and "(4, 5)" in repr(g)
    A = g.laplacian()
    assert isinstance(A, GridLaplacian)
    assert A.shape == (20, 20)
    assert A.dtype == np.float64
    assert A.grid is g
    assert "GridLaplacian" in repr(A)


def test_grid_accepts_integral_floats_and_int_boundary():
    flags = np.array([[0.0, 1.0], [2.0, 0.0]])
    g = Grid(flags, boundary=2)
    assert g.flags.dtype == np.int8
    assert_array_equal(g.flags, [[F, S], [A_, F]])
    assert g.boundary is CellType.AIR


def test_grid_padded_flags_use_boundary():
    g = Grid(np.zeros((3, 3, 3), dtype=np.int8), boundary=CellType.AIR)
    fp = g.padded_flags
    assert fp.shape == (5, 5, 5)
    assert np.all(fp[0] == A_) and np.all(fp[-1] == A_) and np.all(fp[:, :, 0] == A_)
    assert np.all(fp[1:-1, 1:-1, 1:-1] == F)


def test_grid_mask_zeroes_non_fluid_cells(rng, random_flags):
    g = Grid(random_flags((5, 6)))
    field = rng.standard_normal(g.shape)
    before = field.copy()
    out = g.mask(field)
    assert_array_equal(field, before)
    assert_array_equal(out, np.where(g.fluid, field, 0.0))
    assert_array_equal(g.mask(field.ravel()), out.ravel())
    assert g.mask(np.ones(g.shape, dtype=np.int64)).dtype == np.float64
    assert g.mask(field.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize(
    ("flags", "exc", "match"),
    [
        (np.zeros(5, dtype=np.int8), ValueError, r"2-D or 3-D.*ndim=1"),
        (np.zeros((2, 2, 2, 2), dtype=np.int8), ValueError, r"2-D or 3-D.*ndim=4"),
        (np.int8(0), ValueError, r"2-D or 3-D.*ndim=0"),
        (np.zeros((0, 3), dtype=np.int8), ValueError, r"at least one cell per axis"),
        (np.array([[0, 1], [2, 3]]), ValueError, r"unknown cell codes \[3\]"),
        (np.array([[0, -1], [2, 1]]), ValueError, r"unknown cell codes \[-1\]"),
        (np.array([[0, 1], [2, 258]]), ValueError, r"unknown cell codes \[258\]"),
        (np.array([[0.0, 0.5], [1.0, 2.0]]), TypeError, r"integer CellType codes.*float64"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), TypeError, r"integer CellType codes"),
        (np.zeros((3, 3), dtype=bool), TypeError, r"integer CellType codes.*bool"),
        (np.zeros((3, 3), dtype=np.complex128), TypeError, r"integer CellType codes"),
    ],
)
def test_grid_rejects_bad_flags(flags, exc, match):
    with pytest.raises(exc, match=match):
        Grid(flags)


@pytest.mark.parametrize("spacing", [0.0, -1.0, np.nan, np.inf, -np.inf])
def test_grid_rejects_bad_spacing(spacing):
    with pytest.raises(ValueError, match="spacing must be a positive finite number"):
        Grid(np.zeros((3, 3), dtype=np.int8), spacing=spacing)


@pytest.mark.parametrize("boundary", [CellType.FLUID, 0, 3, -1, "air", None])
def test_grid_rejects_bad_boundary(boundary):
    with pytest.raises(ValueError, match=r"boundary must be CellType\.SOLID or CellType\.AIR"):
        Grid(np.zeros((3, 3), dtype=np.int8), boundary=boundary)


@pytest.mark.parametrize("dtype", [int, np.int32, np.float16, np.complex128, bool])
def test_laplacian_rejects_non_float_dtype(dtype):
    g = Grid(np.zeros((3, 3), dtype=np.int8))
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        g.laplacian(dtype)


# -- inputs are never mutated ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.float64])
def test_grid_copies_flags(dtype):
    flags = np.zeros((4, 4), dtype=dtype)
    flags[:, -1] = A_
    g = Grid(flags)
    before = g.flags.copy()
    flags[...] = S
    assert_array_equal(g.flags, before)
    assert g.n_fluid == 12
    assert not g.is_singular


def test_grid_arrays_are_read_only():
    g = Grid(np.zeros((4, 4), dtype=np.int8))
    for arr in (g.flags, g.fluid, g.padded_flags):
        assert not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        g.flags[0, 0] = S
    with pytest.raises(ValueError, match="read-only"):
        g.fluid[0, 0] = False


def test_matvec_does_not_modify_x(rng, random_flags):
    A = Grid(random_flags((7, 5, 6))).laplacian()
    x = rng.standard_normal(A.shape[0])
    before = x.copy()
    A.matvec(x)
    A.to_csr() @ x
    assert_array_equal(x, before)


# -- the stencil -------------------------------------------------------------------------------

# fmt: off
_TINY = np.array([[F, F, A_],
                  [F, S, A_],
                  [F, F, F]], dtype=np.int8)
# Unit-spacing stencil of _TINY with SOLID boundary, rows/cols in C order (index 3 i + j).
# Rows 2, 4, 5 are AIR / SOLID / AIR cells: identity. Every FLUID cell here has two
# non-SOLID neighbours (cell 1 and cell 8 count their AIR neighbour).
_TINY_SOLID = np.array([
    [ 2, -1,  0, -1,  0,  0,  0,  0,  0],
    [-1,  2,  0,  0,  0,  0,  0,  0,  0],
    [ 0,  0,  1,  0,  0,  0,  0,  0,  0],
    [-1,  0,  0,  2,  0,  0, -1,  0,  0],
    [ 0,  0,  0,  0,  1,  0,  0,  0,  0],
    [ 0,  0,  0,  0,  0,  1,  0,  0,  0],
    [ 0,  0,  0, -1,  0,  0,  2, -1,  0],
    [ 0,  0,  0,  0,  0,  0, -1,  2, -1],
    [ 0,  0,  0,  0,  0,  0,  0, -1,  2],
], dtype=float)
# fmt: on
# With an AIR boundary every domain face of a FLUID cell adds one to its diagonal.
_TINY_AIR_EXTRA = np.array([2, 1, 0, 1, 0, 0, 2, 1, 2], dtype=float)
_TINY_FLUID_ROWS = _TINY.ravel() == F


@pytest.mark.parametrize("spacing", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_stencil_on_hand_checked_grid(spacing, boundary):
    A = Grid(_TINY, spacing=spacing, boundary=boundary).laplacian()
    expected = _TINY_SOLID.copy()
    if boundary == CellType.AIR:
        expected += np.diag(_TINY_AIR_EXTRA)
    # FLUID rows scale with 1/h^2, identity rows do not
    expected[_TINY_FLUID_ROWS] /= spacing**2
    dense = A.to_csr().toarray()
    assert_allclose(dense, expected, rtol=1e-15, atol=0)
    assert_allclose(A.diagonal(), np.diag(expected), rtol=1e-15, atol=0)
    eye = np.eye(9)
    cols = np.column_stack([A.matvec(eye[:, j].copy()) for j in range(9)])
    assert_allclose(cols, expected, rtol=1e-15, atol=0)


def test_stencil_3d_cube_air_boundary():
    # 2x2x2 FLUID cube in AIR: every cell has 6 non-SOLID faces; C-order neighbours of
    # cell c differ from it in exactly one bit of c (bits: axis 0 -> 4, 1 -> 2, 2 -> 1).
    A = Grid(np.zeros((2, 2, 2), dtype=np.int8), spacing=2.0, boundary=CellType.AIR).laplacian()
    expected = 6.0 * np.eye(8)
    for c in range(8):
        for bit in (1, 2, 4):
            expected[c, c ^ bit] = -1.0
    assert_allclose(A.to_csr().toarray(), expected / 4.0, rtol=1e-15, atol=0)


def test_stencil_3d_cube_with_solid_cell():
    flags = np.zeros((2, 2, 2), dtype=np.int8)
    flags[1, 1, 1] = S  # cell 7
    dense = Grid(flags).laplacian().to_csr().toarray()
    expected = np.zeros((8, 8))
    for c in range(7):
        nbrs = [c ^ bit for bit in (1, 2, 4) if c ^ bit != 7]
        expected[c, c] = len(nbrs)
        expected[c, nbrs] = -1.0
    expected[7, 7] = 1.0
    assert_allclose(dense, expected, rtol=1e-15, atol=0)


def test_docstring_center_row():
    A = Grid(np.zeros((3, 3), dtype=np.int8), boundary=2).laplacian()
    assert A.to_csr().toarray()[4].tolist() == [0, -1, 0, -1, 4, -1, 0, -1, 0]


@pytest.mark.parametrize("spacing", [1.0, 0.3])
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_csr_matches_matvec(rng, random_flags, shape, dtype, boundary, spacing):
    g = Grid(random_flags(shape, p_solid=0.3, p_air=0.15), spacing=spacing, boundary=boundary)
    A = g.laplacian(dtype)
    C = A.to_csr()
    assert isinstance(C, sp.csr_array)
    assert C.shape == A.shape
    assert C.dtype == np.dtype(dtype)
    assert C.has_sorted_indices
    x = rng.standard_normal(g.size).astype(dtype)
    y = A.matvec(x)
    assert y.dtype == np.dtype(dtype)
    assert y.shape == x.shape
    ref = C.astype(np.float64) @ x.astype(np.float64)
    scale = np.abs(C).astype(np.float64) @ np.abs(x.astype(np.float64))
    assert np.all(np.abs(y - ref) <= _tol(dtype) * (scale + 1e-30))
    assert_allclose(A @ x, y, rtol=0, atol=0)
    # out= is written in place and returned
    out = np.full_like(x, np.nan)
    assert A.matvec(x, out=out) is out
    assert_allclose(out, y, rtol=0, atol=0)
    assert_allclose(A.diagonal(), C.diagonal(), rtol=_tol(dtype))
    # identity rows on non-FLUID cells, exactly
    nf = ~g.fluid.ravel()
    assert_array_equal(y[nf], x[nf])


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_csr_is_symmetric(random_flags, shape, boundary):
    C = Grid(random_flags(shape), spacing=0.7, boundary=boundary).laplacian().to_csr()
    assert (C != C.T).nnz == 0
    assert_array_equal(C.toarray(), C.toarray().T)


def test_aslinearoperator_matches_matvec(rng, random_flags):
    A = Grid(random_flags((5, 4, 3))).laplacian(np.float32)
    L = A.aslinearoperator()
    assert L.shape == A.shape
    assert L.dtype == np.float32
    x = rng.standard_normal(A.shape[0]).astype(np.float32)
    assert_allclose(L @ x, A.matvec(x), rtol=0, atol=0)


# -- definiteness --------------------------------------------------------------------------


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shape", [(7, 5), (6, 6), (4, 3, 5), (5, 4, 3)])
def test_spd_iff_every_region_reaches_air(random_flags, shape, boundary):
    """Eigenvalues: PSD always; zero eigenvalues exactly as many as null vectors."""
    n_spd = n_singular = 0
    for p_air in (0.02, 0.1, 0.2, 0.3):
        for _ in range(3):
            g = Grid(random_flags(shape, p_solid=0.2, p_air=p_air), boundary=boundary)
            lam = np.linalg.eigvalsh(g.laplacian().to_csr().toarray())
            tol = 1e-10 * np.abs(lam).max()
            assert lam.min() >= -tol
            n_zero = int(np.sum(np.abs(lam) <= tol))
            if g.is_singular:
                n_singular += 1
                assert n_zero == g.nullspace.dimension
            else:
                n_spd += 1
                assert lam.min() > tol
    assert n_spd > 0
    if boundary == CellType.SOLID:
        assert n_singular > 0


@pytest.mark.parametrize("shape", [(6, 7), (4, 5, 3)])
def test_all_fluid_in_air_is_spd(shape):
    g = Grid(np.zeros(shape, dtype=np.int8), boundary=CellType.AIR)
    assert not g.is_singular
    assert g.nullspace is None
    assert g.laplacian().nullspace is None
    assert np.linalg.eigvalsh(g.laplacian().to_csr().toarray()).min() > 1e-3


# -- null spaces ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 4), (4, 3, 5)])
def test_closed_box_has_constant_null_vector(shape):
    g = Grid(np.zeros(shape, dtype=np.int8), boundary=CellType.SOLID)
    assert g.is_singular
    ns = g.nullspace
    assert ns.dimension == 1
    assert_array_equal(ns.labels, np.zeros(g.size))
    A = g.laplacian()
    assert A.nullspace is ns
    assert_allclose(A.matvec(np.ones(g.size)), 0.0, atol=1e-13)
    lam, vec = np.linalg.eigh(A.to_csr().toarray())
    assert abs(lam[0]) < 1e-12
    assert lam[1] > 1e-3
    assert_allclose(np.abs(vec[:, 0]), 1 / np.sqrt(g.size), rtol=1e-10)


def test_isolated_fluid_cell_is_a_null_region():
    flags = np.full((3, 3), S, dtype=np.int8)
    flags[1, 1] = F
    g = Grid(flags, boundary=CellType.AIR)
    assert g.is_singular and g.nullspace.dimension == 1
    assert g.laplacian().to_csr().toarray()[4, 4] == 0.0
    assert_array_equal(g.nullspace.labels, np.where(flags.ravel() == F, 0, -1))


def test_two_regions_one_closed():
    g, open_region, closed = _two_regions()
    assert g.n_regions == 2
    assert g.is_singular
    ns = g.nullspace
    assert ns.dimension == 1
    assert_array_equal(ns.labels >= 0, closed.ravel())
    A = g.laplacian()
    ind = closed.ravel().astype(float)
    assert_allclose(A.matvec(ind), 0.0, atol=1e-13)
    assert_allclose(A.to_csr() @ ind, 0.0, atol=1e-13)
    # the open region's indicator is not in the null space
    assert np.abs(A.matvec(open_region.ravel().astype(float))).max() > 0.5
    lam, vec = np.linalg.eigh(A.to_csr().toarray())
    assert np.sum(np.abs(lam) < 1e-10) == 1
    v0 = vec[:, np.argmin(np.abs(lam))]
    assert_allclose(v0[~closed.ravel()], 0.0, atol=1e-10)


def test_project_removes_mean_on_closed_region_only(rng):
    g, _, closed = _two_regions()
    c = closed.ravel()
    v = rng.standard_normal(g.size) + 3.0
    before = v.copy()
    p = g.nullspace.project(v)
    assert_array_equal(v, before)
    assert abs(p[c].mean()) < 1e-13
    assert_allclose(p[c], v[c] - v[c].mean(), rtol=1e-13)
    assert_array_equal(p[~c], v[~c])
    assert g.nullspace.residual(p) < 1e-12
    assert g.nullspace.residual(v) > 1.0
    # in place
    w = v.copy()
    assert g.nullspace.project(w, out=w) is w
    assert_allclose(w, p, rtol=0, atol=0)


def _nullspace_cases():
    g2, _, _ = _two_regions()
    yield "two_regions", g2
    yield "closed_box", Grid(np.zeros((4, 5), dtype=np.int8))
    flags = np.zeros((5, 5, 4), dtype=np.int8)
    flags[2] = S
    flags[3:, -1] = A_
    yield "split_3d", Grid(flags, spacing=0.25)
    flags = np.full((4, 4), S, dtype=np.int8)
    flags[1, 1] = F
    flags[2, 2] = F
    yield "isolated_cells", Grid(flags)
    yield "all_air", Grid(np.full((3, 3), A_, dtype=np.int8))


@pytest.mark.parametrize(("name", "grid"), list(_nullspace_cases()))
def test_detect_nullspace_agrees_with_grid(name, grid):
    found = detect_nullspace(grid.laplacian().to_csr())
    if grid.nullspace is None:
        assert found is None
    else:
        assert found is not None
        assert found.dimension == grid.nullspace.dimension
        _same_partition(found.labels, grid.nullspace.labels)


@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shape", [(9, 7), (6, 5, 7)])
def test_detect_nullspace_agrees_on_random_grids(random_flags, shape, boundary):
    n_singular = 0
    for p_solid in (0.2, 0.35, 0.5, 0.65, 0.65, 0.8, 0.8):
        g = Grid(random_flags(shape, p_solid=p_solid, p_air=0.05), boundary=boundary)
        found = detect_nullspace(g.laplacian().to_csr())
        if g.nullspace is None:
            assert found is None
            continue
        n_singular += 1
        assert found is not None
        assert found.dimension == g.nullspace.dimension
        _same_partition(found.labels, g.nullspace.labels)
        # every region's indicator is a null vector
        A = g.laplacian()
        for k in range(g.nullspace.dimension):
            ind = (g.nullspace.labels == k).astype(float)
            assert_allclose(A.matvec(ind), 0.0, atol=1e-12)
    assert n_singular > 0
