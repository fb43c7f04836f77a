"""The front door: :func:`solve` dispatches to a Krylov method by name."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from .result import SolveResult

__all__ = ["METHODS", "solve"]

# name -> "module:function"; every method returns a SolveResult
METHODS: dict[str, str] = {
    "cg": "dcdm.solvers.cg:cg",
    "fcg": "dcdm.solvers.fcg:fcg",
    "dcdm": "dcdm.solvers.dcdm:dcdm",
}


def _method(name: str) -> Callable[..., SolveResult]:
    if not isinstance(name, str):
        raise TypeError(f"method must be a string, got {type(name).__name__}")
    key = name.lower()
    if key not in METHODS:
        raise ValueError(f"method={name!r} is not a known method; choose one of {sorted(METHODS)}")
    module, fn = METHODS[key].split(":")
    return getattr(importlib.import_module(module), fn)


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
    fn = _method(method)
    if isinstance(M, str) and M == "auto" and method != "dcdm":
        M = "mg" if getattr(A, "grid", None) is not None else None
    params = inspect.signature(fn).parameters
    method_opts = {k: v for k, v in options.items() if k in params}
    precond_opts = {k: v for k, v in options.items() if k not in params}
    if precond_opts and not isinstance(M, str):
        raise TypeError(
            f"solve() got unexpected keyword argument(s) {sorted(precond_opts)}: they are not "
            f"options of method={method!r}, and M is not a preconditioner name that could take them"
        )
    return fn(A, b, x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, callback=callback,
              check=check, precond_options=precond_opts or None, **method_opts)
