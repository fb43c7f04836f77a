"""Lanczos: an orthonormal Krylov basis and its tridiagonal, plain or preconditioned.

Lanczos (1950); re-orthogonalisation as in Golub & Van Loan, *Matrix Computations*,
4th ed., Sections 10.1-10.3 (full) and Parlett & Scott (1979) (selective). Started by
default, as the DCDM paper's data generator is, from ``q0 = A g / ||A g||`` with
``g ~ N(0, I)``, which lies in the range of ``A``::

    for j = 0, 1, ..., m - 1
        Q[j] = q_j
        w = A q_j
        alpha_j = q_j . w
        w = w - Q[:j+1]^T (Q[:j+1] w)          (twice: classical Gram-Schmidt, repeated)
        beta_j = ||w||;  q_{j+1} = w / beta_j   (stop early if beta_j ~ 0: T is exact)

``T = Q A Q^T`` is tridiagonal with diagonal ``alpha`` and off-diagonal ``beta``; its
eigenvalues are the Ritz values, which converge first at both ends of the spectrum.

**Preconditioned** (``M`` given, a linear SPD preconditioner ``z = P r`` with
``P ~ A^-1``): the same recurrence for the symmetric ``P^(1/2) A P^(1/2)``, whose
eigenvalues are those of ``M^-1 A = P A``, without forming ``P^(1/2)``. The basis is
kept twice, ``u_j`` (residual space) and ``z_j = P u_j``, with ``u_i . z_j = delta_ij``
(orthonormal in the ``P`` inner product); each step costs one ``A`` and one ``P``::

    w = A z_j;  alpha_j = z_j . w;  w -= U^T (Z w)  (re-orthogonalised in the P product)
    zw = P w;   beta_j = sqrt(w . zw);  u_{j+1} = w / beta_j;  z_{j+1} = zw / beta_j

The Ritz vectors of ``P A`` are ``Z^T W`` (``W`` the eigenvectors of ``T``). This is the
recurrence PCG factorises (Saad, *Iterative Methods*, 2nd ed., Section 6.7.3).

``reorthogonalize``: ``"full"`` (every step against every vector), ``"selective"`` (only
against converged Ritz vectors, Parlett-Scott) or ``"none"`` (the three-term recurrence
alone: three vectors stored, no Ritz vectors; converged Ritz values reappear as "ghost"
copies, harmless for quadrature and extremes).

``A`` is checked for symmetry with two mat-vecs (skipped when it declares
``is_symmetric = True``). Only the unknowns count: an operator with a ``support`` mask
(the FLUID cells of a grid operator) is run on the vectors that vanish off it, and the
basis vectors are stored on the support only. A detected constant null space
(``A.nullspace``) is projected out of every residual-space vector, so the basis spans the
range of ``A``. The basis takes ``m * n_support * 8`` bytes (twice that with ``M``);
:func:`lanczos` refuses (``ValueError``) above ``max_bytes`` before it allocates anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from dcdm import kernels

from .restricted import Restricted, prepare, start_vector

__all__ = ["CHECK_EVERY", "DEFAULT_MAX_BYTES", "REORTHOGONALIZE", "LanczosBasis", "lanczos"]

#: the largest basis :func:`lanczos` builds unless told otherwise (8 GiB)
DEFAULT_MAX_BYTES = 8 * 2**30
#: how often (in steps) :func:`lanczos` asks its ``stop`` callback
CHECK_EVERY = 5
#: the re-orthogonalisation strategies
REORTHOGONALIZE = ("full", "selective", "none")


@dataclass
class LanczosBasis:
    """``m`` Lanczos vectors and the tridiagonal ``T`` (``Q A Q^T``; ``Z``-side with ``M``).

    Attributes
    ----------
    Q : ndarray, shape (m, n_support), or None
        The Lanczos vectors (rows) on the support only; with a preconditioner, the
        residual-space vectors ``u_j``. ``None`` with ``reorthogonalize="none"``.
    alpha, beta : ndarray
        Diagonal (``m``) and off-diagonal (``m - 1``) of ``T``.
    support : ndarray of bool, shape (n,)
        Which entries of a full-length vector the columns of ``Q`` are.
    Z : ndarray, shape (m, n_support), or None
        With a preconditioner ``P``: ``Z[j] = P Q[j]``; without, ``None`` (``Z`` is ``Q``).
    beta_next : float
        The norm of the next (not taken) Lanczos vector: the Ritz residual bounds are
        ``|beta_next * W[m-1, i]|``. Zero when an invariant subspace was found.
    start_norm : float
        ``||v0||`` (``P^-1``-norm ``sqrt(v0 . P v0)`` with a preconditioner) of the start
        vector before normalisation: the spectral measure of ``v0`` has total mass
        ``start_norm**2``.

    Examples
    --------
    >>> import numpy as np
    >>> basis = lanczos(np.diag([1.0, 2.0, 3.0]), 3)
    >>> basis.m, basis.Q.shape
    (3, (3, 3))
    """

    Q: np.ndarray | None
    alpha: np.ndarray
    beta: np.ndarray
    support: np.ndarray
    Z: np.ndarray | None = None
    beta_next: float = 0.0
    start_norm: float = 1.0

    @property
    def m(self) -> int:
        """The number of Lanczos vectors."""
        return self.alpha.shape[0]

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and the eigenvectors ``W`` of ``T`` (columns);
        the Ritz vectors are ``W.T @ Q`` (``W.T @ Z`` with a preconditioner)."""
        return _eigh_tridiagonal(self.alpha, self.beta)

    def quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """Gauss quadrature of the start vector's spectral measure: nodes (the Ritz values)
        and weights (squared first components of ``W``, summing to 1)."""
        vals, W = self.ritz()
        return vals, W[0] ** 2

    def residual_bounds(self) -> np.ndarray:
        """``|beta_next * W[m-1, i]|`` per Ritz value (ascending order): each Ritz value
        is within this distance of an eigenvalue (of ``P A`` in its ``P^-1`` norm)."""
        _, W = self.ritz()
        return np.abs(self.beta_next * W[-1])

    def ritz_vectors(self, index=None) -> np.ndarray:
        """Full-length Ritz vectors (columns, unit 2-norm), of ``A`` or of ``P A``.

        ``index`` selects Ritz values (ascending order; default all).
        """
        if self.Q is None:
            raise ValueError("no Ritz vectors: the basis was built with "
                             "reorthogonalize='none', which stores no Lanczos vectors")
        _, W = self.ritz()
        W = W if index is None else W[:, index]
        basis = self.Q if self.Z is None else self.Z
        inner = (basis.T @ W).reshape(basis.shape[1], -1)
        out = np.zeros((self.support.size, inner.shape[1]))
        out[self.support] = inner / np.linalg.norm(inner, axis=0)
        return out


