"""Incomplete Cholesky preconditioners with zero fill: IC(0) and modified IC(0).

IC(0) (Meijerink & van der Vorst, *Math. Comp.* 31, 1977) runs Cholesky elimination on
``A`` but keeps only the entries on ``A``'s own sparsity pattern, dropping all fill.
MIC(0) (Gustafsson, *BIT* 18, 1978; in the form of Bridson, *Fluid Simulation for
Computer Graphics*, 2008, ch. 4) adds the dropped fill of each row to its pivot, so
that ``M`` and ``A`` have the same row sums (``M 1 = A 1``) for ``tau = 1``; a
modification parameter ``tau < 1`` and a safety parameter ``sigma`` keep the pivots away
from zero.

The factor is kept as ``M = (D + L) D^{-1} (D + L)^T`` with ``L`` strictly lower on the
pattern of ``A`` and ``D`` the pivots. Right-looking elimination in the natural
(lexicographic) ordering: when column ``k`` is final, for every pair ``i < j`` of rows in
it the update ``f = L_ik L_jk / d_k`` is subtracted from ``L_ji`` if ``(j, i)`` is in the
pattern, and otherwise dropped (IC) or, for MIC, accumulated as ``comp_i += f`` and
``comp_j += f``. The pivot of row ``k`` is ``e = d_k`` (IC), or ``e = d_k - tau comp_k``
(MIC) unless that falls below ``sigma d_k``, in which case the unmodified pivot ``d_k`` is
used. (For the 5/7-point stencils this is Bridson's algorithm except that his safety test
compares with ``a_kk`` instead of the unmodified pivot ``d_k``.)

Breakdown: a pivot ``e <= 64 eps |a_kk|`` (possible for matrices that are not M-matrices,
never for the grid Laplacians) is replaced by ``|a_kk|`` (or 1 if ``a_kk == 0``); ``M``
stays SPD and ``stats["pivot_fixes"]`` counts the replacements.

Work: the factorisation is ``O(sum_k c_k^2 log c_k)`` for ``c_k`` entries in column ``k``
of ``L`` (linear in ``nnz`` for bounded row lengths); each application is one forward
and one backward sweep over ``nnz(L) + n`` entries, in Numba, allocating nothing beyond
``out``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

from dcdm.kernels.optional import require

from ..operators import as_operator
from .base import Preconditioner

__all__ = ["IC0", "MIC0"]


def _kernels(name: str):
    return require(f"{__package__}._ichol_numba", f"M={name!r} (its factorisation and "
                   "triangular solves)")


def _check_param(name: str, value, low: float, high: float, low_open: bool,
                 high_open: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    lo_ok = v > low if low_open else v >= low
    hi_ok = v < high if high_open else v <= high
    if not (math.isfinite(v) and lo_ok and hi_ok):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {value!r}")
    return v


class IC0(Preconditioner):
    """Incomplete Cholesky factorisation with zero fill, ``M = (D + L) D^{-1} (D + L)^T``.

    Linear and SPD (usable by :func:`dcdm.solvers.cg`). Built from the assembled matrix
    ``A.to_csr()`` (only its lower triangle and diagonal are read); needs numba.

    Attributes
    ----------
    pivot_fixes : int
        Pivots replaced by ``|a_kk|`` after a breakdown (0 for any M-matrix).
    setup_time : float
        Seconds the factorisation took.

    See Also
    --------
    MIC0 : the modified factorisation, about twice as fast to converge on Poisson problems.

    Notes
    -----
    Rows with only a diagonal entry (the decoupled non-FLUID cells of a grid operator)
    are left untouched, so ``apply`` keeps vectors zero there (``preserves_support``).
    The ordering is the natural one; on a grid, the lexicographic cell order.

    Examples
    --------
    >>> import numpy as np
    >>> import dcdm
    >>> from dcdm.problems import gallery
    >>> A, b = gallery.poisson((16, 16, 16))
    >>> res = dcdm.solve(A, b, M="ic0", rtol=1e-8)
    >>> res.converged, res.stats["pivot_fixes"]
    (True, 0)
    >>> M = dcdm.solvers.precond.IC0().build(A)
    >>> L = M.factor()
    >>> bool(np.allclose(L @ (L.T @ M.apply(b)), b))
    True
    """

    name = "ic0"
    cpu_only = True
    is_linear = True
    is_spd = True
    preserves_support = True
    _modified = False

    def __init__(self) -> None:
        super().__init__()
        self._tau = 0.0
        self._sigma = 0.0
        self.pivot_fixes = 0
        self._fallbacks = 0

    def _build(self, A) -> None:
        kern = _kernels(self.name)
        A = as_operator(A)
        if not hasattr(A, "to_csr"):
            raise TypeError(
                f"M={self.name!r} factorises the assembled matrix, but {type(A).__name__} has "
                "no to_csr(); pass a scipy sparse matrix, a dense array or a grid operator, "
                "or choose a preconditioner that needs no matrix"
            )
        C = sp.csr_array(A.to_csr())
        n = C.shape[0]
        dtype = np.dtype(A.dtype) if np.dtype(A.dtype) in (np.float32, np.float64) else (
            np.dtype(np.float64))
        # strictly lower triangle by columns (= the CSR of the upper triangle); tril
        # returns a new matrix with duplicates summed, so A is never touched
        low = sp.tril(C, k=-1, format="csc")
        low.sum_duplicates()
        low.sort_indices()
        colptr = np.ascontiguousarray(low.indptr)
        rowidx = np.ascontiguousarray(low.indices)
        val = np.array(low.data, dtype=np.float64)
        diag = np.array(C.diagonal(), dtype=np.float64)
        invd = np.empty(n, dtype=np.float64)
        tiny = 64.0 * float(np.finfo(np.float64).eps)
        fixes, fallbacks = kern.factorize(colptr, rowidx, val, diag, self._modified,
                                          self._tau, self._sigma, tiny, invd)
        self.pivot_fixes = int(fixes)
        self._fallbacks = int(fallbacks)
        self._colptr, self._rowidx = colptr, rowidx
        self._val = val.astype(dtype, copy=False)
        self._invd = invd.astype(dtype, copy=False)
        self._n = n
        self._solve = kern.solve_ldlt

    def apply(self, r: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Return ``M^{-1} r`` by a forward and a backward triangular sweep.

        Parameters
        ----------
        r : ndarray
            ``n`` entries (1-D or any shape of that size). Not modified (unless ``out`` is
            ``r``, which is allowed).
        out : ndarray, optional
            Where to write the result; same shape as ``r``.

        Returns
        -------
        ndarray
            ``out`` if given, else a new array of ``r``'s shape and float dtype.
        """
        if not self.built:
            raise RuntimeError(f"M={self.name!r} must be built (build(A)) before apply")
        self._require_numpy(r)
        if r.size != self._n:
            raise ValueError(f"r has {r.size} entries but the factor is {self._n} x {self._n}")
        if out is None:
            dtype = r.dtype if r.dtype in (np.float32, np.float64) else np.dtype(np.float64)
            out = np.array(r, dtype=dtype, order="C", copy=True)
        else:
            if not isinstance(out, np.ndarray) or out.shape != r.shape:
                raise ValueError(
                    f"out must be a NumPy array of r's shape {r.shape}, got "
                    f"{getattr(out, 'shape', type(out).__name__)}"
                )
            if out is not r:
                np.copyto(out, r)
        if out.flags.c_contiguous:
            self._solve(self._colptr, self._rowidx, self._val, self._invd, out.reshape(-1))
        else:  # a strided view: solve in a contiguous copy
            tmp = np.ascontiguousarray(out).reshape(-1)
            self._solve(self._colptr, self._rowidx, self._val, self._invd, tmp)
            out[...] = tmp.reshape(out.shape)
        return out

    def factor(self) -> sp.csr_array:
        """The triangular factor ``F = (D + L) D^{-1/2}``, lower with positive diagonal.

        ``M = F F^T`` is the preconditioner's approximation of ``A`` (``apply`` computes
        ``M^{-1} r``); for IC(0), ``F`` is what the textbook ``ichol`` returns.

        Returns
        -------
        scipy.sparse.csr_array
        """
        if not self.built:
            raise RuntimeError(f"M={self.name!r} must be built (build(A)) before factor()")
        n = self._n
        s = np.sqrt(self._invd.astype(np.float64))
        cols = np.repeat(np.arange(n), np.diff(self._colptr))
        rows = np.concatenate([self._rowidx.astype(np.int64), np.arange(n)])
        cols = np.concatenate([cols, np.arange(n)])
        vals = np.concatenate([self._val.astype(np.float64) * s[cols[: self._val.size]], 1 / s])
        F = sp.coo_array((vals, (rows, cols)), shape=(n, n)).tocsr()
        F.sort_indices()
        return F

    @property
    def stats(self) -> dict[str, Any]:
        """Setup time, factor size and pivot fixes (merged into ``SolveResult.stats``)."""
        s = super().stats
        if self.built:
            s["factor_nnz"] = int(self._val.size + self._n)
            s["factor_bytes"] = int(self._colptr.nbytes + self._rowidx.nbytes
                                    + self._val.nbytes + self._invd.nbytes)
            s["pivot_fixes"] = self.pivot_fixes
        return s


