"""What every solver returns: :class:`SolveResult`, its :class:`Reason`, and
:class:`ConvergenceError` for ``check=True``.

Reasons follow PETSc's sign convention (``KSPConvergedReason``): positive means
converged, negative means the iteration stopped without reaching the
tolerance. Where PETSc has the same reason its number is reused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["ConvergenceError", "Reason", "SolveResult"]


class Reason(IntEnum):
    """Why a solve stopped. ``reason > 0``: converged; ``reason < 0``: failed.

    Examples
    --------
    >>> from dcdm import Reason
    >>> Reason.CONVERGED_RTOL.converged, Reason.MAX_ITERATIONS.message
    (True, 'reached maxiter before the tolerance')
    """

    CONVERGED_RTOL = 2
    CONVERGED_ATOL = 3
    MAX_ITERATIONS = -3
    BREAKDOWN = -5
    INDEFINITE_PRECONDITIONER = -8
    NAN_OR_INF = -9
    INDEFINITE_OPERATOR = -10
    STAGNATION = -12
    INCONSISTENT_RHS = -13
    UNCONFIRMED = -14

    @property
    def converged(self) -> bool:
        return self > 0

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Reason.CONVERGED_RTOL: "true residual norm <= rtol * ||b||",
    Reason.CONVERGED_ATOL: "true residual norm <= atol",
    Reason.MAX_ITERATIONS: "reached maxiter before the tolerance",
    Reason.BREAKDOWN: "the iteration broke down (a zero or non-finite step); "
    "the residual may still be reduced by a restart",
    Reason.INDEFINITE_PRECONDITIONER: "r . M(r) <= 0: the preconditioner is not positive "
    "definite (cg needs an SPD preconditioner; a non-linear one needs method='fcg')",
    Reason.NAN_OR_INF: "NaN or Inf appeared in the iteration",
    Reason.STAGNATION: "the true residual stopped decreasing (rounding floor of the working "
    "precision, or a preconditioner that no longer helps) before the tolerance",
    Reason.INDEFINITE_OPERATOR: "p . A p <= 0: the operator is not positive definite "
    "(or is singular with an inconsistent right-hand side)",
    Reason.INCONSISTENT_RHS: "A is singular and b has a component in its null space larger "
    "than the tolerance, so no x meets it; x is the least-squares solution (b projected onto "
    "the range of A met the tolerance; stats['rhs_nullspace_component'] is what remains). "
    "For a pressure solve: the divergence has a net source in a closed region (fluid that "
    "touches no AIR), e.g. boundary fluxes that do not balance",
    Reason.UNCONFIRMED: "the iteration believed it had converged, but the true residual "
    "recomputed at exit misses the tolerance (a callback that changed x, or rounding at the "
    "tolerance)",
}


@dataclass(frozen=True)
class SolveResult:
    """The outcome of a solve.

    Attributes
    ----------
    x : array
        The final iterate, on the same device and of the same array type as ``b``.
    reason : Reason
        Why the iteration stopped (``reason.message`` explains).
    iterations : int
        Iterations taken (each one preconditioner application and one mat-vec).
    residual_norm : float
        ``||b - A x||_2`` recomputed from ``x`` at exit (never the recursive estimate).
    residual_history : ndarray
        Residual 2-norms per iteration, starting with the initial residual. The
        entries are the solver's (recursively updated) residuals; the last one
        is replaced by the true ``residual_norm``.
    setup_time, solve_time : float
        Seconds spent building the preconditioner, and iterating.
    stats : Mapping
        Everything else: method, preconditioner, tolerance used, null-space
        projection, preconditioner memory.
    """

    x: Any
    reason: Reason
    iterations: int
    residual_norm: float
    residual_history: np.ndarray
    setup_time: float = 0.0
    solve_time: float = 0.0
    stats: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "stats", MappingProxyType(dict(self.stats)))
        hist = np.array(self.residual_history, dtype=np.float64)
        hist.flags.writeable = False
        object.__setattr__(self, "residual_history", hist)

    @property
    def converged(self) -> bool:
        """True when ``reason > 0``."""
        return self.reason.converged

    @property
    def info(self) -> int:
        """SciPy's ``info``: 0 converged, ``iterations`` if maxiter hit, < 0 on breakdown."""
        if self.converged:
            return 0
        if self.reason == Reason.MAX_ITERATIONS:
            return max(self.iterations, 1)
        return -1

    def summary(self) -> str:
        """One line: reason, iterations, residual, times."""
        tol = self.stats.get("tolerance", float("nan"))
        return (
            f"{self.reason.name} after {self.iterations} iterations: ||b - Ax|| = "
            f"{self.residual_norm:.3e} (tolerance {tol:.3e}); "
            f"setup {self.setup_time:.3g} s, solve {self.solve_time:.3g} s"
        )

    def __repr__(self) -> str:
        return f"SolveResult({self.summary()})"


class ConvergenceError(RuntimeError):
    """Raised by ``solve(..., check=True)`` when the solve did not converge.

    The full :class:`SolveResult` is kept in ``.result``.
    """

    def __init__(self, result: SolveResult):
        self.result = result
        super().__init__(f"{result.reason.name}: {result.reason.message}. {result.summary()}")
