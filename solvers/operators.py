"""The operator contract and :func:`as_operator`.

An operator has ``shape``, ``dtype`` and ``matvec(x, out=None)``; optionally
``diagonal()``, ``to_csr()``, ``grid`` and ``nullspace``. SciPy sparse
matrices/arrays, dense arrays and ``scipy.sparse.linalg.LinearOperator`` are
wrapped; objects that already follow the contract (the grid operators of
:mod:`dcdm.problems`) pass through unchanged.

Arrays: the SciPy/NumPy wrappers (``host_only = True``) take NumPy vectors. A
dense torch tensor or CuPy array, a ``torch.sparse`` tensor or a
``cupyx.scipy.sparse`` matrix becomes an :class:`ArrayOperator`, whose
mat-vec runs in that library on the matrix's device. Grid operators run on
any array library (the kernels dispatch by the vector's type).
"""

from __future__ import annotations

import functools
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from dcdm.kernels import arrays

from .nullspace import ConstantNullSpace, detect_nullspace

__all__ = [
    "ArrayOperator",
    "DenseOperator",
    "Operator",
    "SparseOperator",
    "WrappedLinearOperator",
    "as_operator",
    "positive_form_signs",
    "signed_operator",
]


@runtime_checkable
class Operator(Protocol):
    """What a solver needs from ``A``."""

    shape: tuple[int, int]
    dtype: np.dtype

    def matvec(self, x: Any, out: Any = None) -> Any: ...


def _check_square(shape, what: str = "A") -> None:
    if len(shape) != 2:
        raise ValueError(f"{what} must be 2-D (an n x n operator), got shape {shape}")
    if shape[0] != shape[1]:
        raise ValueError(
            f"{what} must be square, got shape {shape}; for least-squares problems solve the "
            "normal equations A.T @ A x = A.T @ b instead"
        )
    if shape[0] < 1:
        raise ValueError(f"{what} must have at least one row, got shape {shape}")


def _real_dtype(dtype: np.dtype, what: str = "A") -> np.dtype:
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(
            f"{what} has complex dtype {dtype}; dcdm solves real symmetric positive-definite "
            "systems only (split a Hermitian system into its real 2n x 2n form)"
        )
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype.kind in "biuf":
        return np.dtype(np.float64)
    raise TypeError(f"{what} must have a real floating dtype, got {dtype}")


def _check_finite(values: np.ndarray, what: str = "A") -> None:
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contains NaN or Inf entries; fix the assembly before solving")


class SparseOperator:
    """A SciPy sparse matrix as an operator (stored as CSR)."""

    host_only = True

    def __init__(self, A):
        _check_square(A.shape)
        dtype = _real_dtype(A.dtype)
        # a private copy: later steps (sorting indices, factorising) must never touch the caller's
        self.A = sp.csr_array(A, dtype=dtype, copy=True)
        _check_finite(self.A.data)
        self.shape = self.A.shape
        self.dtype = dtype

    def matvec(self, x, out=None):
        y = self.A @ x
        if out is None:
            return y
        out[...] = y
        return out

    def diagonal(self) -> np.ndarray:
        return self.A.diagonal()

    def to_csr(self) -> sp.csr_array:
        return self.A

    @functools.cached_property
    def nullspace(self) -> ConstantNullSpace | None:
        return detect_nullspace(self.A)


class DenseOperator:
    """A dense 2-D NumPy array as an operator."""

    host_only = True

    def __init__(self, A):
        A = np.asarray(A)
        _check_square(A.shape)
        dtype = _real_dtype(A.dtype)
        self.A = np.array(A, dtype=dtype, copy=True)
        _check_finite(self.A)
        self.shape = self.A.shape
        self.dtype = dtype

    def matvec(self, x, out=None):
        if out is None:
            return self.A @ x
        np.matmul(self.A, x, out=out)
        return out

    def diagonal(self) -> np.ndarray:
        return np.diagonal(self.A).copy()

    def to_csr(self) -> sp.csr_array:
        return sp.csr_array(self.A)

    @functools.cached_property
    def nullspace(self) -> ConstantNullSpace | None:
        return detect_nullspace(sp.csr_array(self.A))


