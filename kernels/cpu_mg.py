"""Numba kernels of the geometric multigrid V-cycle (3-D arrays; 2-D grids run as
``n0 x n1 x 1``): red-black Gauss-Seidel, fused residual + restriction, and
prolongation. Each matches its namesake in :mod:`dcdm.kernels.reference`.

All vectors vanish off FLUID cells, so a neighbour's value can be used without
looking at its flag (see :func:`dcdm.kernels.reference.laplacian_matvec_fluid`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._jit import kernel
from .cpu import coef_matvec, coupled_sum3, coupled_sum3_interior

__all__ = [
    "coarse_solve",
    "coef_rbgs_cells",
    "coef_rbgs_pair",
    "coef_rbgs_sweep",
    "coef_residual_restrict",
    "galerkin_coarsen",
    "galerkin_coarsen_code",
    "prolong_add",
    "rbgs_cells",
    "rbgs_pair",
    "rbgs_sweep",
    "residual_restrict",
]



@nb.njit(inline="always")
def _nsum(x, i, j, k):
    n0, n1, n2 = x.shape
    s = 0.0 * x[i, j, k]
    if i > 0:
        s += x[i - 1, j, k]
    if i < n0 - 1:
        s += x[i + 1, j, k]
    if j > 0:
        s += x[i, j - 1, k]
    if j < n1 - 1:
        s += x[i, j + 1, k]
    if k > 0:
        s += x[i, j, k - 1]
    if k < n2 - 1:
        s += x[i, j, k + 1]
    return s


@nb.njit(inline="always")
def _neighbours(x, i, j, k, interior):
    """``_nsum`` without the bounds tests for a cell off the array's faces."""
    if interior:
        return (x[i - 1, j, k] + x[i + 1, j, k] + x[i, j - 1, k] + x[i, j + 1, k]
                + x[i, j, k - 1] + x[i, j, k + 1])
    return _nsum(x, i, j, k)


@nb.njit(inline="always")
def _divisor(code, shift, i, j, k):
    """The Gauss-Seidel divisor of cell (i, j, k), ``<= 0`` where it is not updated: the
    stencil code, plus the shift when there is one. ``shift is None`` is decided at compile
    time (Numba prunes the branch for a None argument), so the plain sweep keeps its
    integer divisor and no extra load."""
    c = code[i, j, k]
    if shift is None:
        return c
    return c + shift[i, j, k] if c >= 0 else -1.0


# 1 / d for the stencil codes d = 0..6: a division per cell dominated the sweep's time
_RECIPROCAL = np.array([0.0] + [1.0 / d for d in range(1, 7)])


@nb.njit(inline="always")
def _plane(code, shift, x, b, h2, i, color):
    """The half-sweep of colour ``color`` on plane ``i`` (axis 0)."""
    n0, n1, n2 = x.shape
    for j in range(n1):
        k0 = (i + j + color) & 1
        interior = 0 < i < n0 - 1 and 0 < j < n1 - 1
        if shift is None:  # integer divisors 1..6: multiply by a table's reciprocal
            for k in range(k0, n2, 2):
                c = code[i, j, k]
                if c <= 0:
                    continue
                s = _neighbours(x, i, j, k, interior and 0 < k < n2 - 1)
                x[i, j, k] = (b[i, j, k] * h2 + s) * _RECIPROCAL[c]
            continue
        for k in range(k0, n2, 2):
            d = _divisor(code, shift, i, j, k)
            if d <= 0:
                continue
            s = _neighbours(x, i, j, k, interior and 0 < k < n2 - 1)
            x[i, j, k] = (b[i, j, k] * h2 + s) / d


@kernel
def _rbgs(code, shift, x, b, h2, color):
    for i in nb.prange(x.shape[0]):
        _plane(code, shift, x, b, h2, i, color)


def rbgs_sweep(code, x, b, scale: float, color: int, shift=None) -> None:
    """Numba version of :func:`dcdm.kernels.reference.rbgs_sweep`."""
    _rbgs(x.size)(code, shift, x, b, x.dtype.type(1.0 / scale), color)


# One full sweep (colour ``first`` everywhere, then the other) in one pass over memory: each
# chunk of planes runs the first colour on plane i and the second on plane i - 1 (whose
# first-colour neighbours are then final); a chunk's first and last planes take their
# second colour after every chunk is done, as they need the neighbouring chunks' planes.
# The result equals the two half-sweeps exactly (same operands, same order per cell).