class MIC0(IC0):
    """Modified incomplete Cholesky with zero fill (row-sum compensated IC(0)).

    The fill that IC(0) drops from a row is subtracted, scaled by ``tau``, from its pivot,
    so that ``M 1 ~ A 1``: on Poisson problems this roughly halves the iteration count of
    IC(0)-PCG. Linear and SPD; needs numba.

    Parameters
    ----------
    tau : float in (0, 1], default 0.97
        Modification parameter: the fraction of the dropped fill moved to the diagonal
        (``tau = 1`` is Gustafsson's MIC; slightly less is more robust on singular and
        nearly singular Neumann problems).
    sigma : float in [0, 1), default 0.25
        Safety parameter: if the modified pivot is below ``sigma`` times the unmodified
        (IC) one, the unmodified pivot is used (counted in
        ``stats["mic_safety_fallbacks"]``).

    A modified factorization that breaks down (a pivot that had to be replaced: on
    finite-element matrices MIC(0)'s compensation can drive pivots to zero, and the
    factor becomes useless, e.g. ``r . M^-1 r ~ 1e45``) is redone with ``tau`` halved,
    down to :attr:`MIN_TAU`, and then as IC(0); ``stats["tau_used"]`` and
    ``stats["mic0_retries"]`` say so. So ``M="mic0"`` works wherever IC(0) does.

    Examples
    --------
    >>> import dcdm
    >>> from dcdm.problems import gallery
    >>> A, b = gallery.smoke((20, 20, 20), obstacles=4, seed=0)
    >>> mic = dcdm.solve(A, b, M="mic0", rtol=1e-8)
    >>> ic = dcdm.solve(A, b, M="ic0", rtol=1e-8)
    >>> mic.converged, mic.iterations < ic.iterations
    (True, True)
    >>> dcdm.solve(A, b, M="mic0", tau=1.0, sigma=0.0, rtol=1e-8).converged
    True
    """

    name = "mic0"
    _modified = True
    #: below this ``tau`` a breaking-down factorization falls back to IC(0)
    MIN_TAU = 0.05

    def __init__(self, tau: float = 0.97, sigma: float = 0.25) -> None:
        super().__init__()
        self._tau = _check_param("tau", tau, 0.0, 1.0, low_open=True, high_open=False)
        self._sigma = _check_param("sigma", sigma, 0.0, 1.0, low_open=False, high_open=True)
        self.tau_used = self._tau
        self.retries = 0

    def _build(self, A) -> None:
        tau, self.retries = self._tau, 0
        try:
            while True:
                super()._build(A)
                if self.pivot_fixes == 0 or not self._modified:
                    break
                self.retries += 1
                self._tau /= 2
                if self._tau < self.MIN_TAU:
                    self._modified = False  # this instance only: plain IC(0)
        finally:
            self.tau_used = self._tau if self._modified else 0.0
            self._tau = tau
            self.__dict__.pop("_modified", None)

    @property
    def tau(self) -> float:
        """The modification parameter."""
        return self._tau

    @property
    def sigma(self) -> float:
        """The safety parameter."""
        return self._sigma

    @property
    def stats(self) -> dict[str, Any]:
        s = super().stats
        s["tau"] = self._tau
        s["sigma"] = self._sigma
        if self.built:
            s["mic_safety_fallbacks"] = self._fallbacks
            s["tau_used"] = self.tau_used
            s["mic0_retries"] = self.retries
        return s
