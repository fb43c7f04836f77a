"""Extreme eigenvalues of ``M^-1 A``: for free from a PCG solve, or by Lanczos.

A PCG run is a Lanczos run in disguise (Saad, *Iterative Methods for Sparse Linear
Systems*, 2nd ed., Section 6.7.3): with its step lengths ``alpha_j`` and ratios
``beta_j = (r_{j+1} . z_{j+1}) / (r_j . z_j)``, the Lanczos tridiagonal of the
preconditioned operator, started at the (preconditioned) initial residual, is ::

    T[0, 0] = 1 / alpha_0
    T[j, j] = 1 / alpha_j + beta_{j-1} / alpha_{j-1}          (j >= 1)
    T[j, j+1] = T[j+1, j] = sqrt(beta_j) / alpha_j

:func:`dcdm.cg` keeps the coefficients (``result.stats["cg_alpha"]``, ``["cg_beta"]``),
so :func:`ritz_values` and :func:`condition_number` cost no mat-vec, as PETSc's
``KSPComputeEigenvalues`` does. The smallest Ritz value converges last: a short solve
*under*-estimates the condition number.

:func:`extreme_eigenvalues` runs Lanczos (in ``M``'s inner product) until both ends have
converged.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from ..result import SolveResult
from .lanczos import _eigh_tridiagonal, lanczos

log = logging.getLogger(__name__)

__all__ = ["Extremes", "condition_number", "extreme_eigenvalues", "pcg_tridiagonal",
           "ritz_values"]


class Extremes(tuple):
    """``(lowest, highest)`` eigenvalue of ``M^-1 A`` (``A`` on its range if singular).

    A tuple of two floats, with ``.lowest``, ``.highest``, ``.condition_number``,
    ``.steps`` (Lanczos steps taken) and ``.converged`` (whether both residual bounds met
    the tolerance; if not, ``lowest`` is an upper bound, ``highest`` a lower bound).
    """

    def __new__(cls, lowest: float, highest: float, steps: int = 0, converged: bool = True):
        self = super().__new__(cls, (float(lowest), float(highest)))
        self.steps, self.converged = int(steps), bool(converged)
        return self

    @property
    def lowest(self) -> float:
        return self[0]

    @property
    def highest(self) -> float:
        return self[1]

    @property
    def condition_number(self) -> float:
        """``highest / lowest`` (``inf`` when ``lowest <= 0``)."""
        return self.highest / self.lowest if self.lowest > 0 else math.inf

    def __repr__(self) -> str:
        flag = "" if self.converged else ", not converged"
        return (f"Extremes(lowest={self.lowest:.6g}, highest={self.highest:.6g}, "
                f"steps={self.steps}{flag})")


def pcg_tridiagonal(result: SolveResult) -> tuple[np.ndarray, np.ndarray]:
    """The Lanczos tridiagonal of ``M^-1 A`` from a CG solve: ``(diagonal, off_diagonal)``.

    Raises
    ------
    ValueError
        ``result`` is not from ``method="cg"``, or took no iteration.
    """
    if not isinstance(result, SolveResult):
        raise TypeError(f"result must be a SolveResult (from dcdm.cg or dcdm.solve), got "
                        f"{type(result).__name__}")
    alpha = result.stats.get("cg_alpha")
    beta = result.stats.get("cg_beta")
    if alpha is None or beta is None:
        raise ValueError(
            f"result has no CG coefficients: Ritz values need a solve with method='cg' "
            f"(it keeps alpha and beta), got method={result.stats.get('method')!r}; fcg and "
            "dcdm do not run one Lanczos process")
    if alpha.size == 0:
        raise ValueError("the solve took no iteration (b = 0, or x0 already met the "
                         "tolerance): there is no Ritz value to read")
    k = alpha.size
    beta = beta[: k - 1]
    diag = 1.0 / alpha
    diag[1:] += beta / alpha[:-1]
    off = np.sqrt(beta) / alpha[:-1]
    return diag, off


def ritz_values(result: SolveResult) -> np.ndarray:
    """Ritz values (ascending) of ``M^-1 A`` read off a CG solve, at no extra cost.

    One per iteration up to the first residual restart. The extremes approximate those
    of ``M^-1 A`` (the largest first); interior ones describe the part of the spectrum
    the right-hand side excites.

    Examples
    --------
    The 1-D Laplacian, Jacobi-preconditioned: ``D^-1 A = A / 2`` has eigenvalues
    ``1 - cos(k pi / (n + 1))``.

    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> import dcdm
    >>> from dcdm import spectrum
    >>> n = 64
    >>> A = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n), format="csr")
    >>> res = dcdm.cg(A, np.random.default_rng(0).standard_normal(n), M="jacobi", rtol=1e-12)
    >>> theta = spectrum.ritz_values(res)
    >>> exact = 1 - np.cos(np.array([1, n]) * np.pi / (n + 1))
    >>> bool(np.allclose([theta[0], theta[-1]], exact, rtol=1e-8))
    True
    """
    diag, off = pcg_tridiagonal(result)
    return _eigh_tridiagonal(diag, off)[0]


def condition_number(result: SolveResult) -> float:
    """``theta_max / theta_min`` of :func:`ritz_values`: an estimate of ``kappa(M^-1 A)``
    (a lower bound until the smallest Ritz value has converged)."""
    theta = ritz_values(result)
    return float(theta[-1] / theta[0]) if theta[0] > 0 else math.inf


def extreme_eigenvalues(A: Any, M: Any = None, *, seed: int | None = 0, rtol: float = 1e-8,
                        maxiter: int | None = None, reorthogonalize: str = "selective",
                        precond_options: dict | None = None) -> Extremes:
    """The lowest and highest eigenvalue of ``M^-1 A`` (of ``A`` without ``M``) by Lanczos.

    Lanczos in ``M``'s inner product from a random start in the range of ``A`` (a
    detected constant null space is projected out, so a singular ``A`` gives its
    smallest *non-zero* eigenvalue), until the residual bounds of both extreme Ritz
    values are at most ``rtol`` times their value (or ``maxiter`` steps).

    Parameters
    ----------
    A : operator, sparse matrix, ndarray or LinearOperator
        Symmetric.
    M : None, str, Preconditioner, callable or LinearOperator
        A linear SPD preconditioner (a non-linear one is refused).
    seed : int, optional
        Seed of the start vector.
    rtol : float
        Relative residual bound of both extremes (the eigenvalue error is at most
        this bound, and usually its square over the gap).
    maxiter : int, optional
        Most Lanczos steps (default ``min(n, 1000)``).
    reorthogonalize : {"selective", "full", "none"}
        See :func:`~dcdm.spectrum.lanczos`; ``"none"`` stores no basis.
    precond_options : dict, optional
        Options of a preconditioner given by name.

    Returns
    -------
    Extremes
        ``(lowest, highest)``, with ``.condition_number``, ``.steps`` and ``.converged``
        (False, with a logged warning, when ``maxiter`` ran out first).

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from dcdm import spectrum
    >>> n = 100
    >>> A = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n), format="csr")
    >>> lo, hi = spectrum.extreme_eigenvalues(A)
    >>> exact = 2 - 2 * np.cos(np.array([1, n]) * np.pi / (n + 1))
    >>> bool(np.allclose([lo, hi], exact, rtol=1e-8))
    True
    """
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    n = A.shape[0]
    if maxiter is None:
        maxiter = min(n, 1000)

    def converged(alpha: np.ndarray, beta: np.ndarray, beta_next: float) -> bool:
        vals, W = _eigh_tridiagonal(alpha, beta)
        bounds = np.abs(beta_next * W[-1, [0, -1]])
        return bool(np.all(bounds <= rtol * np.abs(vals[[0, -1]])))

    basis = lanczos(A, maxiter, M=M, seed=seed, reorthogonalize=reorthogonalize,
                    precond_options=precond_options, stop=converged)
    vals, _ = basis.ritz()
    done = basis.beta_next == 0 or converged(basis.alpha, basis.beta, basis.beta_next)
    if not done:
        log.warning("extreme_eigenvalues: not converged to rtol=%g in %d Lanczos steps "
                    "(raise maxiter)", rtol, basis.m)
    return Extremes(vals[0], vals[-1], basis.m, done)