def _eigh_tridiagonal(alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if alpha.size == 1:
        return alpha.copy(), np.ones((1, 1))
    return scipy.linalg.eigh_tridiagonal(alpha, beta)


def _check_memory(k: int, m: int, copies: int, max_bytes: int) -> None:
    need = copies * m * k * 8
    if need > max_bytes:
        twice = " * 2 (with M: Q and Z)" if copies == 2 else ""
        raise ValueError(
            f"the Lanczos basis would need {need / 2**30:.1f} GiB (m * n_support * 8{twice} "
            f"with m={m}, n_support={k}), above max_bytes = {max_bytes / 2**30:.1f} GiB; "
            "lower the Lanczos steps m, use reorthogonalize='none', or raise max_bytes"
        )


def lanczos(A: Any, m: int, *, M: Any = None, v0: Any = None, seed: int | None = 0,
            support: np.ndarray | None = None, reorthogonalize: str = "full",
            max_bytes: int = DEFAULT_MAX_BYTES, precond_options: dict | None = None,
            stop: Callable[[np.ndarray, np.ndarray, float], bool] | None = None,
            ) -> LanczosBasis:
    """``m`` Lanczos steps on the symmetric operator ``A``, or on ``M^-1 A``.

    Parameters
    ----------
    A : operator, scipy sparse matrix, ndarray or LinearOperator
        Symmetric; anything :func:`dcdm.solvers.as_operator` accepts (an object with
        ``shape``, ``dtype`` and ``matvec(x, out=None)``, optionally ``support``).
    m : int
        Steps (fewer if an invariant subspace is found, at most the support's size).
    M : None, str, Preconditioner, callable or LinearOperator
        A linear SPD preconditioner (as :func:`dcdm.cg` takes): Lanczos in its inner
        product, for the spectrum of ``M^-1 A``. A non-linear one is refused.
    v0 : array, optional
        Start vector (full length, or one entry per unknown of the support; in the
        residual space with ``M``). Default ``A g`` with ``g ~ N(0, I)`` on the support.
    seed : int, optional
        Seed of the default start vector.
    support : ndarray of bool, optional
        Which entries are unknowns (default: ``A.support`` if ``A`` has one, e.g. the
        FLUID cells of a grid operator; everything otherwise).
    reorthogonalize : {"full", "selective", "none"}
        See the module docstring.
    max_bytes : int
        Refuse when the basis (``m * n_support * 8`` bytes, twice with ``M``) exceeds it.
    precond_options : dict, optional
        Constructor options for a preconditioner given by name.
    stop : callable, optional
        ``stop(alpha, beta, beta_next) -> bool``, asked every :data:`CHECK_EVERY` steps
        with the tridiagonal so far and the norm of the next vector: True ends the run
        (e.g. once the wanted Ritz values have converged). The basis grows as it goes,
        so ``m`` is then a limit, not an allocation.

    Returns
    -------
    LanczosBasis

    Raises
    ------
    ValueError
        ``m < 1``, a ``support`` or ``v0`` of the wrong shape, a zero ``v0``, a basis
        above ``max_bytes``, an unknown ``reorthogonalize``, a non-linear ``M``.

    Examples
    --------
    The 1-D Laplacian ``tridiag(-1, 2, -1)`` of size 50, whose eigenvalues are
    ``2 - 2 cos(k pi / 51)``: after 50 steps the Ritz values are all of them.

    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from dcdm.solvers import as_operator
    >>> n = 50
    >>> A = as_operator(sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n)))
    >>> vals, W = lanczos(A, n).ritz()
    >>> exact = 2 - 2 * np.cos(np.arange(1, n + 1) * np.pi / (n + 1))
    >>> bool(np.allclose(vals, exact, atol=1e-10))
    True

    The basis is orthonormal to rounding (full re-orthogonalisation):

    >>> basis = lanczos(A, 20, seed=1)
    >>> bool(np.allclose(basis.Q @ basis.Q.T, np.eye(20), atol=1e-12))
    True

    With Jacobi, the Ritz values are those of ``D^-1 A`` (here ``A / 2``):

    >>> vals, _ = lanczos(A, n, M="jacobi").ritz()
    >>> bool(np.allclose(vals, exact / 2, atol=1e-10))
    True
    """
    if reorthogonalize not in REORTHOGONALIZE:
        raise ValueError(f"reorthogonalize must be one of {REORTHOGONALIZE}, "
                         f"got {reorthogonalize!r}")
    A, P, support = prepare(A, M, support, precond_options)
    return _run(Restricted(A, P, support), m, v0=v0, seed=seed, how=reorthogonalize,
                max_bytes=max_bytes, stop=stop)


def _run(ops: Restricted, m: int, *, v0: Any = None, seed: int | None = 0,
         how: str = "full", max_bytes: int = DEFAULT_MAX_BYTES,
         stop: Callable | None = None) -> LanczosBasis:
    """Lanczos on operators already checked and built (:func:`prepare`): the entry of the
    callers that run many probes on one operator (SLQ, predictions)."""
    k = int(ops.support.sum())
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be an integer >= 1, got {m!r}")
    m = min(int(m), k)
    if how != "none":
        _check_memory(k, m, 1 if ops._P is None else 2, max_bytes)
    u = ops.project(start_vector(ops, v0, seed, k))
    z = ops.precondition(u)
    norm2 = float(u @ z)
    if not norm2 > 0 or not math.isfinite(norm2):
        what = "v0" if v0 is not None else "the start vector A g"
        raise ValueError(f"{what} is zero (or not positive in the preconditioner's inner "
                         "product) on the support, after removing A's null space")
    start_norm = math.sqrt(norm2)
    u, z = u / start_norm, z / start_norm
    return _iterate(ops, u, z, m, k, how, start_norm, stop)


# the recurrence's dots and axpys by the package's Numba kernels: BLAS (OpenBLAS's own pool)
# between Numba-parallel products spins against Numba's pool (measured: SLQ 2.8x slower)
_dot = kernels.dot


def _axpy(x: np.ndarray, y: np.ndarray, a: float) -> None:
    kernels.axpy(a, x, y)  # y += a x, in place


def _grow(V: np.ndarray | None, j: int, m: int) -> np.ndarray | None:
    """``V`` with room for row ``j`` (capacity doubled, at most ``m`` rows)."""
    if V is None or j < V.shape[0]:
        return V
    bigger = np.zeros((min(m, 2 * V.shape[0]), V.shape[1]))
    bigger[:j] = V[:j]
    return bigger


def _iterate(ops: Restricted, u: np.ndarray, z: np.ndarray, m: int, k: int, how: str,
             start_norm: float, stop: Callable | None) -> LanczosBasis:
    plain = ops._P is None
    keep = how != "none"
    rows = m if stop is None else min(m, 64)
    Q = np.zeros((rows, k)) if keep else None
    Z = None if plain or not keep else np.zeros((rows, k))
    alpha, beta = np.zeros(m), np.zeros(max(m - 1, 0))
    u_prev = None
    beta_next = 0.0
    for j in range(m):
        if keep:
            Q, Z = _grow(Q, j, m), _grow(Z, j, m)
            Q[j] = u
            if Z is not None:
                Z[j] = z
        w = ops.matvec(z)
        alpha[j] = _dot(z, w)
        if how == "full":
            # twice: classical Gram-Schmidt is stable when repeated (P product: U^T (Z w))
            Zj = Q[: j + 1] if plain else Z[: j + 1]
            for _ in range(2):
                w -= Q[: j + 1].T @ (Zj @ w)
        else:
            _axpy(u, w, a=-alpha[j])  # in place: w -= alpha u (and beta u_prev)
            if j:
                _axpy(u_prev, w, a=-beta[j - 1])
            if how == "selective":
                _selective(w, Q, Z, alpha[: j + 1], beta[:j], j)
        ops.project(w)
        zw = ops.precondition(w)
        b2 = _dot(w, zw)
        b = math.sqrt(b2) if b2 > 0 else 0.0
        if b <= 1e-10 * max(abs(alpha[: j + 1]).max(), 1e-300) or not math.isfinite(b):
            m = j + 1  # invariant subspace: T is exact
            break
        if j == m - 1 or (stop is not None and (j + 1) % CHECK_EVERY == 0
                           and stop(alpha[: j + 1], beta[:j], b)):
            beta_next, m = b, j + 1
            break
        beta[j] = b
        u_prev = u
        u = w / b
        z = u if plain else zw / b
    Q = None if Q is None else Q[:m]
    Z = None if Z is None else Z[:m]
    return LanczosBasis(Q, alpha[:m], beta[: m - 1], ops.support, Z, beta_next, start_norm)


def _selective(w: np.ndarray, Q: np.ndarray, Z: np.ndarray | None, alpha: np.ndarray,
               beta: np.ndarray, j: int) -> None:
    """Parlett-Scott: remove from ``w`` its components along the Ritz vectors that have
    converged (bound ``||w|| |W[j, i]| <= sqrt(eps) ||T||``), in place."""
    if j < 1:
        return
    vals, W = _eigh_tridiagonal(alpha, beta)
    wn = float(np.linalg.norm(w))
    tnorm = max(abs(vals).max(), 1e-300)
    done = np.flatnonzero(wn * np.abs(W[-1]) <= math.sqrt(np.finfo(float).eps) * tnorm)
    if done.size == 0:
        return
    Y = W[:, done].T @ Q[: j + 1]  # residual-space Ritz vectors, P-orthonormal
    Yz = Y if Z is None else W[:, done].T @ Z[: j + 1]
    for _ in range(2):
        w -= Y.T @ (Yz @ w)
