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

from .driver import Start, outer_loop, rejected
from .result import IterationRecord, OptimizeResult, TrialRecord
from .systems import hessian_at, solve_step, system

__all__ = ["cubic_newton", "gradient_method", "super_newton"]


def gradient_method(fun: Callable, x0: Any, jac: Callable, *, B: Any = None,
                    gtol: float = 1e-8, f_target: float | None = None, maxiter: int = 1000,
                    L0: float = 1.0, max_trials: int = 30, callback: Callable | None = None,
                    **_: Any) -> OptimizeResult:
    """The gradient method with backtracking in the metric ``B``."""
    st = Start(fun, x0, jac, B)
    metric = st.metric
    L = float(L0)

    def step(x, f, g, gnorm):
        nonlocal L
        Bg, trials, accepted, L_start = metric.inverse(g), [], None, L
        for _t in range(max_trials):
            d = -Bg / L
            f_new, g_new = st.evaluate(x + d)
            if f_new is not None and f_new <= f + g @ d + 0.5 * L * metric.norm(d) ** 2:
                trials.append(TrialRecord(1 / L, True, 0, "explicit", f_new))
                accepted = (d, f_new, g_new, None)
                L = max(L / 2, 1e-5)
                break
            trials.append(rejected(1 / L, 0, "explicit", d, f_new, "no decrease"))
            L *= 2
        return IterationRecord(f, gnorm, L_start, tuple(trials)), accepted

    return outer_loop(st, step, method="gradient", maxiter=maxiter, gtol=gtol,
                      f_target=f_target, callback=callback)


def super_newton(fun: Callable, x0: Any, jac: Callable, *, hess: Any = None,
                 hessp: Callable | None = None, B: Any = None, M: Any = None,
                 gtol: float = 1e-8, f_target: float | None = None, maxiter: int = 1000,
                 H0: float = 1.0, alpha: float = 1.0, H_min: float = 1e-5,
                 max_trials: int = 40, inner: str = "cg", inner_rtol: float | None = None,
                 inner_maxiter: int | None = None, callback: Callable | None = None,
                 **_: Any) -> OptimizeResult:
    """Super-Universal Newton: ``lam = H_k ||g||_*^alpha``, ``H_k`` adapted by 4x steps."""
    st = Start(fun, x0, jac, B)
    metric = st.metric
    Hk = float(H0)

    def step(x, f, g, gnorm):
        nonlocal Hk
        solve = st.trial_solver(x, g, gnorm, hess=hess, hessp=hessp, M=M, inner=inner,
                                inner_rtol=inner_rtol, inner_maxiter=inner_maxiter)
        trials, accepted, H_start = [], None, Hk
        for _t in range(max_trials):
            lam = Hk * gnorm ** alpha
            d, its, reason = solve(lam)
            f_new = g_new = None
            if d is not None:
                f_new, g_new = st.evaluate(x + d)
            if f_new is not None:
                gnorm_new = metric.dual_norm(g_new)
                if -(g_new @ d) >= gnorm_new ** 2 / (4 * lam):
                    trials.append(TrialRecord(lam, True, its, reason, f_new))
                    accepted = (d, f_new, g_new, gnorm_new)
                    Hk = max(Hk / 4, H_min)
                    break
            trials.append(rejected(lam, its, reason, d, f_new, "too little progress"))
            Hk *= 4
        return IterationRecord(f, gnorm, H_start, tuple(trials)), accepted

    return outer_loop(st, step, method="super-newton", maxiter=maxiter, gtol=gtol,
                      f_target=f_target, callback=callback)


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

    st = Start(fun, x0, jac, B)
    metric = st.metric
    Hk = float(H0)

    def step(x, f, g, gnorm):
        nonlocal Hk
        H = hessian_at(x, hess, hessp)
        trials, accepted, H_start = [], None, Hk
        for _t in range(max_trials):
            d = _cubic_step(H, g, Hk, metric, scipy.optimize.brentq)
            f_new = g_new = None
            if d is not None:
                f_new, g_new = st.evaluate(x + d)
            if f_new is not None and f_new <= f + (g @ d + 0.5 * d @ (H @ d)
                                                   + Hk / 6 * metric.norm(d) ** 3):
                trials.append(TrialRecord(Hk, True, 0, "direct", f_new))
                accepted = (d, f_new, g_new, None)
                Hk = max(Hk / 2, H_min)
                break
            trials.append(rejected(Hk, 0, "direct", d, f_new, "above the model"))
            Hk *= 2
        return IterationRecord(f, gnorm, H_start, tuple(trials)), accepted

    return outer_loop(st, step, method="cubic-newton", maxiter=maxiter, gtol=gtol,
                      f_target=f_target, callback=callback)


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
