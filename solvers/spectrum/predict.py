"""CG iterations predicted from the spectral measure of ``M^-1 A``.

CG's first ``k`` iterates are fixed by the spectral measure of ``(M^-1 A, r_0)``, and ``k``
Lanczos steps from ``r_0`` capture exactly the Gauss quadrature of that measure that CG
needs: CG on the quadrature nodes and weights *is* CG on the operator for ``k`` steps
(Meurant & Strakos 2006). From the Lanczos tridiagonal ``T_j`` the CG residual after
``j`` steps, in the preconditioner's norm ``||r||_P = sqrt(r . M^-1 r)``, is ::

    ||r_j||_P / ||r_0||_P = beta_j |e_j^T T_j^-1 e_1|

:func:`predict_iterations` runs Lanczos (no re-orthogonalisation: three vectors of
memory) from ``b`` or from random probes until that curve crosses ``rtol``; if it does
not within ``steps`` Lanczos steps, the rest is extrapolated at the curve's rate over its
last quarter (CG's convergence is superlinear, so this errs on the high side). The
solver stops on the 2-norm ``||r||_2``, not ``||r||_P``: the two differ by at most
``sqrt(kappa(M))`` and in practice by an iteration or two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from .lanczos import _run
from .restricted import Restricted, prepare

__all__ = ["IterationPrediction", "predict_iterations"]


@dataclass(frozen=True)
class IterationPrediction:
    """What :func:`predict_iterations` found.

    Attributes
    ----------
    iterations : int or None
        Predicted CG iterations to ``rtol`` (the median over probes); None when the
        curve stopped decreasing (no prediction).
    residuals : ndarray
        The predicted relative residual curve (``P``-norm) of the median probe, from
        iteration 0, over the Lanczos steps taken (exact in exact arithmetic).
    per_probe : tuple of int or None
        Each probe's prediction.
    steps : int
        Lanczos steps taken per probe (at most ``steps`` asked for).
    extrapolated : bool
        True when the median prediction lies beyond the Lanczos steps taken.
    extremes : tuple of float
        The extreme Ritz values over all probes (of ``M^-1 A``).
    """

    iterations: int | None
    residuals: np.ndarray
    per_probe: tuple
    steps: int
    extrapolated: bool
    extremes: tuple[float, float]


def _residual_at(alpha: np.ndarray, beta: np.ndarray, beta_next: float, j: int) -> float:
    """``||r_j||_P / ||r_0||_P``, ``1 <= j <= m``: ``beta_j |e_j^T T_j^-1 e_1|``."""
    ab = np.zeros((3, j))
    ab[0, 1:] = beta[: j - 1]
    ab[1] = alpha[:j]
    ab[2, :-1] = beta[: j - 1]
    e1 = np.zeros(j)
    e1[0] = 1.0
    y = scipy.linalg.solve_banded((1, 1), ab, e1)
    return abs((beta[j - 1] if j < alpha.size else beta_next) * y[-1])


def cg_residuals(alpha: np.ndarray, beta: np.ndarray, beta_next: float) -> np.ndarray:
    """``||r_j||_P / ||r_0||_P`` for ``j = 0..m`` from a Lanczos tridiagonal of size ``m``."""
    m = alpha.size
    return np.array([1.0] + [_residual_at(alpha, beta, beta_next, j) for j in range(1, m + 1)])


def _model_measure(basis, spread: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A measure for CG beyond the Lanczos steps: converged Ritz values stay atoms (they
    are eigenvalues, which CG removes one by one); the weight of each unconverged one is
    spread uniformly over the interval its residual bound allows (an eigenvalue lies within
    ``bound`` of it), clipped to the midpoints to its neighbours: there the spectrum is a
    continuum the quadrature has only sampled."""
    theta, W = basis.ritz()
    weights = W[0] ** 2
    bounds = np.abs(basis.beta_next * W[-1])
    if theta.size < 2:
        return theta, weights
    mids = np.concatenate([[theta[0]], 0.5 * (theta[1:] + theta[:-1]), [theta[-1]]])
    nodes, mass = [], []
    for i, (t, w) in enumerate(zip(theta, weights, strict=True)):
        lo, hi = max(mids[i], t - bounds[i]), min(mids[i + 1], t + bounds[i])
        if hi - lo <= 1e-6 * abs(t):
            nodes.append([t])
            mass.append([w])
        else:
            nodes.append(np.linspace(lo, hi, spread))
            mass.append(np.full(spread, w / spread))
    return np.concatenate(nodes), np.concatenate(mass)


