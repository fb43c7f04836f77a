"""Tests of :mod:`dcdm.problems.io`: ``.npz`` and Matrix Market round trips, safe loading."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal

from dcdm.problems import CellType, Grid, GridLaplacian, gallery, io, rhs, scenes
from dcdm.solvers import as_operator


class _Payload:
    """Pickles to a call that creates ``marker``: proof of code execution if ever unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def _spd_matrix(rng, n: int = 12) -> sp.csr_array:
    M = sp.random(n, n, density=0.3, random_state=np.random.default_rng(rng.integers(1 << 31)))
    M = sp.csr_array(M + M.T)
    return sp.csr_array(M + sp.diags_array(np.abs(M).sum(axis=1) + 1.0))


def _same_sparse(a, b) -> None:
    a, b = sp.csr_array(a), sp.csr_array(b)
    assert a.shape == b.shape
    assert (a != b).nnz == 0


# -- .npz: grid problems ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "grid",
    [
        scenes.smoke((12, 10, 9), obstacles=3, seed=2, spacing=0.25),
        scenes.smoke((16, 12), obstacles=2, seed=1, open_top=False),
        Grid(np.zeros((5, 6), dtype=np.int8), spacing=2.0, boundary=CellType.AIR),
    ],
    ids=["smoke3d", "closed2d", "poisson_air"],
)
def test_npz_round_trip_grid(tmp_path, rng, grid, dtype):
    A = grid.laplacian(dtype)
    b, x = rhs.manufactured(A, seed=5, kind="random")
    path = tmp_path / "grid.npz"
    io.save(path, A, b, x)
    assert path.exists()
    assert not path.with_name("grid.npz.tmp").exists()
    p = io.load(path)
    assert isinstance(p, io.Problem)
    assert p.source == str(path)
    assert isinstance(p.A, GridLaplacian)
    assert p.grid is p.A.grid
    assert_array_equal(p.grid.flags, grid.flags)
    assert p.grid.spacing == grid.spacing
    assert p.grid.boundary is grid.boundary
    assert p.b.dtype == b.dtype and p.x.dtype == x.dtype
    assert_array_equal(p.b, b)
    assert_array_equal(p.x, x)
    assert p.A.dtype == A.dtype
    assert p.A.shape == A.shape
    v = rng.standard_normal(A.shape[0]).astype(dtype)
    assert_array_equal(p.A.matvec(v), A.matvec(v))
    _same_sparse(p.A.to_csr(), A.to_csr())
    assert p.grid.is_singular == grid.is_singular


def test_npz_round_trip_without_x(tmp_path):
    A, b = gallery.poisson((8, 8))
    io.save(tmp_path / "p.npz", A, b)
    p = io.load(str(tmp_path / "p.npz"))
    assert p.x is None
    assert p.A.shape == (64, 64)
    assert_array_equal(p.b, b)


def test_npz_save_overwrites(tmp_path):
    path = tmp_path / "p.npz"
    A, b = gallery.poisson((6, 6), seed=0)
    io.save(path, A, b)
    A2, b2 = gallery.poisson((5, 5), seed=1)
    io.save(path, A2, b2)
    p = io.load(path)
    assert p.A.shape == (25, 25)
    assert_array_equal(p.b, b2)


def test_save_does_not_modify_inputs(tmp_path, rng):
    C = _spd_matrix(rng)
    data = C.data.copy()
    b = rng.standard_normal(C.shape[0])
    b_before = b.copy()
    io.save(tmp_path / "c.npz", C, b)
    assert_array_equal(C.data, data)
    assert_array_equal(b, b_before)


# -- .npz: matrix problems ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["csr_array", "csr_matrix", "coo_array", "dense", "sparse_operator"]
)
def test_npz_round_trip_csr(tmp_path, rng, kind):
    C = _spd_matrix(rng)
    A = {
        "csr_array": C,
        "csr_matrix": sp.csr_matrix(C),
        "coo_array": sp.coo_array(C),
        "dense": C.toarray(),
        "sparse_operator": as_operator(C),
    }[kind]
    b = rng.standard_normal(C.shape[0])
    x = rng.standard_normal(C.shape[0])
    io.save(tmp_path / "m.npz", A, b, x)
    p = io.load(tmp_path / "m.npz")
    assert p.grid is None
    assert p.A.shape == C.shape
    out = p.A.to_csr()
    assert sp.issparse(out)
    _same_sparse(out, C)
    assert_array_equal(p.b, b)
    assert_array_equal(p.x, x)
    assert_allclose(p.A.matvec(x), C @ x, rtol=1e-14)


