"""Reading and writing linear systems: Matrix Market and ``.npz``.

``.npz`` layout (``np.load(..., allow_pickle=False)``; never pickles)::

    format  "dcdm-grid-1"  flags (int8), spacing, boundary, b, [x]
    format  "dcdm-csr-1"   data, indices, indptr, shape, b, [x]

Grid problems keep their flags, so they load back as matrix-free operators.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.sparse as sp

from dcdm.solvers.operators import as_operator

from .grid import CellType, Grid

__all__ = ["Problem", "load", "read_matrix_market", "save", "write_matrix_market"]

_GRID = "dcdm-grid-1"
_CSR = "dcdm-csr-1"


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
    else:
        csr = _to_csr(A)
        arrays.update(format=np.array(_CSR), data=csr.data, indices=csr.indices,
                      indptr=csr.indptr, shape=np.array(csr.shape))
    n = int(np.prod(grid.shape)) if grid is not None else int(arrays["shape"][0])
    for key in ("b", "x"):
        if key in arrays and arrays[key].size != n:
            raise ValueError(f"{key} has {arrays[key].size} entries but A has {n} rows")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    _atomic_write(path, write)


def _load_npz(path: Path) -> Problem:
    with np.load(path, allow_pickle=False) as z:
        fmt = str(z["format"]) if "format" in z else ""
        if fmt not in (_GRID, _CSR):
            raise ValueError(f"{path} is not a dcdm .npz system (its 'format' is {fmt!r})")
        b = z["b"]
        x = z["x"] if "x" in z else None
        if fmt == _GRID:
            grid = Grid(z["flags"], spacing=float(z["spacing"]),
                        boundary=CellType(int(z["boundary"])))
            A = grid.laplacian(b.dtype if b.dtype in (np.float32, np.float64) else np.float64)
            return Problem(A, b, x, grid, str(path))
        if fmt == _CSR:
            A = sp.csr_array((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
            return Problem(as_operator(A), b, x, None, str(path))
    raise ValueError(f"{path} is not a dcdm .npz system (its 'format' is {fmt!r})")


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
    if path.suffix == ".npz":
        return _load_npz(path)
    if path.suffix == ".mtx":
        return read_matrix_market(path)
    raise ValueError(f"cannot read {path}: expected a .npz or .mtx file")
