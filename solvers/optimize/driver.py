"""The outer loop every method of :mod:`dcdm.optimize` shares.

:class:`Start` validates ``x0``, evaluates ``f`` and ``grad f`` (counting evaluations) and
holds the metric; :func:`outer_loop` stops on ``||g||_* <= gtol`` or ``f <= f_target``,
calls the method's ``step`` once per outer iteration, keeps the history, takes the
accepted step (never a rejected one), calls the callback and builds the result. A method
is then only its trial rule: ``step(x, f, g, gnorm) -> (IterationRecord, accepted)``,
``accepted = (d, f_new, g_new, gnorm_new or None)`` or ``None`` when every trial was
rejected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .result import IterationRecord, OptimizeResult, TrialRecord
from .systems import Metric, TrialSolver, hessian_at

__all__ = ["Start", "forcing", "outer_loop", "rejected"]

Step = Callable[[np.ndarray, float, np.ndarray, float],
                tuple[IterationRecord, tuple | None]]


def forcing(gnorm: float, gnorm0: float, cap: float = 0.5) -> float:
    """The relative tolerance of an inexact inner solve: ``min(cap, sqrt(||g_k|| / ||g_0||))``
    (scale-free; it tends to 0 with the gradient, which keeps Newton's local superlinear
    rate). The cap is 0.5 with ``B = I`` and 0.01 with another metric: CG stops on the
    2-norm of the residual, which bounds its ``B^-1``-norm only loosely (with ``B = A`` and
    a cap of 0.5, the semilinear Poisson run stalled: one-iteration steps, gamma -> 0)."""
    return min(cap, math.sqrt(gnorm / gnorm0)) if gnorm0 > 0 else cap


class Start:
    """Validated ``x0``, ``f(x0)``, ``grad f(x0)``, the metric, ``||g_0||_*`` and evaluation
    counts."""

    def __init__(self, fun: Callable, x0: Any, jac: Callable, B: Any):
        if not callable(fun):
            raise TypeError(f"fun must be callable, got {type(fun).__name__}")
        if not callable(jac):
            raise TypeError(f"jac must be a callable returning the gradient, got "
                            f"{type(jac).__name__}")
        x = np.array(x0, dtype=np.float64, copy=True)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"x0 must be a non-empty 1-D array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("x0 must be finite")
        self.fun, self.jac, self.nfev, self.njev = fun, jac, 0, 0
        self.x = x
        f, g = self.evaluate(x)
        if f is None:
            raise ValueError("fun(x0) and jac(x0) must be finite (got a NaN or Inf at x0)")
        self.f, self.g = f, g
        self.metric = Metric(B, x.size)
        self.gnorm0 = self.metric.dual_norm(g)

    def trial_solver(self, x: np.ndarray, g: np.ndarray, gnorm: float, *, hess: Any,
                     hessp: Callable | None, M: Any, inner: str, inner_rtol: float | None,
                     inner_maxiter: int | None) -> TrialSolver:
        """One outer iteration's trial systems ``(H(x) + lam B) d = -g``, solved to
        ``inner_rtol`` or, by default, to the :func:`forcing` tolerance."""
        rtol = (forcing(gnorm, self.gnorm0, 0.5 if self.metric.B is None else 0.01)
                if inner_rtol is None else inner_rtol)
        return TrialSolver(hessian_at(x, hess, hessp), g, self.metric, M=M, inner=inner,
                           rtol=rtol, maxiter=inner_maxiter)

    def evaluate(self, x: np.ndarray) -> tuple[float | None, np.ndarray | None]:
        self.nfev += 1
        self.njev += 1
        f = float(self.fun(x))
        g = np.asarray(self.jac(x), dtype=np.float64)
        if g.shape not in ((x.size,), (x.size, 1)):
            raise ValueError(f"jac(x) must return {x.size} entries (the shape of x0), got "
                             f"shape {g.shape}")
        g = g.reshape(-1)
        if not math.isfinite(f) or not np.all(np.isfinite(g)):
            return None, None
        return f, g


def rejected(value: float, its: int, reason: str, d: Any, f_new: float | None,
              worse: str) -> TrialRecord:
    """A rejected trial's record: no step, a non-finite trial, or ``worse`` (the method's
    own test failed)."""
    why = ("solve: " + reason if d is None else "non-finite f or g" if f_new is None
           else worse)
    return TrialRecord(value, False, its, reason, math.nan if f_new is None else f_new, why)


def outer_loop(st: Start, step: Step, *, method: str, maxiter: int, gtol: float,
               f_target: float | None, callback: Callable | None) -> OptimizeResult:
    """Run ``step`` until a stopping test holds, ``maxiter`` iterations, or a step fails."""
    x, f, g, gnorm = st.x, st.f, st.g, st.gnorm0
    history: list[IterationRecord] = []
    status, message = 1, f"reached maxiter={maxiter}"
    for k in range(maxiter + 1):
        if gnorm <= gtol:
            status, message = 0, "gradient tolerance met"
            break
        if f_target is not None and f <= f_target:
            status, message = 0, "f_target met"
            break
        if k == maxiter:
            break
        record, accepted = step(x, f, g, gnorm)
        history.append(record)
        if accepted is None:
            status, message = 2, f"no trial step accepted in {len(record.trials)} trials"
            break
        d, f, g, gnorm_new = accepted
        gnorm = st.metric.dual_norm(g) if gnorm_new is None else gnorm_new
        x = x + d
        if callback is not None:
            callback(np.array(x, copy=True))
    return OptimizeResult(
        x=x, fun=f, jac=g, success=status == 0, status=status, message=message,
        nit=len(history), n_trials=sum(len(h.trials) for h in history),
        n_inner=sum(h.inner_iterations for h in history), nfev=st.nfev, njev=st.njev,
        history=tuple(history), method=method)
