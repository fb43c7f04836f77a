"""Lanczos with full re-orthogonalisation: an orthonormal Krylov basis and its tridiagonal.

Lanczos (1950); with full re-orthogonalisation as in Golub & Van Loan, *Matrix
Computations*, 4th ed., Section 10.3. Started, as the DCDM paper's data generator is,
from ``q0 = A g / ||A g||`` with ``g ~ N(0, I)``, which lies in the range of ``A``::

    for j = 0, 1, ..., m - 1
        Q[j] = q_j
        w = A q_j
        alpha_j = q_j . w
        w = w - Q[:j+1]^T (Q[:j+1] w)          (twice: classical Gram-Schmidt, repeated)
        beta_j = ||w||;  q_{j+1} = w / beta_j   (stop early if beta_j ~ 0: T is exact)

``T = Q A Q^T`` is tridiagonal with diagonal ``alpha`` and off-diagonal ``beta``; its
eigenvalues are the Ritz values, which converge first at both ends of the spectrum.

Only the unknowns count: an operator with a ``support`` mask (the FLUID cells of a grid
operator) is run on the vectors that vanish off it, and the basis vectors are stored on
the support only. The basis takes ``m * n_support * 8`` bytes; :func:`lanczos` refuses
(``ValueError``) above ``max_bytes`` before it allocates anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg

from .operators import as_operator

__all__ = ["DEFAULT_MAX_BYTES", "LanczosBasis", "lanczos"]

#: the largest basis :func:`lanczos` builds unless told otherwise (8 GiB)
DEFAULT_MAX_BYTES = 8 * 2**30


@dataclass
class LanczosBasis:
    """``m`` orthonormal Lanczos vectors and the tridiagonal ``T = Q A Q^T``.

    Attributes
    ----------
    Q : ndarray, shape (m, n_support)
        The Lanczos vectors (rows), on the support only.
    alpha, beta : ndarray
        Diagonal (``m``) and off-diagonal (``m - 1``) of ``T``.
    support : ndarray of bool, shape (n,)
        Which entries of a full-length vector the columns of ``Q`` are.

    Examples
    --------
    >>> import numpy as np
    >>> basis = lanczos(np.diag([1.0, 2.0, 3.0]), 3)
    >>> basis.m, basis.Q.shape
    (3, (3, 3))
    """

    Q: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    support: np.ndarray

    @property
    def m(self) -> int:
        """The number of Lanczos vectors."""
        return self.Q.shape[0]

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and the eigenvectors ``W`` of ``T`` (columns);
        the Ritz vectors are ``W.T @ Q``."""
        return scipy.linalg.eigh_tridiagonal(self.alpha, self.beta)


def _check_memory(k: int, m: int, max_bytes: int) -> None:
    need = m * k * 8
    if need > max_bytes:
        raise ValueError(
            f"the Lanczos basis would need {need / 2**30:.1f} GiB (m * n_support * 8 with "
            f"m={m}, n_support={k}), above max_bytes = {max_bytes / 2**30:.1f} GiB; lower the "
            "Lanczos steps m or raise max_bytes"
        )


def _support_matvec(A: Any, support: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``v -> (A @ full(v))[support]`` with ``full(v)`` zero off ``support``.

    A grid operator's ``matvec_fluid`` (exact for vectors that vanish off its own
    ``support``) is used when ``support`` lies inside that support; the same product
    as ``matvec`` there, about twice as fast.
    """
    own = getattr(A, "support", None)
    fast = getattr(A, "matvec_fluid", None)
    inside = own is not None and not np.any(support & ~np.asarray(own, dtype=bool))
    mv = fast if fast is not None and inside else A.matvec
    full = np.zeros(support.size)

    def apply(v: np.ndarray) -> np.ndarray:
        full[support] = v
        return np.asarray(mv(full)).reshape(-1)[support]

    return apply


def lanczos(A: Any, m: int, *, seed: int | None = 0, support: np.ndarray | None = None,
            max_bytes: int = DEFAULT_MAX_BYTES) -> LanczosBasis:
    """``m`` Lanczos steps with full re-orthogonalisation on the symmetric operator ``A``.

    Parameters
    ----------
    A : operator, scipy sparse matrix, ndarray or LinearOperator
        Symmetric; anything :func:`dcdm.solvers.as_operator` accepts (an object with
        ``shape``, ``dtype`` and ``matvec(x, out=None)``, optionally ``support``).
    m : int
        Steps (fewer if an invariant subspace is found, at most the support's size).
    seed : int, optional
        Seed of the start vector ``A @ randn`` (restricted to ``support``).
    support : ndarray of bool, optional
        Which entries are unknowns (default: ``A.support`` if ``A`` has one, e.g. the
        FLUID cells of a grid operator; everything otherwise).
    max_bytes : int
        Refuse when the basis (``m * n_support * 8`` bytes) exceeds it.

    Returns
    -------
    LanczosBasis

    Raises
    ------
    ValueError
        ``m < 1``, a ``support`` of the wrong shape, or a basis above ``max_bytes``.

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
    """
    A = as_operator(A)
    n = A.shape[0]
    if support is None:
        support = getattr(A, "support", np.ones(n, dtype=bool))
    support = np.asarray(support, dtype=bool)
    if support.shape != (n,):
        raise ValueError(f"support must be a boolean mask of shape ({n},) (one entry per row "
                         f"of A), got shape {support.shape}")
    k = int(support.sum())
    m = int(m)
    if m < 1:
        raise ValueError(f"m must be >= 1, got {m}")
    m = min(m, k)
    _check_memory(k, m, max_bytes)
    apply = _support_matvec(A, support)
    rng = np.random.default_rng(seed)
    q = apply(rng.standard_normal(k))
    Q = np.zeros((m, k))
    alpha = np.zeros(m)
    beta = np.zeros(max(m - 1, 0))
    q /= np.linalg.norm(q)
    for j in range(m):
        Q[j] = q
        w = apply(q)
        alpha[j] = q @ w
        # full re-orthogonalisation, twice (classical Gram-Schmidt is stable when repeated)
        for _ in range(2):
            w -= Q[: j + 1].T @ (Q[: j + 1] @ w)
        if j == m - 1:
            break
        b = float(np.linalg.norm(w))
        if b <= 1e-10 * max(abs(alpha[: j + 1]).max(), 1e-300):
            m = j + 1  # invariant subspace: T is exact
            break
        beta[j] = b
        q = w / b
    return LanczosBasis(Q[:m], alpha[:m], beta[: m - 1], support)
