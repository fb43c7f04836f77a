"""Numba kernels of :mod:`dcdm.solvers.precond.ichol`: the IC(0)/MIC(0) factorisation and
the two triangular solves.

The factor is kept in ``L D L^T`` form, ``M = (D + L) D^{-1} (D + L)^T`` with ``L`` strictly
lower triangular on the pattern of ``A``. ``L`` is stored by columns (CSC: ``colptr``,
``rowidx`` sorted within each column, ``val``), which is the CSR of its transpose; both
solves walk it once, so each costs one pass over ``nnz(L) + n`` entries. Sequential by
nature (each unknown depends on the previous ones in the ordering).

Importing this module needs numba; :mod:`dcdm.solvers.precond.ichol` imports it when a
factor is built.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["factorize", "solve_ldlt"]

_OPTS = dict(cache=True, nogil=True, boundscheck=False)


@nb.njit(**_OPTS)
def _find(rowidx, lo, hi, row):
    """Position of ``row`` in the sorted ``rowidx[lo:hi]``, or -1."""
    while lo < hi:
        mid = (lo + hi) >> 1
        r = rowidx[mid]
        if r < row:
            lo = mid + 1
        elif r > row:
            hi = mid
        else:
            return mid
    return -1


@nb.njit(**_OPTS)
def factorize(colptr, rowidx, val, diag, modified, tau, sigma, tiny, invd):
    """Right-looking IC(0) / MIC(0) in ``L D L^T`` form, in place.

    Parameters
    ----------
    colptr, rowidx, val
        Strictly lower triangle of ``A`` by columns, float64 ``val``; overwritten with ``L``.
    diag : float64 array
        Diagonal of ``A`` (read only).
    modified : bool
        MIC(0): add ``tau`` times the dropped fill of each row to its pivot.
    tau, sigma : float
        MIC(0) modification and safety parameters.
    tiny : float
        A pivot ``<= tiny * |a_kk|`` is a breakdown.
    invd : float64 array
        Output: ``1 / D``.

    Returns
    -------
    (int, int)
        Pivots replaced after a breakdown, MIC(0) pivots that fell back to IC(0).
    """
    n = diag.shape[0]
    d = diag.copy()  # pivots, updated by the columns to their left
    comp = np.zeros(n)  # sum of the fill dropped in each row (for MIC)
    fixes = 0
    fallbacks = 0
    for k in range(n):
        e = d[k]
        if modified:
            m = e - tau * comp[k]
            if m >= sigma * e:
                e = m
            else:
                fallbacks += 1
        a = diag[k]
        if not e > tiny * abs(a):
            # breakdown (not SPD, or an unlucky ordering): the original diagonal keeps
            # M SPD, at the price of a weaker preconditioner on this row
            e = abs(a) if a != 0.0 and np.isfinite(a) else 1.0
            fixes += 1
        ik = 1.0 / e
        invd[k] = ik
        p0 = colptr[k]
        p1 = colptr[k + 1]
        for p in range(p0, p1):
            i = rowidx[p]
            s = val[p] * ik
            d[i] -= s * val[p]
            for q in range(p + 1, p1):
                j = rowidx[q]  # j > i: the update lands in column i, row j
                f = s * val[q]
                pos = _find(rowidx, colptr[i], colptr[i + 1], j)
                if pos >= 0:
                    val[pos] -= f
                elif modified:
                    comp[i] += f
                    comp[j] += f
    return fixes, fallbacks


@nb.njit(**_OPTS)
def solve_ldlt(colptr, rowidx, val, invd, out):
    """``out = ((D + L) D^{-1} (D + L)^T)^{-1} r``, in place: ``out`` holds ``r`` on entry."""
    n = invd.shape[0]
    # forward: (D + L) w = r, column-oriented (scatter)
    for k in range(n):
        wk = out[k] * invd[k]
        out[k] = wk
        if wk != 0.0:
            for p in range(colptr[k], colptr[k + 1]):
                out[rowidx[p]] -= val[p] * wk
    # backward: (D + L)^T z = D w, i.e. z_i = w_i - (1/d_i) sum_{j>i} L_ji z_j (gather)
    for i in range(n - 1, -1, -1):
        s = 0.0
        for p in range(colptr[i], colptr[i + 1]):
            s += val[p] * out[rowidx[p]]
        out[i] -= invd[i] * s
    return out