# -- .npz: errors and safety ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["p.mtx", "p", "p.npz.gz", "p.NPZ", "p.npy"])
def test_save_rejects_wrong_suffix(tmp_path, name):
    A, b = gallery.poisson((4, 4))
    with pytest.raises(ValueError, match=r"path must end in \.npz"):
        io.save(tmp_path / name, A, b)
    assert not (tmp_path / name).exists()


def test_save_rejects_wrong_sizes(tmp_path):
    A, b = gallery.poisson((4, 4))
    with pytest.raises(ValueError, match="b has 5 entries but A has 16 rows"):
        io.save(tmp_path / "p.npz", A, np.ones(5))
    with pytest.raises(ValueError, match="x has 3 entries but A has 16 rows"):
        io.save(tmp_path / "p.npz", A, b, np.ones(3))
    with pytest.raises(ValueError, match="b has 7 entries but A has 6 rows"):
        io.save(tmp_path / "p.npz", sp.csr_array(sp.eye(6)), np.ones(7))
    assert not (tmp_path / "p.npz").exists()


@pytest.mark.parametrize("name", ["missing.npz", "missing.mtx", "missing.txt"])
def test_load_missing_file(tmp_path, name):
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load(tmp_path / name)


@pytest.mark.parametrize("name", ["system.txt", "system.npy", "system", "system.mat"])
def test_load_unknown_suffix(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"not a system")
    with pytest.raises(ValueError, match=r"expected a \.npz or \.mtx file"):
        io.load(path)


@pytest.mark.parametrize(
    ("arrays", "fmt"),
    [
        ({"b": np.ones(3)}, "''"),
        ({"b": np.ones(3), "format": np.array("dcdm-grid-0")}, "'dcdm-grid-0'"),
        ({"b": np.ones(3), "format": np.array("something else")}, "'something else'"),
    ],
)
def test_load_npz_without_dcdm_format(tmp_path, arrays, fmt):
    path = tmp_path / "foreign.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=rf"is not a dcdm \.npz system \(its 'format' is {fmt}\)"):
        io.load(path)


def test_load_foreign_npz_without_b(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, a=np.arange(4))
    with pytest.raises(ValueError, match=r"is not a dcdm \.npz system"):
        io.load(path)


@pytest.mark.parametrize("key", ["format", "b", "flags"])
def test_load_npz_never_unpickles(tmp_path, key):
    marker = tmp_path / "pwned"
    A, b = gallery.poisson((4, 4))
    arrays = {
        "format": np.array("dcdm-grid-1"),
        "flags": A.grid.flags,
        "spacing": np.array(1.0),
        "boundary": np.array(int(CellType.AIR)),
        "b": b,
    }
    arrays[key] = np.array([_Payload(marker)], dtype=object)
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="Object arrays cannot be loaded when allow_pickle=False"):
        io.load(path)
    assert not marker.exists()
    # positive control: the payload really runs when unpickled, so the check above means something
    with np.load(path, allow_pickle=True) as z:
        z[key]
    assert marker.exists()


# -- Matrix Market --------------------------------------------------------------------------


def test_matrix_market_round_trip_with_b(tmp_path, rng):
    A, _ = gallery.smoke((10, 9), obstacles=2, seed=3)
    b = rng.standard_normal(A.shape[0])
    path = tmp_path / "smoke.mtx"
    io.write_matrix_market(path, A, b)
    assert path.exists()
    assert (tmp_path / "smoke_b.mtx").exists()
    for p in (io.load(path), io.read_matrix_market(str(path))):
        assert p.grid is None
        assert p.x is None
        assert p.source == str(path)
        _same_sparse(p.A.to_csr(), A.to_csr())
        assert_array_equal(p.b, b)
        v = rng.standard_normal(A.shape[0])
        assert_allclose(p.A.matvec(v), A.matvec(v), rtol=1e-14, atol=1e-14)


def test_matrix_market_round_trip_without_b(tmp_path, rng):
    C = _spd_matrix(rng, 15)
    path = tmp_path / "m.mtx"
    io.write_matrix_market(path, C)
    assert not (tmp_path / "m_b.mtx").exists()
    p = io.load(path)
    _same_sparse(p.A.to_csr(), C)
    assert p.b.shape == (15,)
    assert_array_equal(p.b, 1.0)


