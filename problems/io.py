"""Reading and writing linear systems: Matrix Market and ``.npz``.

``.npz`` layout (``np.load(..., allow_pickle=False)``; never pickles)::

    format  "dcdm-grid-1"   flags (int8), spacing, boundary, b, [x]
    format  "dcdm-grid-2"   as dcdm-grid-1, plus face_weights_0, ..., face_weights_{ndim-1}
    format  "dcdm-csr-1"    data, indices, indptr, shape, b, [x]
    format  "csr" / "csc"   data, indices, indptr, shape, b, [x]

Grid problems keep their flags (and face weights, :mod:`dcdm.problems.faces`: one float64
array per axis, the grid's shape one longer along that axis), so they load back as
matrix-free operators. A weighted grid is written as ``"dcdm-grid-2"`` so that a reader
that knows only ``"dcdm-grid-1"`` refuses it instead of dropping the weights; an unweighted
one stays ``"dcdm-grid-1"``.
The last row is what :func:`scipy.sparse.save_npz` writes, plus an array
``b`` added to the archive (``np.savez(path, b=b, **np.load(path))``).
Every loaded matrix is checked before any kernel sees it (shape, dtypes,
``indptr`` starting at 0, non-decreasing and ending at the number of stored
entries, every index inside the matrix): a hostile file is a ``ValueError``
that names it, never a crash.
Matrix Market follows the SuiteSparse convention: ``name.mtx`` holds ``A``
and ``name_b.mtx`` (if present) the right-hand side.

Examples
--------
>>> import tempfile, pathlib
>>> from dcdm.problems import gallery, io
>>> A, b = gallery.poisson((8, 8))
>>> path = pathlib.Path(tempfile.mkdtemp()) / "p.npz"
>>> io.save(path, A, b)
>>> io.load(path).A.shape
(64, 64)
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.sparse as sp

from dcdm.solvers.operators import as_operator

from . import faces as _faces
from .grid import CellType, Grid

__all__ = ["Problem", "load", "read_matrix_market", "save", "write_matrix_market"]

_GRID = "dcdm-grid-1"
_WEIGHTED_GRID = "dcdm-grid-2"  # a grid with face weights
_CSR = "dcdm-csr-1"
_SCIPY = ("csr", "csc")  # scipy.sparse.save_npz layouts read: compressed rows or columns
_EXPECTED = (f"expected an .npz archive written by dcdm.problems.io.save (format {_GRID!r}, "
             f"{_WEIGHTED_GRID!r} or {_CSR!r}) or by scipy.sparse.save_npz (format 'csr' or "
             "'csc') with an array 'b' added")
_WEIGHTS = "face_weights_"


@dataclass(frozen=True)
class Problem:
    """A loaded system: operator ``A``, right-hand side ``b``, optional solution ``x``."""

    A: Any
    b: np.ndarray
    x: np.ndarray | None = None
    grid: Grid | None = None
    source: str = ""


def _b_path(path: Path) -> Path:
    return path.with_name(path.stem + "_b.mtx")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _to_csr(A) -> sp.csr_array:
    op = as_operator(A)
    if not hasattr(op, "to_csr"):
        raise TypeError(
            f"A ({type(A).__name__}) cannot be assembled into a matrix for writing; pass a "
            "sparse matrix, a dense array or a grid operator"
        )
    return op.to_csr()


def save(path, A, b, x=None) -> None:
    """Write ``A`` (grid operator or matrix), ``b`` and optionally ``x`` to ``path`` (.npz)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"path must end in .npz (use write_matrix_market for .mtx), got {path}")
    arrays: dict[str, np.ndarray] = {"b": np.asarray(b).reshape(-1)}
    if x is not None:
        arrays["x"] = np.asarray(x).reshape(-1)
    grid = getattr(A, "grid", None)
    if grid is not None:
        arrays.update(format=np.array(_GRID), flags=grid.flags, spacing=np.array(grid.spacing),
                      boundary=np.array(int(grid.boundary)))
        if grid.face_weights is not None:
            arrays["format"] = np.array(_WEIGHTED_GRID)
            arrays.update({f"{_WEIGHTS}{a}": w for a, w in enumerate(grid.face_weights)})
    else:
        csr = _to_csr(A)
        arrays.update(format=np.array(_CSR), data=csr.data, indices=csr.indices,
                      indptr=csr.indptr, shape=np.array(csr.shape))
    n = int(np.prod(grid.shape)) if grid is not None else int(arrays["shape"][0])
    for key in ("b", "x"):
        if key in arrays and arrays[key].size != n:
            raise ValueError(_size_mismatch(key, arrays[key].size, n))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    _atomic_write(path, write)


