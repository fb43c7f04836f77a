"""The front door: :func:`minimize` dispatches to a method by name."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .baselines import cubic_newton, gradient_method, super_newton
from .gns import gns
from .result import OptimizeResult

__all__ = ["METHODS", "minimize"]

#: name -> the function that runs it
METHODS: dict[str, Callable[..., OptimizeResult]] = {
    "gns": gns,
    "gradient": gradient_method,
    "super-newton": super_newton,
    "cubic-newton": cubic_newton,
}
_INNER = ("cg", "fcg", "direct")


def minimize(fun: Callable[[np.ndarray], float], x0: Any, *, jac: Callable,
             hess: Any = None, hessp: Callable | None = None, method: str = "gns",
             M: Any = None, B: Any = None, gtol: float = 1e-8, f_target: float | None = None,
             maxiter: int = 1000, inner: str = "cg", inner_rtol: float | None = None,
             inner_maxiter: int | None = None, callback: Callable | None = None,
             **options: Any) -> OptimizeResult:
    """Minimise ``fun`` from ``x0`` with gradient ``jac`` and (approximate) Hessians.

    Parameters
    ----------
    fun, jac : callable
        ``fun(x) -> float`` and ``jac(x) -> ndarray`` (the gradient, shaped like ``x0``).
    x0 : array_like, 1-D
    hess : callable, matrix or LinearOperator, optional
        ``hess(x)`` returning the Hessian or an approximation of it (PSD for GNS's
        guarantees) as a dense/sparse matrix, a LinearOperator or an operator (``shape``,
        ``matvec``); or a constant one. A grid operator restricted to its FLUID unknowns
        (:class:`dcdm.solvers.RestrictedOperator` of a
        :class:`~dcdm.problems.ShiftedGridLaplacian`, e.g.
        :attr:`~dcdm.problems.optimization.PoissonObjective.operator`) keeps its structure in
        ``H + lam B``, so ``M="mg"`` is built on the very operator each step solves.
    hessp : callable, optional
        ``hessp(x, v) -> H(x) v``: matrix-free (used when ``hess`` is None).
    method : {"gns", "gradient", "super-newton", "cubic-newton"}
    M : None, str, Preconditioner or callable
        Preconditioner of the inner solves; a name is built once per outer iteration on
        its first trial system ``H + lam B`` (``"ic0"``/``"mic0"``/``"amg"`` need an
        assembled matrix, ``"mg"``/``"rbgs"``/``"neural"`` a grid operator) and reused by
        the later trials of that iteration.
    B : matrix, LinearOperator or grid operator, optional
        The SPD metric (default the identity); ``||g||_* = sqrt(g . B^-1 g)``.
    gtol : float
        Stop when ``||g||_* <= gtol``.
    f_target : float, optional
        Also stop when ``f <= f_target`` (e.g. ``f* + eps``).
    maxiter : int
        Outer iterations.
    inner : {"cg", "fcg", "direct"}
        Inner solves by :func:`dcdm.cg` (inexact: ``inner_rtol``, default the forcing
        ``min(0.5, sqrt(||g_k||_* / ||g_0||_*))``, 0.01 for the cap with a ``B``), by
        flexible CG (:func:`dcdm.fcg`, for a non-linear ``M`` such as ``"neural"``) or by
        a factorisation.
    callback : callable, optional
        ``callback(xk)`` after every accepted step.
    **options
        Method options: ``gamma0``, ``gamma_min``, ``max_trials`` (GNS); ``L0`` (gradient);
        ``H0``, ``alpha``, ``H_min`` (super-newton); ``H0``, ``H_min`` (cubic-newton, which
        factorises: it needs ``hess`` as a matrix).

    Returns
    -------
    OptimizeResult

    Examples
    --------
    A convex quadratic plus a quartic term, matrix-free Hessian, inner solves by CG:

    >>> import numpy as np
    >>> from dcdm import optimize
    >>> A = np.diag(np.arange(1.0, 11.0)); b = np.ones(10)
    >>> f = lambda x: 0.5 * x @ A @ x + 0.25 * np.sum(x ** 4) - b @ x
    >>> g = lambda x: A @ x + x ** 3 - b
    >>> hp = lambda x, v: A @ v + 3 * x ** 2 * v
    >>> res = optimize.minimize(f, np.zeros(10), jac=g, hessp=hp, gtol=1e-10)
    >>> res.success, res.nit <= 10, bool(np.linalg.norm(g(res.x)) <= 1e-10)
    (True, True, True)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if inner not in _INNER:
        raise ValueError(f"inner must be one of {_INNER}, got {inner!r}")
    for name, value in (("gtol", gtol), ("inner_rtol", inner_rtol)):
        if value is not None and not (isinstance(value, (int, float)) and value >= 0
                                      and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 0:
        raise ValueError(f"maxiter must be an integer >= 0, got {maxiter!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if method != "gradient" and hess is None and hessp is None:
        raise ValueError(f"method={method!r} needs hess= or hessp= (or use "
                         "method='gradient')")
    if method == "cubic-newton" and hess is None:
        raise ValueError("method='cubic-newton' factorises H + H_k r B: it needs hess= (a "
                         "dense or sparse matrix); with hessp use method='gns' or "
                         "'super-newton'")
    run = METHODS[method]
    common = dict(B=B, gtol=gtol, f_target=f_target, maxiter=int(maxiter), callback=callback)
    if method == "gradient":
        return run(fun, x0, jac, **common, **options)
    if method == "cubic-newton":
        return run(fun, x0, jac, hess=hess, hessp=hessp, **common, **options)
    return run(fun, x0, jac, hess=hess, hessp=hessp, M=M, inner=inner, inner_rtol=inner_rtol,
               inner_maxiter=inner_maxiter, **common, **options)
