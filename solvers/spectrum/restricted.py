"""The operator side of every spectrum routine: ``A`` checked (symmetric) and converted,
the preconditioner built and checked (linear, SPD), and both applied to vectors restricted
to the unknowns of the support (a grid operator's FLUID cells), with a detected constant
null space projected out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..operators import as_operator
from ..precond.registry import make_preconditioner
from ..restriction import support_matvec

__all__ = ["Restricted", "check_symmetric", "prepare", "start_vector"]


class Restricted:
    """``A``, ``P`` and the null-space projection on vectors restricted to ``support``."""

    def __init__(self, A: Any, P: Any, support: np.ndarray):
        self._mv: Callable = support_matvec(A, support)
        self._P = P
        self._ns = getattr(A, "nullspace", None)
        self.support = support
        # integer indices gather and scatter about twice as fast as a boolean mask
        self._idx = None if support.all() else np.flatnonzero(support)
        self._full = np.zeros(support.size, dtype=np.result_type(A.dtype, np.float64))

    def _run(self, f: Callable, v: np.ndarray) -> np.ndarray:
        if self._idx is None:
            out = np.asarray(f(v), dtype=np.float64).reshape(-1)
            return out.copy() if np.shares_memory(out, v) else out
        full = self._full
        full[self._idx] = v
        return np.asarray(f(full), dtype=np.float64).reshape(-1).take(self._idx)

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self._run(self._mv, v)

    def precondition(self, v: np.ndarray) -> np.ndarray:
        return v if self._P is None else self._run(self._P.apply, v)

    def project(self, v: np.ndarray) -> np.ndarray:
        """Remove the constant null-space component (residual space), in place."""
        if self._ns is not None:
            full = np.zeros(self.support.size)
            full[self.support] = v
            v[:] = self._ns.project(full)[self.support]
        return v


def prepare(A: Any, M: Any, support: np.ndarray | None, precond_options: dict | None):
    A = as_operator(A)
    n = A.shape[0]
    if support is None:
        support = getattr(A, "support", None)
        support = np.ones(n, dtype=bool) if support is None else support
    support = np.asarray(support, dtype=bool)
    if support.shape != (n,):
        raise ValueError(f"support must be a boolean mask of shape ({n},) (one entry per row "
                         f"of A), got shape {support.shape}")
    check_symmetric(A, support)
    P = make_preconditioner(M, A, **(precond_options or {}))
    if P is not None and getattr(P, "name", None) == "none":
        P = None  # the identity: plain Lanczos (and a uniform SLQ measure)
    if P is not None and not (P.is_linear and P.is_spd):
        raise ValueError(
            f"M={getattr(P, 'name', M)!r} is not a linear SPD preconditioner, which Lanczos "
            "(like CG) requires: a non-linear M^-1 A has no fixed spectrum; use a linear M "
            "('jacobi', 'ic0', 'mic0', 'amg', 'mg'), or study the network through "
            "its Jacobian (non-symmetric: Arnoldi)"
        )
    return A, P, support


def check_symmetric(A: Any, support: np.ndarray) -> None:
    """Refuse a non-symmetric ``A``: ``u . A v`` against ``v . A u`` for two random vectors
    on the support (two mat-vecs), to a tolerance set by ``A``'s precision. Skipped for an
    operator that declares ``is_symmetric = True`` (a network Hessian, whose every product
    is a pass over a data set)."""
    if getattr(A, "is_symmetric", False) is True:
        return
    rng = np.random.default_rng(12345)
    u, v = (np.where(support, rng.standard_normal(support.size), 0.0) for _ in range(2))
    Au = np.asarray(A.matvec(u), dtype=np.float64).reshape(-1)
    Av = np.asarray(A.matvec(v), dtype=np.float64).reshape(-1)
    a, b = float(u @ Av), float(v @ Au)
    scale = np.linalg.norm(u) * np.linalg.norm(Av) + np.linalg.norm(v) * np.linalg.norm(Au)
    dtype = A.dtype if np.issubdtype(A.dtype, np.floating) else np.float64
    tol = max(1e-8, 1000 * float(np.finfo(dtype).eps))
    if not abs(a - b) <= tol * scale:
        raise ValueError(
            f"A is not symmetric (u . A v = {a:.6g} but v . A u = {b:.6g} for random u, v): "
            "Lanczos, SLQ and CG need a symmetric A; for a non-symmetric operator use "
            "Arnoldi (scipy.sparse.linalg.eigs)")


def start_vector(ops: Restricted, v0, seed, k: int) -> np.ndarray:
    if v0 is None:
        rng = np.random.default_rng(seed)
        return ops.matvec(rng.standard_normal(k))
    v = np.asarray(v0, dtype=np.float64).reshape(-1)
    if v.size == ops.support.size:
        v = v[ops.support]
    elif v.size != k:
        raise ValueError(f"v0 must have {ops.support.size} entries (one per row of A) or "
                         f"{k} (one per unknown of the support), got {v.size}")
    if not np.all(np.isfinite(v)):
        raise ValueError("v0 must be finite")
    return v.copy()
