"""A drop-in replacement for ``scipy.sparse.linalg.cg``.

Complex Hermitian positive-definite systems (which SciPy's ``cg`` accepts) are solved in
their real form: ``A = B + iC`` acts on ``[Re x; Im x]`` as the symmetric positive-definite
``[[B, -C], [C, B]]``, whose eigenvalues are those of ``A`` (each twice), so CG converges
as it would on ``A``; norms are unchanged (``||z||_2 = ||[Re z; Im z]||_2``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from .cg import cg

__all__ = ["scipy_cg"]


def _is_complex(v) -> bool:
    dtype = getattr(v, "dtype", None)
    return dtype is not None and np.issubdtype(np.dtype(dtype), np.complexfloating)


def _real_form(op: LinearOperator, n: int, real: np.dtype) -> LinearOperator:
    """``z -> op z`` on ``[Re z; Im z]`` (2n real entries of dtype ``real``)."""

    def matvec(v):
        v = np.asarray(v).reshape(-1)
        y = np.asarray(op.matvec(v[:n] + 1j * v[n:])).reshape(-1)
        return np.concatenate([y.real, y.imag]).astype(real, copy=False)

    return LinearOperator((2 * n, 2 * n), matvec=matvec, dtype=real)


def _as_linop(M, n: int) -> LinearOperator:
    """A preconditioner (matrix, LinearOperator or callable) as a LinearOperator."""
    if isinstance(M, LinearOperator) or sp.issparse(M) or isinstance(M, np.ndarray):
        return aslinearoperator(M)
    return LinearOperator((n, n), matvec=M, dtype=np.complex128)


def _split(z, n: int) -> np.ndarray:
    z = np.asarray(z).reshape(-1)
    return np.concatenate([z.real, z.imag])


def _check_atol(atol) -> None:
    """SciPy raises ``ValueError`` for an ``atol`` that is not a number >= 0."""
    if isinstance(atol, bool) or not isinstance(atol, numbers.Real) or not atol >= 0:
        raise ValueError(f"atol must be a real number >= 0, got {atol!r}")


def scipy_cg(
    A,
    b,
    x0=None,
    *,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M=None,
    callback: Callable[[Any], None] | None = None,
) -> tuple[Any, int]:
    """``scipy.sparse.linalg.cg`` with SciPy's signature and return value.

    Parameters
    ----------
    A, b, rtol, atol, maxiter, M, callback
        As in SciPy; ``A`` (and ``M``) may be complex Hermitian (solved in real form).
    x0 : array or "Mb", optional
        Initial guess; ``"Mb"`` starts from ``M b`` (``b`` without ``M``), as in SciPy.

    Returns
    -------
    x : ndarray
        The final iterate.
    info : int
        ``0`` converged; ``> 0`` the tolerance was not reached within
        ``maxiter`` iterations (the value is the iteration count); ``< 0``
        breakdown (indefinite operator or preconditioner, NaN/Inf, a singular
        system whose ``b`` is not in its range).

    Differences from SciPy: convergence is confirmed on the true residual, and
    a singular all-Neumann matrix has its constant null space projected out.

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.solvers import scipy_cg
    >>> x, info = scipy_cg(np.array([[2.0, 0.0], [0.0, 4.0]]), np.array([2.0, 4.0]))
    >>> x.tolist(), info
    ([1.0, 1.0], 0)
    >>> x, info = scipy_cg(np.array([[2.0, 1j], [-1j, 2.0]]), np.array([1.0, 1j]))
    >>> np.round(x, 6).tolist(), info
    ([(1+0j), 1j], 0)
    """
    _check_atol(atol)
    if isinstance(x0, str):
        if x0 != "Mb":
            raise ValueError(f"x0 must be an array, None or 'Mb', got {x0!r}")
        b1 = np.asarray(b).reshape(-1)
        x0 = b1 if M is None else np.asarray(_as_linop(M, b1.size).matvec(b1)).reshape(-1)
    if not any(_is_complex(v) for v in (A, b, x0, M)):
        res = cg(A, b, x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, callback=callback)
        return res.x, res.info
    return _complex_cg(A, b, x0, rtol, atol, maxiter, M, callback)


def _complex_cg(A, b, x0, rtol, atol, maxiter, M, callback) -> tuple[np.ndarray, int]:
    """The complex Hermitian solve through its real 2n x 2n form."""
    op = aslinearoperator(sp.csr_array(A) if sp.issparse(A) else A)
    n = op.shape[0]
    b1 = np.asarray(b).reshape(-1)
    if b1.shape != (n,):
        raise ValueError(f"b has shape {np.shape(b)} but A has shape {op.shape}")
    # the working precision: A's and b's (complex64 A, float64 b: complex128, as SciPy)
    real = np.finfo(np.result_type(op.dtype, b1.dtype, np.complex64)).dtype
    P = None if M is None else _real_form(_as_linop(M, n), n, real)
    cb = None
    if callback is not None:
        def cb(v):
            callback(v[:n] + 1j * v[n:])
    res = cg(_real_form(op, n, real), _split(b1, n), None if x0 is None else _split(x0, n), M=P,
             rtol=rtol, atol=atol, maxiter=maxiter, callback=cb)
    dtype = np.result_type(op.dtype, b1.dtype, np.complex64)
    return (res.x[:n] + 1j * res.x[n:]).astype(dtype), res.info