def test_matrix_market_writes_sparse_symmetric_file(tmp_path, rng):
    C = _spd_matrix(rng, 10)
    path = tmp_path / "m.mtx"
    io.write_matrix_market(path, C)
    header = path.read_text().splitlines()[0]
    assert header.startswith("%%MatrixMarket matrix coordinate")
    assert header.endswith("symmetric")


@pytest.mark.parametrize("name", ["m.npz", "m.txt", "m"])
def test_write_matrix_market_rejects_wrong_suffix(tmp_path, rng, name):
    with pytest.raises(ValueError, match=r"path must end in \.mtx"):
        io.write_matrix_market(tmp_path / name, _spd_matrix(rng))
    assert not (tmp_path / name).exists()


def test_matrix_market_non_symmetric_is_kept_or_refused(tmp_path):
    C = sp.csr_array(np.array([[2.0, 1.0], [0.0, 3.0]]))
    path = tmp_path / "ns.mtx"
    try:
        io.write_matrix_market(path, C)
    except ValueError as err:
        assert "symmetric" in str(err)
        return
    _same_sparse(io.load(path).A.to_csr(), C)


def test_save_linear_operator_is_a_clear_type_error(tmp_path):
    from scipy.sparse.linalg import aslinearoperator

    L = aslinearoperator(np.eye(3))
    with pytest.raises(TypeError, match="cannot be assembled into a matrix"):
        io.save(tmp_path / "a.npz", L, np.ones(3))
    with pytest.raises(TypeError, match="cannot be assembled into a matrix"):
        io.write_matrix_market(tmp_path / "a.mtx", L)


# -- .npz: hostile and foreign files (issue 12, items 10 and 11) ------------------------------


def _csr_arrays(**changes) -> dict[str, np.ndarray]:
    """A dcdm-csr-1 archive of the 1-D Laplacian on 5 unknowns, with ``changes`` applied."""
    A = sp.csr_array(sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(5, 5)))
    arrays = {"format": np.array("dcdm-csr-1"), "data": A.data, "indices": A.indices,
              "indptr": A.indptr, "shape": np.array(A.shape), "b": np.ones(5)}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


_INDICES = np.array([0, 1, 0, 1, 2, 1, 2, 3, 2, 3, 4, 3, 4], dtype=np.int32)
_INDPTR = np.array([0, 2, 5, 8, 11, 13], dtype=np.int32)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"indices": np.where(_INDICES == 4, 1000, _INDICES)},
         r"column indices must lie in 0\.\.4, found 1000"),
        ({"indices": np.where(_INDICES == 4, -1, _INDICES)},
         r"column indices must lie in 0\.\.4, found -1"),
        ({"indptr": np.array([0, 2, 5, 4, 11, 13])}, "indptr must be non-decreasing"),
        ({"indptr": np.array([1, 2, 5, 8, 11, 13])}, r"indptr must start at 0, got 1"),
        ({"indptr": _INDPTR[:-1]}, r"indptr must have 6 entries \(rows \+ 1\), got 5"),
        ({"indptr": np.array([0, 2, 5, 8, 11, 12])},
         r"indptr ends at 12 but there are 13 stored entries"),
        ({"data": np.ones(12)}, r"data has 12 entries but indices has 13"),
        ({"indices": _INDICES.astype(float)}, r"indices must be an integer array, got float64"),
        ({"indptr": _INDPTR.reshape(1, -1)}, r"indptr must be 1-D, got shape \(1, 6\)"),
        ({"data": np.array(["a"] * 13)}, r"data must be a numeric array, got <U1"),
        ({"shape": np.array([5, 5, 1])}, r"shape must be two non-negative integers"),
        ({"shape": np.array([5.0, 5.0])}, r"shape must be two non-negative integers"),
        ({"shape": np.array([5, 6])}, r"A must be square, got shape \(5, 6\)"),
        ({"b": np.ones(4)}, r"b has 4 entries but A has 5 rows"),
        ({"x": np.ones(6)}, r"x has 6 entries but A has 5 rows"),
        ({"b": np.array(["x"] * 5)}, r"b must be a numeric array, got <U1"),
        ({"b": None}, r"holds a 'dcdm-csr-1' system but no right-hand side 'b'.*np\.savez"),
        ({"indptr": None}, r"has no array 'indptr'"),
        ({"format": np.array("dcdm-grid-1"), "flags": np.full((2, 3), 7), "spacing": np.array(1.0),
          "boundary": np.array(0), "b": np.ones(6)}, r"flags contain unknown cell codes \[7\]"),
        ({"format": np.array("dcdm-grid-1"), "flags": np.ones((2, 3), dtype=np.int8),
          "spacing": np.ones(2), "boundary": np.array(0), "b": np.ones(6)},
         r"spacing must be one number, got array\(\[1\., 1\.\]\)"),
    ],
    ids=["index-too-large", "index-negative", "indptr-decreasing", "indptr-start",
         "indptr-length", "indptr-end", "data-length", "float-indices", "2d-indptr",
         "text-data", "shape-3", "float-shape", "not-square", "b-size", "x-size", "text-b",
         "no-b", "no-indptr", "grid-flags", "grid-spacing"],
)
def test_load_csr_npz_validates_before_any_kernel(tmp_path, changes, message):
    path = tmp_path / "hostile.npz"
    np.savez(path, **_csr_arrays(**changes))
    with pytest.raises(ValueError, match=message) as err:
        io.load(path)
    assert str(path) in str(err.value)


