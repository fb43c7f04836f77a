"""Flexible conjugate gradients, truncated: FCG(m).

Notay, "Flexible conjugate gradients", SIAM J. Sci. Comput. 22(4), 2000.
With a preconditioner that changes from one iteration to the next (a
non-linear map such as a network, or an inner iteration), the direction is
explicitly A-orthogonalised against the last ``m`` directions::

    r0 = b - A x0
    for k = 0, 1, ...
        z_k = M_k(r_k)
        p_k = z_k - sum_{j = k-m}^{k-1} (z_k . A p_j) / (p_j . A p_j) p_j
        alpha = (p_k . r_k) / (p_k . A p_k)          # exact line search in the A-norm
        x_{k+1} = x_k + alpha p_k
        r_{k+1} = r_k - alpha A p_k

With a fixed linear SPD ``M`` and any ``m >= 1`` it produces the same iterates
as preconditioned CG in exact arithmetic. Memory: ``2 (m + 1)`` extra vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from dcdm import kernels

from .directions import Directions
from .inputs import SystemInputs
from .precond.registry import setup_preconditioner
from .result import Reason, SolveResult
from .stopping import positive
from .workspace import SolveWorkspace

__all__ = ["fcg"]


def fcg(
    A,
    b,
    x0=None,
    *,
    M=None,
    truncation: int = 1,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], None] | None = None,
    check: bool = False,
    precond_options: dict | None = None,
) -> SolveResult:
    """Solve ``A x = b`` by flexible CG, FCG(m) (non-linear preconditioners allowed).

    Parameters
    ----------
    A, b, x0, M, rtol, atol, maxiter, callback, check, precond_options
        As in :func:`dcdm.solvers.cg`; ``M`` may be non-linear and may vary
        between calls, but must give ``r . M(r) > 0``.
    truncation : int, default 1
        ``m``, the number of previous directions each new one is
        A-orthogonalised against (Notay's FCG(1) is the default; raise it for
        strongly varying preconditioners).

    Returns
    -------
    SolveResult

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.solvers import fcg
    >>> A = np.diag([1.0, 2.0, 3.0])
    >>> res = fcg(A, np.ones(3), M=lambda r: r / np.array([1.0, 2.0, 3.0]), rtol=1e-12)
    >>> res.iterations, np.round(res.x, 6).tolist()
    (1, [1.0, 0.5, 0.333333])
    """
    if isinstance(truncation, bool) or not isinstance(truncation, int) or truncation < 1:
        raise ValueError(f"truncation must be an integer >= 1, got {truncation!r}")
    ws = SolveWorkspace(SystemInputs(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter,
                                      callback=callback))
    P, setup_time = setup_preconditioner(M, ws.A, ws.b, precond_options, method="fcg")
    x, r = ws.start()
    reason, it, hist = _iterate(ws, x, r, P, truncation, callback)
    return ws.finish(x, reason, it, hist, setup_time=setup_time, precond=P, method="fcg",
                     check=check, extra={"truncation": truncation})


def _iterate(prob: SolveWorkspace, x, r, P, m: int, callback) -> tuple[Reason, int, list[float]]:
    tol = prob.tol
    _, hist, verdict = prob.begin(r)
    if verdict is not None:
        return verdict, 0, hist
    dirs = Directions(m, r, prob.xp)
    for it in range(1, prob.maxiter + 1):
        p, Ap = dirs.next_slot()
        if P is None:
            p[...] = r
        else:
            prob.precondition(P, r, p)
        rz = kernels.dot(r, p)
        if (bad := positive(rz, Reason.INDEFINITE_PRECONDITIONER)) is not None:
            return bad, it - 1, hist
        dirs.orthogonalise(p)
        prob.matvec(p, Ap)
        pAp = kernels.dot(p, Ap)
        if (bad := positive(pAp, Reason.INDEFINITE_OPERATOR)) is not None:
            return bad, it - 1, hist
        dirs.commit(pAp)
        alpha = kernels.dot(p, r) / pAp
        rnorm = math.sqrt(kernels.cg_update(x, r, p, Ap, alpha))
        hist.append(rnorm)
        if callback is not None:
            callback(x)
        if not math.isfinite(rnorm):
            return Reason.NAN_OR_INF, it, hist
        if rnorm <= tol:
            hist[-1], verdict = prob.confirm(x, r)
            if verdict is not None:
                return verdict, it, hist
        elif prob.nullspace is not None:
            prob.project(r)
    return Reason.MAX_ITERATIONS, prob.maxiter, hist
