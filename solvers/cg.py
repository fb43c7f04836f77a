"""Preconditioned conjugate gradients.

Hestenes & Stiefel (1952); the preconditioned form as in Saad, *Iterative
Methods for Sparse Linear Systems*, 2nd ed., Algorithm 9.1::

    r0 = b - A x0;  z0 = M r0;  p0 = z0
    for j = 0, 1, ...
        alpha = (r_j . z_j) / (p_j . A p_j)
        x_{j+1} = x_j + alpha p_j
        r_{j+1} = r_j - alpha A p_j
        z_{j+1} = M r_{j+1}
        beta = (r_{j+1} . z_{j+1}) / (r_j . z_j)
        p_{j+1} = z_{j+1} + beta p_j

``M`` must be linear and SPD (otherwise use :func:`dcdm.solvers.fcg`). The
updates of ``x`` and ``r`` and the new ``r . r`` are one fused pass
(:func:`dcdm.kernels.cg_update`). When the recursive residual meets the
tolerance the true residual ``b - A x`` is computed; if it does not meet it,
it replaces ``r`` and CG restarts from it (``p = M r``). Restarts that stop
reducing the true residual (the rounding floor, e.g. float32 with a tight
``rtol``) end the solve with ``Reason.STAGNATION``.

The step lengths ``alpha_j`` and ratios ``beta_j`` (two floats an iteration, up to the
first restart) are kept in ``result.stats["cg_alpha"]`` and ``["cg_beta"]``: they are
the Lanczos tridiagonal of ``M^-1 A`` (Saad, Section 6.7.3), so
:func:`dcdm.spectrum.ritz_values` reads Ritz values and a condition-number estimate
off any solve with no extra mat-vec.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dcdm import kernels

from .inputs import SystemInputs
from .precond.registry import setup_preconditioner
from .result import Reason, SolveResult
from .stopping import positive
from .workspace import SolveWorkspace

__all__ = ["cg"]


def cg(
    A,
    b,
    x0=None,
    *,
    M=None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], None] | None = None,
    check: bool = False,
    precond_options: dict | None = None,
) -> SolveResult:
    """Solve ``A x = b`` (``A`` SPD) by preconditioned conjugate gradients.

    Parameters
    ----------
    A : sparse matrix, ndarray, LinearOperator or operator
        Symmetric positive-definite (or positive semi-definite with a constant
        null space, which is detected and projected out).
    b : array
        Right-hand side, 1-D (or grid-shaped for grid operators). Not modified.
    x0 : array, optional
        Initial guess (zeros by default). Not modified.
    M : None, str, Preconditioner, callable or LinearOperator
        Linear SPD preconditioner approximating ``A^{-1}``, e.g. ``"jacobi"``.
    rtol, atol : float
        Stop when ``||b - A x|| <= max(rtol * ||b||, atol)``.
    maxiter : int, optional
        Iteration limit (default ``10 * n``).
    callback : callable, optional
        Called as ``callback(xk)`` after every iteration; must not modify ``xk``.
    check : bool
        Raise :class:`~dcdm.solvers.ConvergenceError` instead of returning a
        non-converged result.
    precond_options : dict, optional
        Constructor options for a preconditioner given by name.

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm import cg
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> res = cg(A, np.array([1.0, 2.0]), rtol=1e-10)
    >>> res.converged, np.round(res.x, 6).tolist()
    (True, [0.090909, 0.636364])
    """
    ws = SolveWorkspace(SystemInputs(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter,
                                      callback=callback))
    P, setup_time = setup_preconditioner(M, ws.A, ws.b, precond_options, method="cg",
                                         linear_spd=True)
    x, r = ws.start()
    alphas: list[float] = []
    betas: list[float] = []
    reason, it, hist = _iterate(ws, x, r, P, callback, alphas, betas)
    coefficients = {"cg_alpha": _frozen(alphas), "cg_beta": _frozen(betas)}
    return ws.finish(x, reason, it, hist, setup_time=setup_time, precond=P, method="cg",
                     check=check, extra=coefficients)


def _frozen(values: list[float]) -> np.ndarray:
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


def _iterate(prob: SolveWorkspace, x, r, P, callback, alphas: list[float],
             betas: list[float]) -> tuple[Reason, int, list[float]]:
    """The loop; appends each ``alpha`` and ``beta`` to ``alphas``/``betas`` until the
    first restart (after it they no longer continue one Lanczos process)."""
    xp, tol = prob.xp, prob.tol
    record = True
    rr, hist, verdict = prob.begin(r)
    if verdict is not None:
        return verdict, 0, hist
    z = prob.precondition(P, r, None if P is None else xp.empty_like(r))
    rz = rr if P is None else kernels.dot(r, z)
    p = xp.asarray(z, copy=True)
    Ap = xp.empty_like(r)
    for it in range(1, prob.maxiter + 1):
        if (bad := positive(rz, Reason.INDEFINITE_PRECONDITIONER)) is not None:
            return bad, it - 1, hist
        prob.matvec(p, Ap)
        pAp = kernels.dot(p, Ap)
        if (bad := positive(pAp, Reason.INDEFINITE_OPERATOR)) is not None:
            return bad, it - 1, hist
        alpha = rz / pAp
        if record:
            alphas.append(float(alpha))
        rr = kernels.cg_update(x, r, p, Ap, alpha)
        rnorm = math.sqrt(rr)
        hist.append(rnorm)
        if callback is not None:
            callback(x)
        if not math.isfinite(rnorm):
            return Reason.NAN_OR_INF, it, hist
        restart = False
        if rnorm <= tol:
            # trust only the true residual; if it disagrees, restart from it
            hist[-1], verdict = prob.confirm(x, r)
            if verdict is not None:
                return verdict, it, hist
            rr = hist[-1] ** 2
            restart = True
        if prob.nullspace is not None and P is None:
            prob.project(r)
        z = prob.precondition(P, r, z if P is not None else None)
        rz_new = rr if P is None else kernels.dot(r, z)
        if restart:
            p[...] = z
            record = False
        else:
            if record:
                betas.append(float(rz_new / rz))
            kernels.xpby(z, rz_new / rz, p)
        rz = rz_new
    return Reason.MAX_ITERATIONS, prob.maxiter, hist