def test_load_valid_csr_npz_control(tmp_path):
    path = tmp_path / "ok.npz"
    np.savez(path, **_csr_arrays(indices=_INDICES.astype(np.uint64), indptr=_INDPTR))
    p = io.load(path)
    assert_array_equal(p.A.matvec(np.ones(5)), [1.0, 0.0, 0.0, 0.0, 1.0])


def test_load_text_file_named_npz(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("just some text\n")
    with pytest.raises(ValueError, match=r"notes\.npz is a text file, not an \.npz archive"):
        io.load(path)


def test_load_npy_renamed_npz(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as fh:
        np.save(fh, np.ones(3))
    with pytest.raises(ValueError, match=r"array\.npz holds a single NumPy array \(\.npy "
                       r"format\), not an \.npz archive"):
        io.load(path)


@pytest.mark.parametrize("content", [b"PK\x03\x04broken", b"\x00\x01\x02binary"])
def test_load_corrupt_npz(tmp_path, content):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"corrupt\.npz .*not .*\.npz archive"):
        io.load(path)


def test_load_directory_named_npz(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    with pytest.raises(ValueError, match=r"dir\.npz is a directory"):
        io.load(tmp_path / "dir.npz")


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_load_scipy_save_npz_with_b(tmp_path, rng, fmt):
    C = _spd_matrix(rng)
    path = tmp_path / "scipy.npz"
    sp.save_npz(path, sp.csr_matrix(C).asformat(fmt))
    b = rng.standard_normal(C.shape[0])
    with np.load(path, allow_pickle=False) as z:
        np.savez(path, b=b, **z)
    p = io.load(path)
    _same_sparse(p.A.to_csr(), C)
    assert_array_equal(p.b, b)
    assert p.x is None and p.grid is None


def test_load_scipy_save_npz_without_b_asks_for_it(tmp_path, rng):
    path = tmp_path / "scipy.npz"
    sp.save_npz(path, sp.csr_matrix(_spd_matrix(rng)))
    with pytest.raises(ValueError, match=r"scipy\.npz holds a scipy 'csr' matrix but no "
                       r"right-hand side 'b'.*np\.savez"):
        io.load(path)


def test_load_scipy_save_npz_other_formats_are_refused_by_name(tmp_path, rng):
    path = tmp_path / "scipy.npz"
    sp.save_npz(path, sp.coo_matrix(_spd_matrix(rng)))
    with pytest.raises(ValueError, match=r"a scipy 'coo' matrix.*'csr' or 'csc'.*tocsr"):
        io.load(path)


def test_load_scipy_npz_out_of_range_index(tmp_path, rng):
    path = tmp_path / "scipy.npz"
    np.savez(path, **_csr_arrays(format=np.array(b"csr"),
                                 indices=np.where(_INDICES == 4, 7, _INDICES)))
    with pytest.raises(ValueError, match=r"column indices must lie in 0\.\.4, found 7"):
        io.load(path)


# -- .npz: grids with face weights ----------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "grid",
    [
        scenes.two_phase((10, 9, 8), bubbles=3, seed=1, spacing=0.5),
        scenes.cut_cells((16, 12), obstacles=4, seed=2),
        Grid(np.zeros((5, 6), dtype=np.int8), boundary=CellType.AIR,
             face_weights=(np.full((6, 6), 0.25), np.arange(35.0).reshape(5, 7) / 7)),
    ],
    ids=["twophase3d", "cutcell2d", "air_box"],
)
def test_npz_round_trip_keeps_face_weights(tmp_path, rng, grid, dtype, monkeypatch):
    A = grid.laplacian(dtype)
    b = rng.standard_normal(A.shape[0]).astype(dtype)
    path = tmp_path / "weighted.npz"
    io.save(path, A, b)
    with np.load(path, allow_pickle=False) as z:
        assert str(z["format"]) == "dcdm-grid-2"
        assert sorted(k for k in z.files if k.startswith("face_weights")) == [
            f"face_weights_{a}" for a in range(grid.ndim)]
    p = io.load(path)
    assert p.grid.same_as(grid)
    for mine, theirs in zip(p.grid.face_weights, grid.face_weights, strict=True):
        assert mine.dtype == np.float64
        assert_array_equal(mine.view(np.uint64), theirs.view(np.uint64))  # bit for bit
    _same_sparse(p.A.to_csr(), A.to_csr())
    assert p.A.dtype == A.dtype
    v = rng.standard_normal(A.shape[0]).astype(dtype)
    assert_array_equal(p.A.matvec(v), A.matvec(v))
    assert_array_equal(p.b, b)


def test_npz_unweighted_grid_stays_format_1(tmp_path):
    A, b = gallery.smoke((8, 8), obstacles=1)
    io.save(tmp_path / "s.npz", A, b)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert str(z["format"]) == "dcdm-grid-1"
        assert not any(k.startswith("face_weights") for k in z.files)
    assert io.load(tmp_path / "s.npz").grid.face_weights is None


def _weighted_arrays(**changes) -> dict[str, np.ndarray]:
    """A dcdm-grid-2 archive of a 3 x 4 FLUID box with weights, with ``changes`` applied."""
    arrays = {"format": np.array("dcdm-grid-2"), "flags": np.zeros((3, 4), dtype=np.int8),
              "spacing": np.array(1.0), "boundary": np.array(int(CellType.AIR)),
              "face_weights_0": np.full((4, 4), 0.5), "face_weights_1": np.full((3, 5), 2.0),
              "b": np.ones(12)}
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"face_weights_1": np.full((3, 4), 2.0)},
         r"face_weights_1 must have shape \(3, 5\) \(the flags' shape \(3, 4\) with axis 1 one "
         r"longer\), got \(3, 4\)"),
        ({"face_weights_0": np.full((4, 4), -0.5)},
         r"face_weights_0 must be finite and >= 0 \(0 closes a face\); it holds negatives"),
        ({"face_weights_1": np.full((3, 5), np.nan)},
         r"face_weights_1 must be finite and >= 0 .*NaN or Inf"),
        ({"face_weights_0": np.full((4, 4), np.inf)}, r"face_weights_0 must be finite"),
        ({"face_weights_0": np.array(["a"] * 16).reshape(4, 4)},
         r"face_weights_0 must be a real array, got <U1"),
        ({"face_weights_0": np.full((4, 4), True)},
         r"face_weights_0 must be a real array, got bool"),
        ({"face_weights_1": None},
         r"a 2-D grid needs the face weights \['face_weights_0', 'face_weights_1'\] \(one per "
         r"axis\), got \['face_weights_0'\]"),
        ({"face_weights_2": np.ones((3, 4))}, r"got \['face_weights_0', 'face_weights_1', "
         r"'face_weights_2'\]"),
        ({"face_weights_0": None, "face_weights_1": None},
         r"holds a 'dcdm-grid-2' system but has no array 'face_weights_0'"),
        ({"format": np.array("dcdm-grid-1")},
         r"holds a 'dcdm-grid-1' system, which has no face weights, but it has arrays "
         r"\['face_weights_0', 'face_weights_1'\]; a weighted grid's format is 'dcdm-grid-2'"),
    ],
    ids=["wrong-shape", "negative", "nan", "inf", "text", "bool", "missing-one", "extra",
         "missing-all", "format-1-with-weights"],
)
def test_load_rejects_bad_face_weights_naming_file_and_key(tmp_path, changes, message):
    path = tmp_path / "weights.npz"
    np.savez(path, **_weighted_arrays(**changes))
    with pytest.raises(ValueError, match=message) as err:
        io.load(path)
    assert str(err.value).startswith(str(path))


def test_load_weighted_control(tmp_path):
    path = tmp_path / "ok.npz"
    np.savez(path, **_weighted_arrays(face_weights_0=np.full((4, 4), 1, dtype=np.int16)))
    g = io.load(path).grid
    assert_array_equal(g.face_weights[0], 1.0)
    assert g.face_weights[0].dtype == np.float64
    assert_array_equal(g.face_weights[1], 2.0)
    assert_array_equal(g.laplacian().diagonal().reshape(3, 4)[1, 1], 2 * 1.0 + 2 * 2.0)