@kernel
def _rbgs_pair(code, shift, x, b, h2, first, chunks):
    n0 = x.shape[0]
    second = 1 - first
    for c in nb.prange(chunks):
        lo, hi = c * n0 // chunks, (c + 1) * n0 // chunks
        for i in range(lo, hi):
            _plane(code, shift, x, b, h2, i, first)
            if i - 1 > lo:
                _plane(code, shift, x, b, h2, i - 1, second)
    for c in nb.prange(chunks):
        lo, hi = c * n0 // chunks, (c + 1) * n0 // chunks
        if hi > lo:
            _plane(code, shift, x, b, h2, lo, second)
        if hi - 1 > lo:
            _plane(code, shift, x, b, h2, hi - 1, second)


def _chunks(x) -> int:
    """Chunks of planes for a fused sweep: one per thread when it runs in parallel."""
    from ._jit import PARALLEL_MIN

    return max(1, min(nb.get_num_threads(), x.shape[0] // 4)) if x.size >= PARALLEL_MIN else 1


def rbgs_pair(code, x, b, scale: float, first: int, shift=None) -> None:
    """Numba version of :func:`dcdm.kernels.reference.rbgs_pair`, in one pass."""
    _rbgs_pair(x.size)(code, shift, x, b, x.dtype.type(1.0 / scale), first, _chunks(x))


@kernel
def _subtract_from(b, out):
    """``out = b - out`` (flat arrays)."""
    for i in nb.prange(out.shape[0]):
        out[i] = b[i] - out[i]


@kernel
def _restrict(r_f, code_c, b_c, f0, f1, f2, weight):
    n0, n1, n2 = r_f.shape
    N0, N1, N2 = b_c.shape
    for I in nb.prange(N0):
        for J in range(N1):
            for K in range(N2):
                if code_c[I, J, K] < 0:
                    b_c[I, J, K] = 0.0
                    continue
                acc = 0.0
                for i in range(f0 * I, min(f0 * I + f0, n0)):
                    for j in range(f1 * J, min(f1 * J + f1, n1)):
                        for k in range(f2 * K, min(f2 * K + f2, n2)):
                            acc += r_f[i, j, k]
                b_c[I, J, K] = weight * acc


@kernel
def _subtract_shifted(b, shift, x, scale, out):
    """``out = b - out - scale * shift * x`` (flat arrays)."""
    for i in nb.prange(out.shape[0]):
        out[i] = b[i] - out[i] - scale * shift[i] * x[i]


def residual_restrict(code_f, x_f, b_f, scale_f: float, code_c, b_c, factors, weight: float,
                      work=None, shift=None):
    """Numba version of :func:`dcdm.kernels.reference.residual_restrict`.

    ``work`` (fine-grid shaped) holds the fine residual; allocated if not given.
    """
    from .cpu import laplacian_matvec_fluid

    r = np.empty_like(x_f) if work is None else work
    laplacian_matvec_fluid(code_f, x_f, r, scale_f)  # zero off FLUID cells
    if shift is None:
        _subtract_from(r.size)(b_f.reshape(-1), r.reshape(-1))
    else:  # the shift vanishes off FLUID cells, as x_f and b_f do
        _subtract_shifted(r.size)(b_f.reshape(-1), shift.reshape(-1), x_f.reshape(-1),
                                  r.dtype.type(scale_f), r.reshape(-1))
    # b_f vanishes off FLUID cells, so r does too: no mask needed before summing
    _restrict(b_c.size)(r, code_c, b_c, *factors, r.dtype.type(weight))


@kernel
def _rbgs_cells(code, shift, x, b, h2, ii, jj, kk):
    for t in nb.prange(ii.shape[0]):
        i, j, k = ii[t], jj[t], kk[t]
        d = _divisor(code, shift, i, j, k)
        if d <= 0:
            continue
        x[i, j, k] = (b[i, j, k] * h2 + _nsum(x, i, j, k)) / d


def rbgs_cells(code, x, b, scale: float, cells, shift=None) -> None:
    """Gauss-Seidel update of the listed cells ``cells = (i, j, k)`` (one colour only)."""
    ii, jj, kk = cells
    _rbgs_cells(max(ii.size * 64, 1))(code, shift, x, b, x.dtype.type(1.0 / scale), ii, jj, kk)


@kernel
def _prolong_add(x_c, code_f, x_f, s0, s1, s2):
    n0, n1, n2 = x_f.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range(n2):
                if code_f[i, j, k] >= 0:
                    x_f[i, j, k] += x_c[i >> s0, j >> s1, k >> s2]


def prolong_add(x_c, code_f, x_f, factors) -> None:
    """Numba version of :func:`dcdm.kernels.reference.prolong_add`."""
    _prolong_add(x_f.size)(x_c, code_f, x_f, *(int(f == 2) for f in factors))


# -- coefficient stencils (face weights and the Galerkin coarse levels) ------------------------


@nb.njit(inline="always")
def _coef_plane(diag, k0, k1, k2, x, b, h2, i, color):
    n0, n1, n2 = x.shape
    for j in range(n1):
        kc = (i + j + color) & 1
        interior = 0 < i < n0 - 1 and 0 < j < n1 - 1
        for k in range(kc, n2, 2):
            d = diag[i, j, k]
            if d <= 0:
                continue
            if interior and 0 < k < n2 - 1:
                s = coupled_sum3_interior(k0, k1, k2, x, i, j, k)
            else:
                s = coupled_sum3(k0, k1, k2, x, i, j, k)
            x[i, j, k] = (b[i, j, k] * h2 + s) / d


@kernel
def _coef_rbgs(diag, k0, k1, k2, x, b, h2, color):
    for i in nb.prange(x.shape[0]):
        _coef_plane(diag, k0, k1, k2, x, b, h2, i, color)


def coef_rbgs_sweep(diag, couplings, x, b, scale: float, color: int) -> None:
    """Numba version of :func:`dcdm.kernels.reference.coef_rbgs_sweep`."""
    _coef_rbgs(x.size)(diag, *couplings, x, b, x.dtype.type(1.0 / scale), color)


@kernel
def _coef_rbgs_pair(diag, k0, k1, k2, x, b, h2, first, chunks):
    n0 = x.shape[0]
    second = 1 - first
    for c in nb.prange(chunks):  # as _rbgs_pair
        lo, hi = c * n0 // chunks, (c + 1) * n0 // chunks
        for i in range(lo, hi):
            _coef_plane(diag, k0, k1, k2, x, b, h2, i, first)
            if i - 1 > lo:
                _coef_plane(diag, k0, k1, k2, x, b, h2, i - 1, second)
    for c in nb.prange(chunks):
        lo, hi = c * n0 // chunks, (c + 1) * n0 // chunks
        if hi > lo:
            _coef_plane(diag, k0, k1, k2, x, b, h2, lo, second)
        if hi - 1 > lo:
            _coef_plane(diag, k0, k1, k2, x, b, h2, hi - 1, second)


def coef_rbgs_pair(diag, couplings, x, b, scale: float, first: int) -> None:
    """Numba version of :func:`dcdm.kernels.reference.coef_rbgs_pair`, in one pass."""
    _coef_rbgs_pair(x.size)(diag, *couplings, x, b, x.dtype.type(1.0 / scale), first,
                            _chunks(x))


@kernel
def _coef_rbgs_cells(diag, k0, k1, k2, x, b, h2, ii, jj, kk):
    for t in nb.prange(ii.shape[0]):
        i, j, k = ii[t], jj[t], kk[t]
        d = diag[i, j, k]
        if d <= 0:
            continue
        x[i, j, k] = (b[i, j, k] * h2 + coupled_sum3(k0, k1, k2, x, i, j, k)) / d


def coef_rbgs_cells(diag, couplings, x, b, scale: float, cells) -> None:
    """Gauss-Seidel update of the listed cells (one colour) of a coefficient stencil."""
    ii, jj, kk = cells
    _coef_rbgs_cells(max(ii.size * 64, 1))(diag, *couplings, x, b, x.dtype.type(1.0 / scale),
                                           ii, jj, kk)


def coef_residual_restrict(diag_f, couplings_f, x_f, b_f, scale_f: float, diag_c, b_c, factors,
                           weight: float, work=None) -> None:
    """Numba version of :func:`dcdm.kernels.reference.coef_residual_restrict`."""
    r = np.empty_like(x_f) if work is None else work
    coef_matvec(diag_f, couplings_f, x_f, r, scale_f)  # x_f and b_f vanish where diag_f < 0
    _subtract_from(r.size)(b_f.reshape(-1), r.reshape(-1))
    _restrict(b_c.size)(r, diag_c, b_c, *factors, r.dtype.type(weight))


# -- Galerkin coarsening (set-up) -----------------------------------------------------------


@nb.njit(inline="always")
def _link(diag, kk, i, j, k, i2, j2, k2):
    """The coupling of active cell (i, j, k) to its upper neighbour (i2, j2, k2): ``kk``'s
    entry, or with ``kk is None`` (``diag`` a stencil code) 1 when the neighbour is FLUID."""
    if kk is None:
        return 1.0 if diag[i2, j2, k2] >= 0 else 0.0
    return kk[i, j, k]


@kernel
def _galerkin(diag, k0, k1, k2, shift, shift_in_diag, f0, f1, f2, beta, dc, k0c, k1c, k2c):
    n0, n1, n2 = diag.shape
    N0, N1, N2 = dc.shape
    for I in nb.prange(N0):
        for J in range(N1):
            for K in range(N2):
                total = 0.0
                internal = 0.0
                ssum = 0.0
                cx = 0.0
                cy = 0.0
                cz = 0.0
                active = False
                for i in range(f0 * I, min(f0 * I + f0, n0)):
                    for j in range(f1 * J, min(f1 * J + f1, n1)):
                        for k in range(f2 * K, min(f2 * K + f2, n2)):
                            d = diag[i, j, k]
                            if d < 0:
                                continue
                            active = True
                            total += d
                            if shift is not None:
                                ssum += shift[i, j, k]
                            if i + 1 < n0:
                                w = _link(diag, k0, i, j, k, i + 1, j, k)
                                if i & 1:
                                    cx += w
                                else:
                                    internal += w
                            if j + 1 < n1:
                                w = _link(diag, k1, i, j, k, i, j + 1, k)
                                if j & 1:
                                    cy += w
                                else:
                                    internal += w
                            if k + 1 < n2:
                                w = _link(diag, k2, i, j, k, i, j, k + 1)
                                if k & 1:
                                    cz += w
                                else:
                                    internal += w
                if not active:
                    dc[I, J, K] = -1.0
                    k0c[I, J, K] = 0.0
                    k1c[I, J, K] = 0.0
                    k2c[I, J, K] = 0.0
                    continue
                if not shift_in_diag:
                    total += ssum
                v = beta * (total - ssum - 2.0 * internal)
                if abs(v) <= 1e-12 * beta * total:
                    v = 0.0
                dc[I, J, K] = v + ssum
                k0c[I, J, K] = beta * cx
                k1c[I, J, K] = beta * cy
                k2c[I, J, K] = beta * cz


def _galerkin_call(diag, couplings, factors, beta, shift, shift_in_diag):
    coarse = tuple(-(-n // f) for n, f in zip(diag.shape, factors, strict=True))
    out = [np.empty(coarse) for _ in range(4)]
    _galerkin(diag.size)(diag, *couplings, shift, shift_in_diag, *factors, float(beta), *out)
    return out[0], tuple(out[1:])


def galerkin_coarsen(diag, couplings, factors, beta: float, shift=None):
    """Numba version of :func:`dcdm.kernels.reference.galerkin_coarsen`."""
    return _galerkin_call(diag, couplings, factors, beta, shift, True)


def galerkin_coarsen_code(code, factors, beta: float, shift=None):
    """Numba version of :func:`dcdm.kernels.reference.galerkin_coarsen_code`: reads only
    the ``int8`` code (no fine coefficient arrays are made)."""
    return _galerkin_call(code, (None, None, None), factors, beta, shift, False)


@nb.njit(cache=True, nogil=True)
def _cholesky_solve(L, b, x):
    n = b.shape[0]
    for i in range(n):  # L y = b
        s = b[i]
        for j in range(i):
            s -= L[i, j] * x[j]
        x[i] = s / L[i, i]
    for i in range(n - 1, -1, -1):  # L^T x = y
        s = x[i]
        for j in range(i + 1, n):
            s -= L[j, i] * x[j]
        x[i] = s / L[i, i]


@nb.njit(cache=True, nogil=True)
def _dense_matvec(M, b, x):
    n = b.shape[0]
    for i in range(n):
        s = 0.0
        for j in range(n):
            s += M[i, j] * b[j]
        x[i] = s


def coarse_solve(kind: str, F, b, x) -> None:
    """Solve the coarsest level: ``kind == "cholesky"`` with the lower factor ``F`` of the
    dense matrix, else ``x = F b`` with a dense (pseudo-)inverse ``F``. Serial Numba: a
    BLAS call here would start OpenBLAS's thread pool, which fights Numba's (see
    :mod:`dcdm.kernels._jit`)."""
    if kind == "cholesky":
        _cholesky_solve(F, b, x)
    else:
        _dense_matvec(F, b, x)
