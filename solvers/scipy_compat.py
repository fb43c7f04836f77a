"""A drop-in replacement for ``scipy.sparse.linalg.cg``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .cg import cg

__all__ = ["scipy_cg"]


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

    Returns
    -------
    x : ndarray
        The final iterate.
    info : int
        ``0`` converged; ``> 0`` the tolerance was not reached within
        ``maxiter`` iterations (the value is the iteration count); ``< 0``
        breakdown (indefinite operator or preconditioner, NaN/Inf).

    Differences from SciPy: convergence is confirmed on the true residual, and
    a singular all-Neumann matrix has its constant null space projected out.

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.solvers import scipy_cg
    >>> x, info = scipy_cg(np.array([[2.0, 0.0], [0.0, 4.0]]), np.array([2.0, 4.0]))
    >>> x.tolist(), info
    ([1.0, 1.0], 0)
    """
    res = cg(A, b, x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, callback=callback)
    return res.x, res.info
