"""What one Krylov solve works in: :class:`SolveWorkspace`.

Built from validated :class:`~dcdm.solvers.inputs.SystemInputs`, it owns the state a
loop shares with its set-up and tear-down: the support of a grid operator (rows off the
FLUID cells are decoupled identity rows: the iteration runs on vectors that vanish
there, with the operator's faster support-only mat-vec), the null-space projection of
singular systems, the :class:`~dcdm.solvers.stopping.StoppingRule`, the timer and the
statistics, and it assembles the :class:`~dcdm.solvers.result.SolveResult` with the
true residual recomputed at exit. The Krylov loops (``cg.py``, ``fcg.py``, ``dcdm.py``)
only iterate.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from dcdm import kernels
from dcdm.kernels import arrays

from .inputs import SystemInputs
from .result import ConvergenceError, Reason, SolveResult
from .stopping import StoppingRule

__all__ = ["SolveWorkspace"]


def _exponent(b, xp, dtype) -> int:
    """``e`` such that ``b / 2**e`` has its largest entry in [1/2, 1), or 0 when ``b`` is
    already within ``2**-L .. 2**L`` (L = 100 in float64, 30 in float32), where ``||b||^2``
    neither under- nor overflows: normal inputs are left exactly as they are."""
    amax = float(xp.max(xp.abs(b))) if b.shape[0] else 0.0
    if amax == 0.0 or not math.isfinite(amax):
        return 0
    limit = 100 if np.dtype(dtype) == np.float64 else 30
    e = math.frexp(amax)[1]
    return e if abs(e) > limit else 0


def _scale(v, e: int) -> None:
    """``v *= 2**e`` in place, exactly, in steps each factor of which is representable."""
    step = 1000 if arrays.host_dtype(v.dtype) == np.float64 else 100
    while e:
        k = max(-step, min(step, e))
        v *= 2.0**k
        e -= k


class SolveWorkspace:
    """``A x = b`` ready to iterate on (see the module docstring).

    Parameters
    ----------
    inputs : SystemInputs

    Attributes
    ----------
    A : Operator
    b : array, 1-D, working dtype (a private copy, zero off the support, projected if
        singular)
    xp : array namespace of ``b``
    dtype : numpy.dtype
    maxiter : int
    rule : StoppingRule
    nullspace : ConstantNullSpace or None
    matvec : callable
        ``matvec(x, out)`` for the loop's vectors (the support-only one on grids).
    stats : dict

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.solvers.inputs import SystemInputs
    >>> ws = SolveWorkspace(SystemInputs(np.diag([2.0, 4.0]), np.ones(2)))
    >>> x, r = ws.start()
    >>> round(ws.norm(r), 12), round(ws.tol, 12)
    (1.414213562373, 1.4142136e-05)
    """

    def __init__(self, inputs: SystemInputs):
        self.A = inputs.A
        self.xp = inputs.xp
        self.dtype = inputs.dtype
        self.maxiter = inputs.maxiter
        self.out_shape = inputs.out_shape
        self.b = inputs.b
        self.x0 = inputs.x0
        self.stats: dict[str, Any] = dict(inputs.stats)
        # b (and x0, atol) scaled by an exact power of two so that no norm under- or
        # overflows; undone at exit
        self.shift = _exponent(self.b, self.xp, self.dtype)
        if self.shift:
            _scale(self.b, -self.shift)
            if self.x0 is not None:
                _scale(self.x0, -self.shift)
            self.stats["rhs_scaled_by"] = f"2**{-self.shift}"
        # ||b|| of the rule: the caller's b (entries off the support included)
        bnorm = self.norm(self.b)
        support = getattr(self.A, "support", None)
        self.matvec = self.A.matvec
        self._off = None
        if support is not None and hasattr(self.A, "matvec_fluid"):
            self._off = self._off_support(support, getattr(self.A, "grid", None))
            self._b_off = self.b[self._off]
            self.b[self._off] = 0
            if self.x0 is not None:
                self.x0[self._off] = 0
            self.matvec = self.A.matvec_fluid
        self.nullspace = getattr(self.A, "nullspace", None)
        self._b_raw = None
        removed = 0.0
        if self.nullspace is not None:
            self._b_raw = self.xp.asarray(self.b, copy=True)  # for the true residual at exit
            removed = self.nullspace.residual(self.b)
            self.nullspace.project(self.b, out=self.b)
            self.stats["nullspace"] = (
                f"singular operator: {self.nullspace.dimension} constant null vector(s); "
                "b and the iterates are projected onto the range of A"
            )
            self.stats["nullspace_dimension"] = self.nullspace.dimension
            self.stats["rhs_nullspace_component"] = math.ldexp(removed, self.shift)
        atol = math.ldexp(inputs.atol, -self.shift)
        self.rule = StoppingRule(inputs.rtol, atol, bnorm, removed)
        self.stats["tolerance"] = math.ldexp(self.rule.true_tol, self.shift)
        self.stats["dtype"] = str(self.dtype)
        self._confirmed = None
        self._t0 = time.perf_counter()

    @property
    def tol(self) -> float:
        """The absolute tolerance on ``||b - A x||``."""
        return self.rule.tol

    def _off_support(self, support, grid):
        """Indices of the unknowns off the support, in ``b``'s namespace and on its device
        (for a grid, from its cached device copy of the FLUID mask: nothing crosses)."""
        if isinstance(self.b, np.ndarray):
            return np.flatnonzero(~np.asarray(support))
        xp = self.xp
        if grid is not None and hasattr(grid, "kernel_arrays"):
            fluid = grid.kernel_arrays(self.b)[2]
            return xp.nonzero(~xp.reshape(fluid, (-1,)))[0]
        return arrays.asarray_like(np.flatnonzero(~np.asarray(support)), self.b)

    # -- what the loops use -------------------------------------------------------------
    def norm(self, v) -> float:
        return math.sqrt(kernels.dot(v, v))

    def project(self, v):
        """Remove the null-space component of ``v`` in place (no-op for SPD operators)."""
        if self.nullspace is not None:
            self.nullspace.project(v, out=v)
        return v

    def restrict(self, v):
        """Zero ``v`` off the support and project it onto the range of ``A``, in place: a
        direction from outside the loop (a network's) made a valid Krylov vector."""
        if self._off is not None:
            v[self._off] = 0
        return self.project(v)

    def precondition(self, P, r, z):
        """``z = M r`` (``z = r`` without ``M``), kept on the support and in the range of A."""
        if P is None:
            return r
        z = P.apply(r, out=z)
        if self._off is not None and not getattr(P, "preserves_support", False):
            z[self._off] = 0
        return self.project(z)

    def converged_reason(self) -> Reason:
        return self.rule.converged_reason()

    def begin(self, r) -> tuple[float, list[float], Reason | None]:
        """What every loop starts with: ``(r . r, [||r||], verdict)``; the verdict is
        None (iterate), ``NAN_OR_INF`` or converged (``r`` already meets the tolerance)."""
        rr = kernels.dot(r, r)
        rnorm = math.sqrt(rr)
        return rr, [rnorm], self.rule.first(rnorm)

    def confirm(self, x, r) -> tuple[float, Reason | None]:
        """The recursive residual met the tolerance: overwrite ``r`` with the true one.

        Returns its norm and :meth:`StoppingRule.judge`'s verdict (None: go on from the
        true residual).
        """
        self.residual(x, out=r)
        rnorm = self.norm(r)
        verdict = self.rule.judge(rnorm)
        if verdict is not None and verdict.converged:
            self._confirmed = rnorm  # the loop ends here, x as it is: finish reuses it
        return rnorm, verdict

    def start(self):
        """Return ``(x, r)``: a private copy of ``x0`` (or zeros) and ``b - A x``."""
        xp = self.xp
        if self.x0 is None or not self.rule.bnorm or not bool(xp.any(self.x0)):
            # no x0, or b = 0 (x = 0 is the solution), or x0 = 0: r = b, no mat-vec
            x = xp.zeros_like(self.b)
            r = xp.asarray(self.b, copy=True)
        else:
            x = xp.asarray(self.x0, copy=True)
            self.project(x)
            r = self.residual(x)
        self._t0 = time.perf_counter()
        return x, r

    def residual(self, x, out=None):
        """True residual ``b - A x`` of an iterate (projected for singular systems)."""
        out = self.matvec(x, out)
        out *= -1
        out += self.b
        return self.project(out)

    def finish(
        self,
        x,
        reason: Reason,
        iterations: int,
        history: list[float],
        *,
        setup_time: float = 0.0,
        precond=None,
        method: str,
        check: bool = False,
        extra: dict | None = None,
    ) -> SolveResult:
        """Recompute the true residual, build the result, raise if ``check`` and failed."""
        self.project(x)
        if self._off is not None:
            x[self._off] = self._b_off
            self.b[self._off] = self._b_off
            self.matvec = self.A.matvec
        if self._confirmed is not None and self._off is None and self._b_raw is None:
            rnorm = self._confirmed  # b - A x of this very x, computed by confirm()
        else:
            b = self.b if self._b_raw is None else self._b_raw
            if self._b_raw is not None and self._off is not None:
                b[self._off] = self._b_off
            r = self.A.matvec(x)
            r *= -1
            r += b
            rnorm = self.norm(r)  # the true residual, of the caller's (unprojected) b
        reason = self.rule.final(reason, rnorm)
        solve_time = time.perf_counter() - self._t0
        history = list(history)
        if history:
            history[-1] = rnorm
        else:
            history = [rnorm]
        if self.shift:
            _scale(x, self.shift)
            rnorm = math.ldexp(rnorm, self.shift)
            history = [math.ldexp(h, self.shift) for h in history]
        stats = dict(self.stats)
        if self.rule.restarts:
            stats["residual_restarts"] = self.rule.restarts
        stats["method"] = method
        stats["preconditioner"] = "none"
        if precond is not None:
            stats.update(precond.stats)
        if extra:
            stats.update(extra)
        result = SolveResult(
            x=self.xp.reshape(x, self.out_shape),
            reason=reason,
            iterations=iterations,
            residual_norm=rnorm,
            residual_history=np.asarray(history),
            setup_time=setup_time,
            solve_time=solve_time,
            stats=stats,
        )
        if check and not result.converged:
            raise ConvergenceError(result)
        return result