def _sniff(path: Path) -> str | None:
    """What ``path`` is when it is not a zip archive (``np.load`` would guess wrongly)."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return None
    if head.startswith(b"\x93NUMPY"):
        return "holds a single NumPy array (.npy format)"
    if not head:
        return "is empty"
    if not any(c < 9 or 13 < c < 32 for c in head):
        return "is a text file"
    return "is a binary file of another kind"


def _format_name(z, path: Path) -> str:
    if "format" not in z:
        return ""
    fmt = _array(z, "format", path, "")
    if fmt.ndim == 0 and fmt.dtype.kind in "SU":
        value = fmt.item()
        return value.decode("ascii", "replace") if isinstance(value, bytes) else value
    return f"<{fmt.dtype} array of shape {fmt.shape}>"


def _array(z, key: str, path: Path, holds: str) -> np.ndarray:
    """``z[key]``, or a ``ValueError`` naming the file and the missing or unreadable array."""
    if key not in z:
        if key == "b":
            raise ValueError(f"{path} holds {holds} but no right-hand side 'b'; add one with "
                             "np.savez(path, b=b, **np.load(path))")
        raise ValueError(f"{path} holds {holds} but has no array {key!r}")
    try:
        return z[key]
    except ValueError as exc:  # an object (pickled) array, or a malformed member
        raise ValueError(f"{path}: array {key!r} cannot be read: {exc}") from exc


def _check_kind(path: Path, key: str, arr: np.ndarray, kinds: str, what: str) -> None:
    if arr.dtype.kind not in kinds:
        raise ValueError(f"{path}: {key} must be {what}, got {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{path}: {key} must be 1-D, got shape {arr.shape}")


def _read_compressed(z, path: Path, fmt: str, holds: str) -> sp.csr_array:
    """The CSR (or CSC) matrix in ``z``, checked so that no kernel can index outside it."""
    shape = _array(z, "shape", path, holds)
    if shape.dtype.kind not in "iu" or shape.shape != (2,) or np.any(shape < 0):
        raise ValueError(f"{path}: shape must be two non-negative integers, got {shape!r}")
    n, cols = (int(v) for v in shape)
    if n != cols:
        raise ValueError(f"{path}: A must be square, got shape ({n}, {cols})")
    data, indices, indptr = (_array(z, key, path, holds) for key in ("data", "indices", "indptr"))
    _check_kind(path, "data", data, "iufc", "a numeric array")
    for key, arr in (("indices", indices), ("indptr", indptr)):
        _check_kind(path, key, arr, "iu", "an integer array")
    major, minor = ("rows", "column") if fmt != "csc" else ("columns", "row")
    if indptr.size != n + 1:
        raise ValueError(f"{path}: indptr must have {n + 1} entries ({major} + 1), got "
                         f"{indptr.size}")
    if data.size != indices.size:
        raise ValueError(f"{path}: data has {data.size} entries but indices has {indices.size}")
    if indptr[0] != 0:
        raise ValueError(f"{path}: indptr must start at 0, got {indptr[0]}")
    if np.any(indptr[1:] < indptr[:-1]):
        raise ValueError(f"{path}: indptr must be non-decreasing ({major} i holds "
                         "indices[indptr[i]:indptr[i + 1]])")
    if indptr[-1] != indices.size:
        raise ValueError(f"{path}: indptr ends at {indptr[-1]} but there are {indices.size} "
                         "stored entries")
    if indices.size and (indices.min() < 0 or indices.max() >= n):
        bad = indices.min() if indices.min() < 0 else indices.max()
        raise ValueError(f"{path}: {minor} indices must lie in 0..{n - 1}, found {bad}")
    layout = sp.csc_array if fmt == "csc" else sp.csr_array
    return sp.csr_array(layout((data, indices, indptr), shape=(n, n)))


def _read_vector(z, key: str, path: Path, holds: str, n: int) -> np.ndarray:
    v = _array(z, key, path, holds)
    if v.dtype.kind not in "iufc":
        raise ValueError(f"{path}: {key} must be a numeric array, got {v.dtype}")
    if v.size != n:
        raise ValueError(f"{path}: {_size_mismatch(key, v.size, n)}")
    return v.reshape(-1)


def _read_face_weights(z, path: Path, holds: str, shape: tuple[int, ...], weighted: bool
                       ) -> tuple[np.ndarray, ...] | None:
    """The arrays ``face_weights_0 ..`` of a grid of ``shape``, checked (so that ``Grid``
    accepts them), or None for an unweighted (``dcdm-grid-1``) archive."""
    keys = [f"{_WEIGHTS}{a}" for a in range(len(shape))]
    found = sorted(k for k in z.files if k.startswith(_WEIGHTS))
    if not weighted:
        if found:
            raise ValueError(f"{path} holds {holds}, which has no face weights, but it has "
                             f"arrays {found}; a weighted grid's format is {_WEIGHTED_GRID!r}")
        return None
    if found and found != sorted(keys):
        raise ValueError(f"{path}: a {len(shape)}-D grid needs the face weights {keys} (one per "
                         f"axis), got {found}")
    out = []
    for key, want in zip(keys, _faces.face_shapes(shape), strict=True):
        w = _array(z, key, path, holds)
        if w.dtype.kind not in "iuf":
            raise ValueError(f"{path}: {key} must be a real array, got {w.dtype}")
        if w.shape != want:
            raise ValueError(f"{path}: {key} must have shape {want} (the flags' shape "
                             f"{shape} with axis {key[-1]} one longer), got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any():
            raise ValueError(f"{path}: {key} must be finite and >= 0 (0 closes a face); it "
                             f"holds {'NaN or Inf' if not np.isfinite(w).all() else 'negatives'}")
        out.append(w)
    return tuple(out)


def _size_mismatch(key: str, size: int, n: int) -> str:
    return f"{key} has {size} entries but A has {n} rows"


def _read_grid(z, path: Path, holds: str, weighted: bool) -> Grid:
    spacing, boundary = (_array(z, key, path, holds) for key in ("spacing", "boundary"))
    for key, value in (("spacing", spacing), ("boundary", boundary)):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            raise ValueError(f"{path}: {key} must be one number, got {value!r}")
    try:
        grid = Grid(_array(z, "flags", path, holds), spacing=float(spacing),
                    boundary=CellType(int(boundary)))
    except (TypeError, ValueError) as exc:  # e.g. unknown cell codes
        raise ValueError(f"{path}: {exc}") from exc
    weights = _read_face_weights(z, path, holds, grid.shape, weighted)
    if weights is None:
        return grid
    return Grid(grid.flags, spacing=grid.spacing, boundary=grid.boundary, face_weights=weights)


def _read_archive(z, path: Path) -> Problem:
    fmt = _format_name(z, path)
    if fmt in ("coo", "bsr", "dia", "lil", "dok"):
        raise ValueError(f"{path} holds a scipy {fmt!r} matrix; dcdm reads 'csr' or 'csc': save "
                         "A.tocsr() with scipy.sparse.save_npz and add an array 'b'")
    if fmt not in (_GRID, _WEIGHTED_GRID, _CSR, *_SCIPY):
        raise ValueError(f"{path} is not a dcdm .npz system (its 'format' is {fmt!r}); "
                         f"{_EXPECTED}")
    holds = f"a scipy {fmt!r} matrix" if fmt in _SCIPY else f"a {fmt!r} system"
    grid = None
    if fmt in (_GRID, _WEIGHTED_GRID):
        grid = _read_grid(z, path, holds, weighted=fmt == _WEIGHTED_GRID)
        n = grid.size
    else:
        A = _read_compressed(z, path, fmt, holds)
        n = A.shape[0]
    b = _read_vector(z, "b", path, holds, n)
    x = _read_vector(z, "x", path, holds, n) if "x" in z else None
    if grid is not None:
        A = grid.laplacian(b.dtype if b.dtype in (np.float32, np.float64) else np.float64)
        return Problem(A, b, x, grid, str(path))
    return Problem(as_operator(A), b, x, None, str(path))


def _load_npz(path: Path) -> Problem:
    what = _sniff(path)
    if what is not None:
        raise ValueError(f"{path} {what}, not an .npz archive; {_EXPECTED}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return _read_archive(z, path)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npz archive ({exc}); {_EXPECTED}") from exc


def write_matrix_market(path, A, b=None) -> None:
    """Write ``A`` to ``path`` (.mtx) and ``b`` to ``<stem>_b.mtx``."""
    path = Path(path)
    if path.suffix != ".mtx":
        raise ValueError(f"path must end in .mtx, got {path}")
    csr = _to_csr(A)
    symmetric = (csr != csr.T).nnz == 0
    scipy.io.mmwrite(str(path), sp.coo_array(csr), symmetry="symmetric" if symmetric else "general")
    if b is not None:
        scipy.io.mmwrite(str(_b_path(path)), np.asarray(b).reshape(-1, 1))


def read_matrix_market(path) -> Problem:
    """Read ``A`` from a .mtx file; ``b`` from ``<stem>_b.mtx`` or, if absent, all ones."""
    path = Path(path)
    A = sp.csr_array(scipy.io.mmread(str(path)))
    bp = _b_path(path)
    if bp.exists():
        b = np.asarray(scipy.io.mmread(str(bp))).reshape(-1)
    else:
        b = np.ones(A.shape[0])
    return Problem(as_operator(A), b, None, None, str(path))


def load(path) -> Problem:
    """Load a system from ``.npz`` or ``.mtx``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory, expected a .npz or .mtx file")
    if path.suffix == ".npz":
        return _load_npz(path)
    if path.suffix == ".mtx":
        return read_matrix_market(path)
    raise ValueError(f"cannot read {path}: expected a .npz or .mtx file")
