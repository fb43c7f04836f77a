"""Gradient-regularized Newton with Gradient-Normalized Smoothness (GNS).

Semenov, Jaggi & Doikov, "Gradient-Normalized Smoothness for Optimization with Approximate
Hessians" (arXiv 2506.13710); the adaptive search of the reference code
(``epfml/grad-norm-smooth``, ``grad_norm_smooth``)::

    x, f, g = x0, f(x0), grad f(x0);  gamma = gamma0
    for k = 0, 1, ...
        stop if ||g||_* <= gtol
        H = H(x)                                      (exact Hessian or an approximation)
        for trial = 1 .. 40
            lam = ||g||_* / gamma
            solve (H + lam B) d = -g                  (dcdm's PCG, or a factorisation)
            if f - f(x + d) >= ||grad f(x + d)||_*^2 / (8 lam):  accept; gamma = 2 gamma
            else:                                                  reject; gamma = gamma / 2

``||g||_* = sqrt(g . B^-1 g)``. With ``H`` positive semi-definite, ``||d||_B <= gamma``.
Near the minimum, where ``f`` no longer resolves the decrease (within 64 ulps), the
acceptance falls back to super-universal Newton's ``<g+, -d> >= ||g+||_*^2 / (4 lam)``.
Unlike the reference code: a rejected trial is never taken (the outer iteration ends with
status 2 after 40 rejections); negative curvature met inside CG (``p . K p <= 0``), a
failed factorisation and a non-finite trial are rejected trials; ``gamma_min`` bounds
``gamma`` from below; the dual norm uses a factorisation of ``B`` (or CG on it).

Inner solves are inexact by default: PCG to the Eisenstat-Walker-style forcing
``eta_k = min(0.5, sqrt(||g_k||_* / ||g_0||_*))`` (relative), the first trial from zero and
the others warm-started from the trial before; the acceptance test guards the
globalisation, so a poor step is only a rejected trial. The
preconditioner ``M`` (a name) is built once per outer iteration on its first trial system
and reused for the other trials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .driver import Start, outer_loop, rejected
from .result import IterationRecord, OptimizeResult, TrialRecord

__all__ = ["gns"]


def gns(fun: Callable, x0: np.ndarray, jac: Callable, *, hess: Any = None,
        hessp: Callable | None = None, B: Any = None, M: Any = None, gtol: float = 1e-8,
        f_target: float | None = None, maxiter: int = 1000, gamma0: float = 1.0,
        gamma_min: float = 1e-12, max_trials: int = 40, inner: str = "cg",
        inner_rtol: float | None = None, inner_maxiter: int | None = None,
        callback: Callable | None = None) -> OptimizeResult:
    """Minimise ``fun`` by GNS; see :func:`dcdm.optimize.minimize` for the arguments."""
    st = Start(fun, x0, jac, B)
    metric = st.metric
    gamma = float(gamma0)

    def step(x, f, g, gnorm):
        nonlocal gamma
        solve = st.trial_solver(x, g, gnorm, hess=hess, hessp=hessp, M=M, inner=inner,
                                inner_rtol=inner_rtol, inner_maxiter=inner_maxiter)
        trials, accepted, gamma_start = [], None, gamma
        for _trial in range(max_trials):
            lam = gnorm / gamma
            d, its, why = solve(lam)
            f_new = g_new = None
            if d is not None:
                f_new, g_new = st.evaluate(x + d)
            if f_new is not None:
                gnorm_new = metric.dual_norm(g_new)
                if _progress(f, f_new, g_new, d, gnorm_new, lam):
                    trials.append(TrialRecord(lam, True, its, why, f_new))
                    accepted = (d, f_new, g_new, gnorm_new)
                    gamma = 2 * gamma
                    break
            trials.append(rejected(lam, its, why, d, f_new, "too little decrease"))
            gamma = max(gamma / 2, gamma_min)
        return IterationRecord(f, gnorm, gamma_start, tuple(trials)), accepted

    return outer_loop(st, step, method="gns", maxiter=maxiter, gtol=gtol, f_target=f_target,
                      callback=callback)


def _progress(f: float, f_new: float, g_new: np.ndarray, d: np.ndarray, gnorm_new: float,
              lam: float) -> bool:
    """GNS's acceptance test ``f - f+ >= ||g+||_*^2 / (8 lam)``; when ``f`` cannot resolve
    the decrease (the two values within 64 ulps, near the minimum), the test of
    super-universal Newton that needs no ``f``, ``<g+, -d> >= ||g+||_*^2 / (4 lam)``."""
    need = gnorm_new ** 2 / (8 * lam)
    if abs(f - f_new) > 64 * np.finfo(float).eps * max(abs(f), abs(f_new)):
        return f - f_new >= need
    return -float(g_new @ d) >= 2 * need
