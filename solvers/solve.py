"""The front door: :func:`solve` dispatches to a Krylov method by name (:mod:`.methods`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .methods import METHODS, method_record
from .result import SolveResult

__all__ = ["METHODS", "solve"]


def solve(
    A,
    b,
    *,
    method: str = "cg",
    M="auto",
    x0=None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], None] | None = None,
    check: bool = False,
    **options: Any,
) -> SolveResult:
    """Solve the SPD system ``A x = b``.

    Parameters
    ----------
    A : scipy sparse matrix, ndarray, LinearOperator or operator
        Symmetric positive (semi-)definite. Grid operators from
        :meth:`dcdm.problems.Grid.laplacian` run matrix-free.
    b : array
        Right-hand side (1-D, or grid-shaped for a grid operator). Not modified.
        A NumPy array, or a torch tensor / CuPy array (with a grid operator or a
        matrix of the same library): the solve then runs on ``b``'s device, with
        no transfers inside the iteration, and ``x`` comes back there.
    method : str, default "cg"
        ``"cg"`` (needs a linear SPD ``M``) or ``"fcg"`` (flexible CG; any
        ``M``). See ``dcdm.solvers.METHODS``.
    M : "auto", None, str, Preconditioner, callable or LinearOperator
        Preconditioner approximating ``A^{-1}``: a name from
        ``dcdm.solvers.precond.PRECONDITIONERS`` (``"mg"``, ``"mic0"``,
        ``"ic0"``, ``"amg"``, ``"jacobi"``, ``"none"``) or an object. The
        default ``"auto"`` is geometric multigrid (``"mg"``) for grid operators
        and no preconditioner for anything else.
    x0 : array, optional
        Initial guess (zeros by default). Not modified.
    rtol, atol : float
        Stop when ``||b - A x||_2 <= max(rtol * ||b||_2, atol)`` (true residual).
    maxiter : int, optional
        Iteration limit (default ``10 * n``).
    callback : callable, optional
        ``callback(xk)`` after every iteration.
    check : bool, default False
        Raise :class:`~dcdm.solvers.ConvergenceError` if not converged.
    **options
        Options of the method (e.g. ``truncation`` for ``"fcg"``; ``model``,
        ``network_dtype`` and ``variant`` for ``"dcdm"``); any other keyword goes to
        the preconditioner named by ``M`` (``model`` and ``network_dtype`` for
        ``M="neural"``).

    Returns
    -------
    SolveResult
        ``x``, ``converged``, ``reason``, ``iterations``, ``residual_norm``,
        ``residual_history``, ``setup_time``, ``solve_time``, ``stats``.

    Examples
    --------
    >>> import numpy as np
    >>> import dcdm
    >>> from dcdm.problems import gallery
    >>> A, b = gallery.poisson((16, 16))
    >>> res = dcdm.solve(A, b, M="jacobi", rtol=1e-8)
    >>> res.converged, bool(res.residual_norm <= 1e-8 * np.linalg.norm(b))
    (True, True)
    """
    record = method_record(method)
    if isinstance(M, str) and M == "auto" and record.takes_M:
        M = "mg" if getattr(A, "grid", None) is not None else None
    method_opts = {k: v for k, v in options.items() if k in record.options}
    precond_opts = {k: v for k, v in options.items() if k not in record.options}
    if precond_opts and not isinstance(M, str):
        raise TypeError(
            f"solve() got unexpected keyword argument(s) {sorted(precond_opts)}: they are not "
            f"options of method={method!r}, and M is not a preconditioner name that could take them"
        )
    return record.solve(A, b, x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, callback=callback,
              check=check, precond_options=precond_opts or None, **method_opts)
