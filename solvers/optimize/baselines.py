"""The baselines of the GNS reference code, in :func:`dcdm.optimize.minimize`'s API.

``"gradient"``: the (B-preconditioned) gradient method with backtracking on ``L``
(``x+ = x - B^-1 g / L``; accept if ``f(x+) <= f + g.(x+ - x) + L/2 ||x+ - x||_B^2``, then
``L = max(L/2, 1e-5)``, else ``L = 2L``; at most 30 tries). ``"super-newton"``:
Super-Universal Newton (Doikov, Mishchenko & Nesterov 2024), ``lam = H_k ||g||_*^alpha``,
accept if ``<g+, -d> >= ||g+||_*^2 / (4 lam)`` then ``H = max(H/4, H_min)``, else
``H = 4H``. Both as in ``epfml/grad-norm-smooth/src/methods.py``, with the same fixes as
:mod:`.gns` (a rejected trial is never taken; indefinite or non-finite trials are rejected).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .gns import _Start, forcing
from .result import IterationRecord, OptimizeResult, TrialRecord
from .systems import TrialSolver, hessian_at, solve_step, system

__all__ = ["cubic_newton", "gradient_method", "super_newton"]


def _finish(st: _Start, x, f, g, history, status, message, n_trials, n_inner,
            method: str) -> OptimizeResult:
    return OptimizeResult(x=x, fun=f, jac=g, success=status == 0, status=status,
                          message=message, nit=len(history), n_trials=n_trials,
                          n_inner=n_inner, nfev=st.nfev, njev=st.njev, history=tuple(history),
                          method=method)


def _done(gnorm: float, f: float, gtol: float, f_target: float | None) -> str | None:
    if gnorm <= gtol:
        return "gradient tolerance met"
    if f_target is not None and f <= f_target:
        return "f_target met"
    return None


def gradient_method(fun: Callable, x0: Any, jac: Callable, *, B: Any = None,
                    gtol: float = 1e-8, f_target: float | None = None, maxiter: int = 1000,
                    L0: float = 1.0, max_trials: int = 30, callback: Callable | None = None,
                    **_: Any) -> OptimizeResult:
    """The gradient method with backtracking in the metric ``B``."""
    st = _Start(fun, x0, jac, B)
    x, f, g, metric = st.x, st.f, st.g, st.metric
    L, history, n_trials = float(L0), [], 0
    status, message = 1, f"reached maxiter={maxiter}"
    for _ in range(maxiter):
        Bg = metric.inverse(g)
        gnorm = math.sqrt(max(float(g @ Bg), 0.0))
        if (why := _done(gnorm, f, gtol, f_target)) is not None:
            status, message = 0, why
            break
        trials, accepted = [], None
        for _t in range(max_trials):
            n_trials += 1
            d = -Bg / L
            f_new, g_new = st.evaluate(x + d)
            if f_new is not None and f_new <= f + g @ d + 0.5 * L * metric.norm(d) ** 2:
                trials.append(TrialRecord(1 / L, True, 0, "explicit", f_new))
                accepted = (d, f_new, g_new)
                break
            trials.append(TrialRecord(1 / L, False, 0, "explicit",
                                      math.nan if f_new is None else f_new,
                                      "non-finite f or g" if f_new is None else "no decrease"))
            L *= 2
        history.append(IterationRecord(f, gnorm, L, tuple(trials)))
        if accepted is None:
            status, message = 2, f"no step accepted in {max_trials} trials"
            break
        d, f, g = accepted
        x = x + d
        L = max(L / 2, 1e-5)
        if callback is not None:
            callback(np.array(x, copy=True))
    else:
        if _done(metric.dual_norm(g), f, gtol, f_target) is not None:
            status, message = 0, "gradient tolerance met"
    return _finish(st, x, f, g, history, status, message, n_trials, 0, "gradient")


def super_newton(fun: Callable, x0: Any, jac: Callable, *, hess: Any = None,
                 hessp: Callable | None = None, B: Any = None, M: Any = None,
                 gtol: float = 1e-8, f_target: float | None = None, maxiter: int = 1000,
                 H0: float = 1.0, alpha: float = 1.0, H_min: float = 1e-5,
                 max_trials: int = 40, inner: str = "cg", inner_rtol: float | None = None,
                 inner_maxiter: int | None = None, callback: Callable | None = None,
                 **_: Any) -> OptimizeResult:
    """Super-Universal Newton: ``lam = H_k ||g||_*^alpha``, ``H_k`` adapted by 4x steps."""
    st = _Start(fun, x0, jac, B)
    x, f, g, metric = st.x, st.f, st.g, st.metric
    gnorm = gnorm0 = metric.dual_norm(g)
    Hk, history, n_trials, n_inner, d_prev = float(H0), [], 0, 0, None
    status, message = 1, f"reached maxiter={maxiter}"
    for _ in range(maxiter):
        if (why := _done(gnorm, f, gtol, f_target)) is not None:
            status, message = 0, why
            break
        solve = TrialSolver(hessian_at(x, hess, hessp), g, metric, M=M, inner=inner,
                            rtol=forcing(gnorm, gnorm0, 0.5 if B is None else 0.01)
                            if inner_rtol is None else inner_rtol,
                            maxiter=inner_maxiter)
        trials, accepted = [], None
        for _t in range(max_trials):
            lam = Hk * gnorm ** alpha
            d, its, reason = solve(lam)
            n_trials += 1
            n_inner += its
            f_new = g_new = None
            if d is not None:
                f_new, g_new = st.evaluate(x + d)
            if f_new is not None and -(g_new @ d) >= metric.dual_norm(g_new) ** 2 / (4 * lam):
                trials.append(TrialRecord(lam, True, its, reason, f_new))
                accepted = (d, f_new, g_new)
                break
            why = ("solve: " + reason if d is None else
                   "non-finite f or g" if f_new is None else "too little progress")
            trials.append(TrialRecord(lam, False, its, reason,
                                      math.nan if f_new is None else f_new, why))
            Hk *= 4
        history.append(IterationRecord(f, gnorm, Hk, tuple(trials)))
        if accepted is None:
            status, message = 2, f"no trial step accepted in {max_trials} trials"
            break
        d_prev, f, g = accepted
        x = x + d_prev
        gnorm = metric.dual_norm(g)
        Hk = max(Hk / 4, H_min)
        if callback is not None:
            callback(np.array(x, copy=True))
    return _finish(st, x, f, g, history, status, message, n_trials, n_inner, "super-newton")


def cubic_newton(fun: Callable, x0: Any, jac: Callable, *, hess: Any = None,
                 hessp: Callable | None = None, B: Any = None, gtol: float = 1e-8,
                 f_target: float | None = None, maxiter: int = 1000, H0: float = 1.0,
                 H_min: float = 1e-5, max_trials: int = 40, callback: Callable | None = None,
                 **_: Any) -> OptimizeResult:
    """Cubic Newton (Nesterov & Polyak 2006) with an adaptive ``H_k``, as in the reference.

    Each trial minimises the model ``g.d + d.Hd/2 + H_k ||d||_B^3 / 6``: its minimiser
    solves ``(H + H_k r/2 B) d = -g`` with ``r = ||d||_B``, found by bracketing the root of
    ``||d(r)||_B - r`` (Brent; each evaluation one factorisation). Accept if ``f(x + d)`` is at
    most the model's value, then ``H_k = max(H_k/2, H_min)``; else ``H_k = 2 H_k``. Needs
    the Hessian as a matrix (factorisations).
    """
    import scipy.optimize

    st = _Start(fun, x0, jac, B)
    x, f, g, metric = st.x, st.f, st.g, st.metric
    Hk, history, n_trials = float(H0), [], 0
    status, message = 1, f"reached maxiter={maxiter}"
    for _ in range(maxiter):
        gnorm = metric.dual_norm(g)
        if (why := _done(gnorm, f, gtol, f_target)) is not None:
            status, message = 0, why
            break
        H = hessian_at(x, hess, hessp)
        trials, accepted = [], None
        for _t in range(max_trials):
            n_trials += 1
            d = _cubic_step(H, g, Hk, metric, scipy.optimize.brentq)
            f_new = g_new = None
            if d is not None:
                f_new, g_new = st.evaluate(x + d)
            model = (g @ d + 0.5 * d @ (H @ d) + Hk / 6 * metric.norm(d) ** 3
                     if d is not None else math.nan)
            if f_new is not None and f_new <= f + model:
                trials.append(TrialRecord(Hk, True, 0, "direct", f_new))
                accepted = (d, f_new, g_new)
                break
            trials.append(TrialRecord(Hk, False, 0, "direct",
                                      math.nan if f_new is None else f_new,
                                      "no step" if d is None else "above the model"))
            Hk *= 2
        history.append(IterationRecord(f, gnorm, Hk, tuple(trials)))
        if accepted is None:
            status, message = 2, f"no trial step accepted in {max_trials} trials"
            break
        d, f, g = accepted
        x = x + d
        Hk = max(Hk / 2, H_min)
        if callback is not None:
            callback(np.array(x, copy=True))
    return _finish(st, x, f, g, history, status, message, n_trials, 0, "cubic-newton")


def _cubic_step(H: Any, g: np.ndarray, Hk: float, metric: Any,
                brentq: Callable) -> np.ndarray | None:
    """The cubic model's minimiser ``d(r) = -(H + H_k r/2 B)^-1 g`` at the root of
    ``||d(r)||_B - r`` (decreasing in ``r``), bracketed by halving and doubling."""
    def step(r: float) -> np.ndarray | None:
        return solve_step(system(H, Hk * r / 2, metric), g, inner="direct", rtol=0.0, M=None,
                          x0=None, maxiter=None)[0]

    def psi(r: float) -> float:
        d = step(r)
        return math.inf if d is None else metric.norm(d) - r

    hi = 1.0
    while psi(hi) > 0:
        hi *= 2
        if hi > 1e30:
            return None
    lo = hi / 2
    while lo > 1e-30 and psi(lo) < 0:
        lo /= 2
    if psi(lo) < 0:
        return step(lo)
    return step(brentq(psi, lo, hi, xtol=1e-14 * hi, rtol=1e-12))
