"""Numba CPU kernels (``parallel=True``) for the stencil mat-vec and fused vector updates.

Each kernel computes exactly what its namesake in :mod:`dcdm.kernels.reference`
computes; the tests use the reference as the oracle. Importing this module
requires numba; :mod:`dcdm.kernels` imports it lazily.

Two mat-vecs: :func:`laplacian_matvec` is exact for any ``x`` and reads the
padded ``int8`` flags of every neighbour (compute-bound: ~2.5x the cost of an
unmasked 7-point stencil here); :func:`laplacian_matvec_fluid` is exact only
for ``x`` that vanishes off FLUID cells, which is what every Krylov vector of a
grid solve is, and reads one ``int8`` stencil code per cell besides ``x``:
17 bytes per cell in float64 against 16 for a copy.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._jit import kernel
from .codes import FLUID, SOLID

__all__ = ["axpy", "cg_update", "coef_matvec", "dot", "laplacian_matvec",
           "laplacian_matvec_fluid", "xpby"]



@nb.njit(inline="always")
def _term(f, xn, d, s):
    """Account for one neighbour with flag ``f`` and value ``xn``: returns (d, s)."""
    if f != SOLID:
        d += 1
        if f == FLUID:
            s += xn
    return d, s


@nb.njit(inline="always")
def _cell2(fp, x, i, j, scale):
    xc = x[i, j]
    if fp[i + 1, j + 1] != FLUID:
        return xc
    d, s = 0, 0.0 * xc
    # x indices may run off the array only where the padded flag is the boundary
    # type (never FLUID), so the value is not read
    d, s = _term(fp[i, j + 1], x[max(i - 1, 0), j], d, s)
    d, s = _term(fp[i + 2, j + 1], x[min(i + 1, x.shape[0] - 1), j], d, s)
    d, s = _term(fp[i + 1, j], x[i, max(j - 1, 0)], d, s)
    d, s = _term(fp[i + 1, j + 2], x[i, min(j + 1, x.shape[1] - 1)], d, s)
    return scale * (d * xc - s)


@nb.njit(inline="always")
def _cell3(fp, x, i, j, k, scale):
    xc = x[i, j, k]
    if fp[i + 1, j + 1, k + 1] != FLUID:
        return xc
    n0, n1, n2 = x.shape
    d, s = 0, 0.0 * xc
    d, s = _term(fp[i, j + 1, k + 1], x[max(i - 1, 0), j, k], d, s)
    d, s = _term(fp[i + 2, j + 1, k + 1], x[min(i + 1, n0 - 1), j, k], d, s)
    d, s = _term(fp[i + 1, j, k + 1], x[i, max(j - 1, 0), k], d, s)
    d, s = _term(fp[i + 1, j + 2, k + 1], x[i, min(j + 1, n1 - 1), k], d, s)
    d, s = _term(fp[i + 1, j + 1, k], x[i, j, max(k - 1, 0)], d, s)
    d, s = _term(fp[i + 1, j + 1, k + 2], x[i, j, min(k + 1, n2 - 1)], d, s)
    return scale * (d * xc - s)


@nb.njit(inline="always")
def _masked3(fp, x, i, j, k, scale):
    """Branch-free form of :func:`_cell3` for interior cells (vectorises along k)."""
    a = fp[i, j + 1, k + 1]
    b = fp[i + 2, j + 1, k + 1]
    c = fp[i + 1, j, k + 1]
    e = fp[i + 1, j + 2, k + 1]
    g = fp[i + 1, j + 1, k]
    h = fp[i + 1, j + 1, k + 2]
    d = (np.int32(a != SOLID) + np.int32(b != SOLID) + np.int32(c != SOLID)
         + np.int32(e != SOLID) + np.int32(g != SOLID) + np.int32(h != SOLID))
    s = (x[i - 1, j, k] * (a == FLUID) + x[i + 1, j, k] * (b == FLUID)
         + x[i, j - 1, k] * (c == FLUID) + x[i, j + 1, k] * (e == FLUID)
         + x[i, j, k - 1] * (g == FLUID) + x[i, j, k + 1] * (h == FLUID))
    v = scale * (d * x[i, j, k] - s)
    return v if fp[i + 1, j + 1, k + 1] == FLUID else x[i, j, k]


@kernel
def _matvec2(fp, x, out, scale):
    n0, n1 = x.shape
    for i in nb.prange(n0):
        for j in range(n1):
            out[i, j] = _cell2(fp, x, i, j, scale)


@kernel
def _matvec3(fp, x, out, scale):
    n0, n1, n2 = x.shape
    for i in nb.prange(n0):
        for j in range(n1):
            if i == 0 or j == 0 or i == n0 - 1 or j == n1 - 1 or n2 < 3:
                for k in range(n2):
                    out[i, j, k] = _cell3(fp, x, i, j, k, scale)
                continue
            out[i, j, 0] = _cell3(fp, x, i, j, 0, scale)
            for k in range(1, n2 - 1):
                out[i, j, k] = _masked3(fp, x, i, j, k, scale)
            out[i, j, n2 - 1] = _cell3(fp, x, i, j, n2 - 1, scale)


def _by_ndim(k3, k2, stencil, x, out, scale):
    """Run the 3-D or 2-D compilation (serial or parallel by size) on ``x``."""
    (k3 if x.ndim == 3 else k2)(x.size)(stencil, x, out, x.dtype.type(scale))
    return out


def laplacian_matvec(fp: np.ndarray, x: np.ndarray, out: np.ndarray, scale: float) -> np.ndarray:
    """Numba version of :func:`dcdm.kernels.reference.laplacian_matvec`."""
    return _by_ndim(_matvec3, _matvec2, fp, x, out, scale)


@nb.njit(inline="always")
def _fluid_row(code, xc, xa, xb, xd, xe, out, scale):
    """One grid row of the fluid-supported mat-vec. ``xc`` is the row, ``xa..xe`` the
    neighbouring rows in the other axes (a zero row outside the domain)."""
    n = xc.shape[0]
    for k in range(n):
        s = xa[k] + xb[k] + xd[k] + xe[k]
        if k > 0:
            s += xc[k - 1]
        if k < n - 1:
            s += xc[k + 1]
        c = code[k]
        out[k] = scale * (max(c, 0) * xc[k] - (c >= 0) * s)


@nb.njit(inline="always")
def _fluid_row_interior(code, xc, xa, xb, xd, xe, out, scale):
    """:func:`_fluid_row` with the two end cells peeled, so the loop vectorises."""
    n = xc.shape[0]
    if n < 3:
        _fluid_row(code, xc, xa, xb, xd, xe, out, scale)
        return
    s = xa[0] + xb[0] + xd[0] + xe[0] + xc[1]
    c = code[0]
    out[0] = scale * (max(c, 0) * xc[0] - (c >= 0) * s)
    for k in range(1, n - 1):
        s = xa[k] + xb[k] + xd[k] + xe[k] + xc[k - 1] + xc[k + 1]
        c = code[k]
        out[k] = scale * (max(c, 0) * xc[k] - (c >= 0) * s)
    s = xa[n - 1] + xb[n - 1] + xd[n - 1] + xe[n - 1] + xc[n - 2]
    c = code[n - 1]
    out[n - 1] = scale * (max(c, 0) * xc[n - 1] - (c >= 0) * s)


@kernel
def _fluid_matvec3(code, x, out, scale):
    n0, n1, n2 = x.shape
    zero = np.zeros(n2, dtype=x.dtype)
    for i in nb.prange(n0):
        for j in range(n1):
            if i == 0 or j == 0 or i == n0 - 1 or j == n1 - 1 or n2 < 3:
                xa = x[i - 1, j] if i > 0 else zero
                xb = x[i + 1, j] if i < n0 - 1 else zero
                xd = x[i, j - 1] if j > 0 else zero
                xe = x[i, j + 1] if j < n1 - 1 else zero
                _fluid_row(code[i, j], x[i, j], xa, xb, xd, xe, out[i, j], scale)
                continue
            # interior rows: direct indexing (no per-row views) keeps the short rows fast
            for k in (0, n2 - 1):
                s = x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                s += x[i, j, 1] if k == 0 else x[i, j, n2 - 2]
                c = code[i, j, k]
                out[i, j, k] = scale * (max(c, 0) * x[i, j, k] - (c >= 0) * s)
            for k in range(1, n2 - 1):
                s = (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                     + x[i, j, k - 1] + x[i, j, k + 1])
                c = code[i, j, k]
                out[i, j, k] = scale * (max(c, 0) * x[i, j, k] - (c >= 0) * s)


@kernel
def _fluid_matvec2(code, x, out, scale):
    n0, n1 = x.shape
    zero = np.zeros(n1, dtype=x.dtype)
    for i in nb.prange(n0):
        xa = x[i - 1] if i > 0 else zero
        xb = x[i + 1] if i < n0 - 1 else zero
        _fluid_row_interior(code[i], x[i], xa, xb, zero, zero, out[i], scale)


def laplacian_matvec_fluid(code: np.ndarray, x: np.ndarray, out: np.ndarray,
                           scale: float) -> np.ndarray:
    """Numba version of :func:`dcdm.kernels.reference.laplacian_matvec_fluid`."""
    return _by_ndim(_fluid_matvec3, _fluid_matvec2, code, x, out, scale)


# -- coefficient stencils (face weights; kernels.stencil's coefficient form) ----------------


@nb.njit(inline="always")
def coupled_sum3(k0, k1, k2, x, i, j, k):
    """``sum_n K_cn x_n`` at cell (i, j, k) of a 3-D coefficient stencil, bounds-checked."""
    n0, n1, n2 = x.shape
    s = 0.0 * x[i, j, k]
    if i > 0:
        s += k0[i - 1, j, k] * x[i - 1, j, k]
    if i < n0 - 1:
        s += k0[i, j, k] * x[i + 1, j, k]
    if j > 0:
        s += k1[i, j - 1, k] * x[i, j - 1, k]
    if j < n1 - 1:
        s += k1[i, j, k] * x[i, j + 1, k]
    if k > 0:
        s += k2[i, j, k - 1] * x[i, j, k - 1]
    if k < n2 - 1:
        s += k2[i, j, k] * x[i, j, k + 1]
    return s


@nb.njit(inline="always")
def coupled_sum3_interior(k0, k1, k2, x, i, j, k):
    """:func:`coupled_sum3` for a cell off every face of the array (no tests: vectorises)."""
    return (k0[i - 1, j, k] * x[i - 1, j, k] + k0[i, j, k] * x[i + 1, j, k]
            + k1[i, j - 1, k] * x[i, j - 1, k] + k1[i, j, k] * x[i, j + 1, k]
            + k2[i, j, k - 1] * x[i, j, k - 1] + k2[i, j, k] * x[i, j, k + 1])


@kernel
def _coef_matvec3(diag, k0, k1, k2, x, out, scale):
    n0, n1, n2 = x.shape
    for i in nb.prange(n0):
        for j in range(n1):
            if i == 0 or j == 0 or i == n0 - 1 or j == n1 - 1 or n2 < 3:
                for k in range(n2):
                    d = diag[i, j, k]
                    s = coupled_sum3(k0, k1, k2, x, i, j, k)
                    out[i, j, k] = scale * (d * x[i, j, k] - s) if d >= 0 else x[i, j, k]
                continue
            for k in (0, n2 - 1):
                d = diag[i, j, k]
                s = coupled_sum3(k0, k1, k2, x, i, j, k)
                out[i, j, k] = scale * (d * x[i, j, k] - s) if d >= 0 else x[i, j, k]
            for k in range(1, n2 - 1):
                d = diag[i, j, k]
                v = scale * (d * x[i, j, k] - coupled_sum3_interior(k0, k1, k2, x, i, j, k))
                out[i, j, k] = v if d >= 0 else x[i, j, k]


@kernel
def _coef_matvec2(diag, k0, k1, x, out, scale):
    n0, n1 = x.shape
    for i in nb.prange(n0):
        for j in range(n1):
            s = 0.0 * x[i, j]
            if i > 0:
                s += k0[i - 1, j] * x[i - 1, j]
            if i < n0 - 1:
                s += k0[i, j] * x[i + 1, j]
            if j > 0:
                s += k1[i, j - 1] * x[i, j - 1]
            if j < n1 - 1:
                s += k1[i, j] * x[i, j + 1]
            d = diag[i, j]
            out[i, j] = scale * (d * x[i, j] - s) if d >= 0 else x[i, j]


def coef_matvec(diag, couplings, x, out, scale: float):
    """Numba version of :func:`dcdm.kernels.reference.coef_matvec`."""
    sc = x.dtype.type(scale)
    if x.ndim == 3:
        _coef_matvec3(x.size)(diag, *couplings, x, out, sc)
    else:
        _coef_matvec2(x.size)(diag, *couplings, x, out, sc)
    return out


@kernel
def _cg_update(x, r, p, Ap, alpha):
    n = x.shape[0]
    acc = 0.0
    for i in nb.prange(n):
        x[i] += alpha * p[i]
        ri = r[i] - alpha * Ap[i]
        r[i] = ri
        acc += ri * ri
    return acc


@kernel
def _xpby(z, beta, p):
    for i in nb.prange(p.shape[0]):
        p[i] = z[i] + beta * p[i]


def cg_update(x: np.ndarray, r: np.ndarray, p: np.ndarray, Ap: np.ndarray, alpha: float) -> float:
    """Fused ``x += alpha p; r -= alpha Ap; return r . r`` in one pass."""
    return float(_cg_update(x.size)(x, r, p, Ap, x.dtype.type(alpha)))


def xpby(z: np.ndarray, beta: float, p: np.ndarray) -> np.ndarray:
    """``p = z + beta p`` in place, one pass."""
    _xpby(p.size)(z, p.dtype.type(beta), p)
    return p


@kernel
def _dot(x, y):
    acc = 0.0
    for i in nb.prange(x.shape[0]):
        acc += x[i] * y[i]
    return acc


def dot(x: np.ndarray, y: np.ndarray) -> float:
    """``x . y`` accumulated in float64.

    Done in Numba rather than BLAS on purpose: alternating OpenBLAS's and
    Numba's thread pools inside one iteration makes both spin against each
    other (measured: a 64^3 CG iteration went from 0.6 ms to 11 ms).
    """
    return float(_dot(x.size)(x, y))


@kernel
def _axpy(alpha, x, y):
    for i in nb.prange(y.shape[0]):
        y[i] += alpha * x[i]


def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y += alpha x`` in place, one pass."""
    _axpy(y.size)(y.dtype.type(alpha), x, y)
    return y