class WrappedLinearOperator:
    """A ``scipy.sparse.linalg.LinearOperator`` as an operator (no diagonal, no CSR)."""

    nullspace = None
    host_only = True

    def __init__(self, A: LinearOperator):
        _check_square(A.shape)
        self.A = A
        self.shape = A.shape
        self.dtype = _real_dtype(A.dtype if A.dtype is not None else np.float64)

    def matvec(self, x, out=None):
        y = np.asarray(self.A.matvec(x)).reshape(-1)
        if out is None:
            return y.astype(x.dtype, copy=False)
        out[...] = y
        return out


def _array_library(A) -> str | None:
    """``"torch"``/``"cupy"`` for a matrix of those libraries (dense or sparse), else None."""
    lib = arrays.library(A)
    if lib == "torch" and hasattr(A, "layout"):
        return "torch"
    if lib == "cupy" and hasattr(A, "shape"):
        return "cupy"
    return None


def torch_layout(name: str):
    import torch

    return getattr(torch, name)


class ArrayOperator:
    """A torch or CuPy matrix (dense, ``torch.sparse`` or ``cupyx.scipy.sparse``) as an
    operator: the mat-vec runs in that library on the matrix's device.

    A private copy is taken (in float32/float64). ``diagonal()``, ``to_csr()`` and the
    null space come from a host CSR copy made on first use (set-up, never per iteration).

    Examples
    --------
    >>> import torch
    >>> from dcdm.solvers import as_operator
    >>> op = as_operator(torch.tensor([[2.0, -1.0], [-1.0, 2.0]], dtype=torch.float64))
    >>> op.matvec(torch.ones(2, dtype=torch.float64)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, A, library: str):
        _check_square(tuple(A.shape))
        dtype = _real_dtype(arrays.host_dtype(A.dtype))
        self.library = library
        self.sparse = (getattr(A, "layout", None) is not None and "sparse" in str(A.layout)) or (
            type(A).__module__.startswith("cupyx"))  # a cupyx.scipy.sparse matrix
        if library == "torch":
            import torch

            M = A.detach().to(dtype=getattr(torch, dtype.name), copy=True)
            if M.layout == torch.sparse_coo:
                M = M.coalesce()
            values = M.values() if self.sparse else M
            finite = bool(torch.all(torch.isfinite(values)))
        else:
            import cupy

            M = A.astype(dtype).copy() if self.sparse else A.astype(dtype, copy=True)
            values = M.data if self.sparse else M
            finite = bool(cupy.all(cupy.isfinite(values)))
        self.A = M
        if not finite:
            raise ValueError("A contains NaN or Inf entries; fix the assembly before solving")
        self.shape = tuple(int(n) for n in A.shape)
        self.dtype = dtype
        # a dense 1-element vector of the matrix's library and device: what b must match
        self.like = values.reshape(-1)[:1]

    def _matrix(self, dtype):
        """The matrix in the vectors' dtype (a working precision above the matrix's own:
        converted once, then cached)."""
        if dtype == self.A.dtype:
            return self.A
        cast = self.__dict__.setdefault("_cast", {})
        M = cast.get(dtype)
        if M is None:
            M = cast[dtype] = self.A.to(dtype) if self.library == "torch" else self.A.astype(dtype)
        return M

    def matvec(self, x, out=None):
        y = self._matrix(x.dtype) @ x
        if out is None:
            return y
        out[...] = y
        return out

    @functools.cached_property
    def _csr(self) -> sp.csr_array:
        if self.library == "torch":
            if not self.sparse:
                return sp.csr_array(self.A.to("cpu").numpy())
            C = self.A.to("cpu")
            if C.layout == torch_layout("sparse_coo"):
                i, j = C.indices().numpy()
                return sp.coo_array((C.values().numpy(), (i, j)), shape=self.shape).tocsr()
            if C.layout != torch_layout("sparse_csr"):
                C = C.to_sparse_csr()
            return sp.csr_array((C.values().numpy(), C.col_indices().numpy(),
                                 C.crow_indices().numpy()), shape=self.shape)
        return sp.csr_array(self.A.get())

    def diagonal(self) -> np.ndarray:
        """The diagonal as a host NumPy array (for set-up, e.g. Jacobi)."""
        return self._csr.diagonal()

    def to_csr(self) -> sp.csr_array:
        return self._csr

    @functools.cached_property
    def nullspace(self) -> ConstantNullSpace | None:
        return detect_nullspace(self._csr)


def as_operator(A) -> Any:
    """Wrap ``A`` so that it follows the operator contract.

    Parameters
    ----------
    A : scipy sparse matrix/array, ndarray, LinearOperator, torch/CuPy matrix, or operator
        The system matrix. Never modified.

    Returns
    -------
    Operator
        ``A`` itself if it already has ``shape``, ``dtype`` and ``matvec``
        (and is not a SciPy ``LinearOperator``), otherwise a wrapper.

    Raises
    ------
    TypeError
        Unsupported type or complex dtype.
    ValueError
        Not square, or NaN/Inf entries.

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.solvers import as_operator
    >>> op = as_operator(np.array([[2.0, -1.0], [-1.0, 2.0]]))
    >>> op.matvec(np.ones(2)).tolist()
    [1.0, 1.0]
    """
    if sp.issparse(A):
        return SparseOperator(A)
    if isinstance(A, LinearOperator):
        return WrappedLinearOperator(A)
    if isinstance(A, np.ndarray) or isinstance(A, np.matrix):
        return DenseOperator(A)
    library = _array_library(A)
    if library is not None and len(getattr(A, "shape", ())) == 2:
        return ArrayOperator(A, library)
    if hasattr(A, "matvec") and hasattr(A, "shape") and hasattr(A, "dtype"):
        _check_square(tuple(A.shape))
        _real_dtype(A.dtype)
        return A
    if isinstance(A, (list, tuple)):
        return DenseOperator(np.asarray(A))
    raise TypeError(
        f"A must be a scipy sparse matrix, a dense 2-D array, a scipy LinearOperator or an "
        f"object with shape, dtype and matvec(x, out=None); got {type(A).__name__}"
    )


def positive_form_signs(A) -> np.ndarray | None:
    """Row signs ``s`` (+-1) that turn an assembled negative (semi-)definite ``A`` into the
    SPD ``diag(s) A``, or None when no row needs flipping.

    Codes that assemble ``-Laplacian`` (PhiFlow's sign) give a matrix whose coupled rows
    (with off-diagonal entries) all have negative diagonals, often beside decoupled rows
    holding only a diagonal entry (obstacle cells). Flipping every coupled row, and every
    decoupled row with a negative diagonal, keeps the matrix symmetric (a coupled row only
    couples to coupled rows) and makes it positive (semi-)definite when ``-A`` was. Coupled
    rows with diagonals of both signs: None (an indefinite matrix, which CG reports).
    Only for assembled matrices (SciPy sparse, dense NumPy).
    """
    if not isinstance(A, (SparseOperator, DenseOperator)):
        return None
    C = A.to_csr()
    n = C.shape[0]
    d = C.diagonal()
    rows = np.repeat(np.arange(n), np.diff(C.indptr))
    off = (C.indices != rows) & (C.data != 0)
    coupled = np.bincount(rows[off], minlength=n) > 0
    negative = d < 0
    if not negative.any():
        return None
    signs = np.ones(n)
    if coupled.any() and negative[coupled].any():
        if not negative[coupled].all():
            return None
        signs[coupled] = -1.0
    signs[~coupled & negative] = -1.0
    return signs


def signed_operator(A, signs: np.ndarray):
    """``diag(signs) A`` as a new operator of ``A``'s kind (``A`` is not modified)."""
    if isinstance(A, DenseOperator):
        return DenseOperator(signs[:, None].astype(A.dtype) * A.A)
    return SparseOperator(sp.diags_array(signs.astype(A.dtype)) @ A.to_csr())