def _cg_on_measure(nodes: np.ndarray, weights: np.ndarray, maxiter: int) -> np.ndarray:
    """Relative residual norms of CG on ``diag(nodes)`` with right-hand side ``sqrt(weights)``."""
    r = np.sqrt(weights / weights.sum())
    x = np.zeros_like(r)
    p = r.copy()
    rr = r @ r
    out = [1.0]
    for _ in range(maxiter):
        Ap = nodes * p
        a = rr / (p @ Ap)
        x += a * p
        r -= a * Ap
        rr_new = r @ r
        out.append(math.sqrt(rr_new))
        if rr_new <= 1e-32 or not np.isfinite(rr_new):
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return np.asarray(out)


def _predict(curve: np.ndarray, basis, rtol: float, maxiter: int) -> int | None:
    hit = np.flatnonzero(curve <= rtol)
    if hit.size:
        return int(hit[0])
    m = curve.size - 1
    if curve[-1] <= 0 or not np.isfinite(curve[-1]):
        return None
    # splice: the exact curve up to m, then the model measure's reduction beyond
    model = _cg_on_measure(*_model_measure(basis), maxiter)
    if model.size <= m + 1:
        return None
    target = model[m] * rtol / curve[-1]
    beyond = np.flatnonzero(model[m:] <= target)
    return m + int(beyond[0]) if beyond.size else None


def predict_iterations(A: Any, b: Any = None, M: Any = None, *, rtol: float = 1e-6,
                       steps: int = 100, probes: int = 4, seed: int | None = 0,
                       precond_options: dict | None = None) -> IterationPrediction:
    """Predict the PCG iterations to ``rtol`` (from ``x0 = 0``) from a few Lanczos steps.

    Parameters
    ----------
    A : operator, sparse matrix, ndarray or LinearOperator
        Symmetric positive (semi-)definite.
    b : array, optional
        The right-hand side: its own measure (one probe, exact for the first ``steps``
        iterations). Default: ``probes`` random Rademacher right-hand sides.
    M : None, str, Preconditioner, callable or LinearOperator
        A linear SPD preconditioner (a non-linear one is refused).
    rtol : float
        The relative tolerance the solve would use.
    steps : int
        The most Lanczos steps per probe (fewer when the curve reaches ``rtol`` sooner).
    probes : int
        Random right-hand sides when ``b`` is not given.
    seed : int, optional
        Seed of the probes.
    precond_options : dict, optional
        Options of a preconditioner given by name.

    Returns
    -------
    IterationPrediction

    Examples
    --------
    >>> import numpy as np
    >>> import dcdm
    >>> from dcdm import spectrum
    >>> from dcdm.problems import gallery
    >>> A, b = gallery.poisson((32, 32))
    >>> pred = spectrum.predict_iterations(A, b, M="ic0", rtol=1e-6)
    >>> actual = dcdm.cg(A, b, M="ic0", rtol=1e-6).iterations
    >>> bool(abs(pred.iterations - actual) <= 0.5 * actual)
    True
    """
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    for name, value in (("steps", steps), ("probes", probes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    A, P, support = prepare(A, M, None, precond_options)
    ops = Restricted(A, P, support)
    k = int(support.sum())
    if b is not None:
        starts = [np.asarray(b, dtype=np.float64).reshape(-1)]
        if starts[0].size != A.shape[0]:
            raise ValueError(f"b must have {A.shape[0]} entries (one per row of A), got "
                             f"{starts[0].size}")
    else:
        rng = np.random.default_rng(seed)
        starts = [rng.integers(0, 2, size=k).astype(np.float64) * 2 - 1 for _ in range(probes)]

    def reached(alpha, beta, beta_next):  # only the newest point of the curve
        return _residual_at(alpha, beta, beta_next, alpha.size) <= rtol

    curves, preds, lo, hi = [], [], math.inf, -math.inf
    for v in starts:
        basis = _run(ops, min(steps, k), v0=v, how="none", stop=reached)
        curve = cg_residuals(basis.alpha, basis.beta, basis.beta_next)
        curves.append(curve)
        preds.append(_predict(curve, basis, rtol, maxiter=100 * k))
        theta = basis.ritz()[0]
        lo, hi = min(lo, float(theta[0])), max(hi, float(theta[-1]))
    known = [p for p in preds if p is not None]
    order = np.argsort([p if p is not None else math.inf for p in preds])
    mid = int(order[(len(order) - 1) // 2])
    iterations = math.ceil(np.median(known)) if len(known) == len(preds) else preds[mid]
    taken = max(c.size - 1 for c in curves)
    return IterationPrediction(
        iterations=iterations, residuals=curves[mid], per_probe=tuple(preds), steps=taken,
        extrapolated=iterations is None or iterations > curves[mid].size - 1,
        extremes=(lo, hi))
