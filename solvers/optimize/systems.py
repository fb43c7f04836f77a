"""The linear algebra every Newton-type step needs: the metric ``B`` (products, dual norms
``||g||_* = sqrt(g . B^-1 g)``), the Hessian at a point as an operator, and the trial
system ``(H + lam B) d = -g`` solved directly (dense Cholesky or sparse LU) or by
:func:`dcdm.cg` with any preconditioner, warm-started.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ..cg import cg
from ..fcg import fcg
from ..precond.base import Preconditioner
from ..precond.function import FunctionPreconditioner
from ..precond.registry import make_preconditioner
from ..result import Reason

__all__ = ["Metric", "TrialSolver", "hessian_at", "solve_step", "system"]


def _is_matrix(A: Any) -> bool:
    return isinstance(A, np.ndarray) or sp.issparse(A)


def _is_structured(A: Any) -> bool:
    """An operator whose ``A + lam I`` (``shifted_by``) and ``A + lam B`` keep its structure,
    so that a preconditioner that needs it (``M="mg"`` on a grid operator restricted to its
    FLUID unknowns, :class:`dcdm.solvers.RestrictedOperator`) can be built on the system."""
    return hasattr(A, "shifted_by") and hasattr(A, "matvec") and hasattr(A, "shape")


def _apply(A: Any, v: np.ndarray) -> np.ndarray:
    return np.asarray(A.matvec(v) if hasattr(A, "matvec") else A @ v)


class Metric:
    """The metric ``B`` (``None``: the identity): ``B v`` and the dual norm of a gradient.

    A dense or sparse ``B`` is factorised once (Cholesky / sparse LU) after a check that it
    is symmetric positive definite; a ``LinearOperator`` (or an operator with ``shape`` and
    ``matvec``) is inverted by CG to 1e-12, preconditioned by multigrid when it is a grid
    operator (restricted to its FLUID unknowns).
    """

    def __init__(self, B: Any, n: int):
        self.B = B
        self._solve: Callable[[np.ndarray], np.ndarray] | None = None
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._M: Any = None
        if B is None:
            return
        if not (_is_matrix(B) or isinstance(B, spla.LinearOperator) or _is_structured(B)):
            raise TypeError(f"B must be None, a dense or sparse matrix, a LinearOperator or a "
                            f"grid operator on its unknowns (dcdm.solvers.restrict), got "
                            f"{type(B).__name__}")
        if B.shape != (n, n):
            raise ValueError(f"B must be {n} x {n} (one row per entry of x0), got shape "
                             f"{B.shape}")
        if isinstance(B, np.ndarray):
            if not np.allclose(B, B.T, rtol=1e-10, atol=0):
                raise ValueError("B must be symmetric positive definite: it is not symmetric")
            try:
                factor = scipy.linalg.cho_factor(B)
            except np.linalg.LinAlgError:
                raise ValueError("B must be symmetric positive definite: its Cholesky "
                                 "factorisation failed") from None
            self._solve = lambda g: scipy.linalg.cho_solve(factor, g)
        elif sp.issparse(B):
            Bc = sp.csc_array(B)
            if abs(Bc - Bc.T).max() > 1e-10 * abs(Bc).max():
                raise ValueError("B must be symmetric positive definite: it is not symmetric")
            self._solve = spla.factorized(Bc)

    def apply(self, v: np.ndarray) -> np.ndarray:
        return v if self.B is None else _apply(self.B, v)

    def inverse(self, g: np.ndarray) -> np.ndarray:
        """``B^-1 g``; the last one is kept, for the same gradient (the dual norm and a
        gradient step both need it)."""
        if self.B is None:
            return g
        if self._last is not None and self._last[0] is g:
            return self._last[1]
        if self._solve is not None:
            out = np.asarray(self._solve(g))
        else:
            if self._M is None and _is_structured(self.B):
                self._M = make_preconditioner("mg", self.B)  # built once, B is fixed
            res = cg(self.B, g, M=self._M, rtol=1e-12, maxiter=10 * g.size)
            if not res.converged:
                raise ValueError(f"B must be symmetric positive definite: CG on B ended "
                                 f"{res.reason.name}")
            out = np.asarray(res.x)
        self._last = (g, out)
        return out

    def dual_norm(self, g: np.ndarray) -> float:
        """``sqrt(g . B^-1 g)``; raises if ``B`` turns out not positive definite."""
        q = float(g @ self.inverse(g))
        if q < 0 or not math.isfinite(q):
            raise ValueError("B must be symmetric positive definite: g . B^-1 g = "
                             f"{q:.3g} for the current gradient")
        return math.sqrt(q)

    def norm(self, d: np.ndarray) -> float:
        return math.sqrt(max(float(d @ self.apply(d)), 0.0))


def hessian_at(x: np.ndarray, hess: Any, hessp: Callable | None) -> Any:
    """The Hessian (or its approximation) at ``x``: a matrix, or a ``LinearOperator``.

    ``hess`` may be a callable ``hess(x)`` returning a matrix, a LinearOperator or an
    object with the operator contract (``shape``, ``matvec``: e.g. a network's
    :class:`dcdm.spectrum.HessianOperator`), or a constant one of those; ``hessp(x, v)``
    gives a matrix-free operator.
    """
    n = x.size
    if hess is not None:
        H = hess(x) if callable(hess) and not hasattr(hess, "matvec") else hess
        if _is_structured(H):
            if H.shape != (n, n):
                raise ValueError(f"hess(x) must be {n} x {n}, got shape {H.shape}")
            return H
        if not (_is_matrix(H) or isinstance(H, spla.LinearOperator)):
            if not (hasattr(H, "matvec") and hasattr(H, "shape")):
                raise TypeError(f"hess(x) must return a dense or sparse matrix, a "
                                f"LinearOperator or an operator (shape, matvec), got "
                                f"{type(H).__name__}")
            op = H  # the operator contract (e.g. dcdm.spectrum.HessianOperator)
            H = spla.LinearOperator(op.shape, dtype=np.float64, matvec=lambda v: np.asarray(
                op.matvec(np.asarray(v, dtype=np.float64).reshape(-1)), dtype=np.float64))
        if H.shape != (n, n):
            raise ValueError(f"hess(x) must be {n} x {n}, got shape {H.shape}")
        return H
    if hessp is None:
        raise ValueError("a second-order method needs hess= or hessp=")

    def matvec(v: np.ndarray) -> np.ndarray:
        out = np.asarray(hessp(x, np.asarray(v).reshape(-1)), dtype=np.float64)
        if out.shape not in ((n,), (n, 1)):
            raise ValueError(f"hessp(x, v) must return {n} entries (the shape of x0), got "
                             f"shape {out.shape}")
        return out.reshape(-1)

    return spla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)


def system(H: Any, lam: float, metric: Metric) -> Any:
    """``H + lam B``: assembled when both are matrices, of ``H``'s structure when ``H`` is
    a structured operator (and ``B`` the identity or one of the same kind), a
    LinearOperator otherwise."""
    B = metric.B
    if _is_structured(H):
        K = H.shifted_by(lam) if B is None else (H + lam * B if _is_structured(B)
                                                 else NotImplemented)
        if K is not NotImplemented:
            return K
    if _is_matrix(H) and (B is None or _is_matrix(B)):
        if sp.issparse(H) or sp.issparse(B):
            eye = sp.eye_array(H.shape[0], format="csr") if B is None else sp.csr_array(B)
            return sp.csr_array(H) + lam * eye
        return H + lam * (np.eye(H.shape[0]) if B is None else B)
    n = H.shape[0]
    return spla.LinearOperator((n, n), dtype=np.float64,
                               matvec=lambda v: _apply(H, v) + lam * metric.apply(v))


def solve_step(K: Any, g: np.ndarray, *, inner: str, rtol: float, M: Any,
               x0: np.ndarray | None, maxiter: int | None) -> tuple[np.ndarray | None, int, str]:
    """``d`` with ``K d = -g``: ``(d, inner iterations, reason)``; ``d`` is None when the
    system turned out indefinite or the solve failed (a rejected trial, not an error)."""
    if inner == "direct":
        if not _is_matrix(K):
            raise ValueError("inner='direct' needs the Hessian (and B) as matrices; with "
                             "hessp or a LinearOperator use inner='cg'")
        try:
            if sp.issparse(K):
                d = spla.spsolve(sp.csc_array(K), -g)
            else:
                d = -scipy.linalg.cho_solve(scipy.linalg.cho_factor(K), g)
        except (np.linalg.LinAlgError, RuntimeError):
            return None, 0, "not positive definite"
        return (d if np.all(np.isfinite(d)) else None), 0, "direct"
    krylov = fcg if inner == "fcg" else cg  # flexible CG for a non-linear M (the networks)
    res = krylov(K, -g, x0=x0, M=M, rtol=rtol, maxiter=maxiter)
    if res.reason in (Reason.INDEFINITE_OPERATOR, Reason.NAN_OR_INF, Reason.BREAKDOWN):
        return None, res.iterations, res.reason.name
    return np.asarray(res.x), res.iterations, res.reason.name


class TrialSolver:
    """One outer iteration's trial systems ``(H + lam B) d = -g``, ``lam`` changing from
    trial to trial: ``M`` (a name) built on the first and reused (as a plain callable, so
    that the next ``lam`` passes). The first trial starts from ``d = 0`` (CG's first step is
    then a descent direction whatever the tolerance); each later one is warm-started from
    the trial before it (the same ``H``, another ``lam``)."""

    def __init__(self, H: Any, g: np.ndarray, metric: Metric, *, M: Any, inner: str,
                 rtol: float, maxiter: int | None):
        self.H, self.g, self.metric, self.M = H, g, metric, M
        self.inner, self.rtol, self.maxiter = inner, rtol, maxiter
        self.x0: np.ndarray | None = None
        self._P: Any = None
        self._built = False

    def __call__(self, lam: float) -> tuple[np.ndarray | None, int, str]:
        K = system(self.H, lam, self.metric)
        if not self._built and self.inner != "direct":
            P = build_preconditioner(self.M, K)
            if isinstance(P, Preconditioner):  # reused as given by the next trials' lam
                P = FunctionPreconditioner(P.apply, is_linear=P.is_linear, is_spd=P.is_spd)
            self._P, self._built = P, True
        d, its, reason = solve_step(K, self.g, inner=self.inner, rtol=self.rtol, M=self._P,
                                    x0=self.x0, maxiter=self.maxiter)
        if d is not None:
            self.x0 = d
        return d, its, reason


def build_preconditioner(M: Any, K: Any) -> Any:
    """``M`` built for this outer iteration's first system (a name is built on ``K``; a
    built :class:`Preconditioner` or a callable is used as given)."""
    if M is None or isinstance(M, Preconditioner) or not isinstance(M, str):
        return M
    return make_preconditioner(M, K)
