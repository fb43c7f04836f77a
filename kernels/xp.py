"""Generic array-API kernels: the fallback for every array that is not a NumPy array.

Each function computes what its namesake in :mod:`dcdm.kernels.reference`
computes, using only array-API operations through
``array_api_compat.array_namespace``: shifted slices instead of ``np.pad``,
``xp.where`` instead of masked assignment, broadcasting instead of
``np.repeat``. So it runs unchanged on torch tensors (CPU and CUDA), CuPy
arrays and any other array-API library, on the array's own device. In-place
arguments (``out``, ``x``, ``r``, ``p``, ``y``) are updated in place, as the
Krylov loops require. No function here moves data between devices, and none
synchronises with the host except those that return a Python float.

The stencil arrays (``fp``, ``code``; ``diag``, ``couplings`` of a coefficient stencil)
must live in the namespace and on the device of ``x``:
:meth:`dcdm.problems.Grid.kernel_arrays` and :meth:`dcdm.problems.Grid.coefficients` convert
them once (the edge transfers are :mod:`dcdm.kernels.arrays`).

Examples
--------
>>> import numpy as np
>>> from dcdm.kernels import xp as kx
>>> x = np.arange(4.0)
>>> y = np.ones(4)
>>> kx.axpy(2.0, x, y).tolist(), kx.dot(x, x)
([1.0, 3.0, 5.0, 7.0], 14.0)
"""

from __future__ import annotations

from array_api_compat import array_namespace, device

from .codes import FLUID, SOLID
from .sweeps import half_sweep_pairs

__all__ = [
    "axpy",
    "cg_update",
    "coef_matvec",
    "coef_rbgs_cells",
    "coef_rbgs_pair",
    "coef_rbgs_sweep",
    "coef_residual_restrict",
    "dot",
    "laplacian_matvec",
    "laplacian_matvec_fluid",
    "prolong_add",
    "rbgs_cells",
    "rbgs_pair",
    "rbgs_sweep",
    "residual_restrict",
    "xpby",
]


# -- stencil -----------------------------------------------------------------------------------


def _pairs(shape):
    """Per axis ``a`` with two or more cells: ``(a, lo, hi)``, the slices of the cells ``c``
    and ``c + e_a`` of every neighbour pair along ``a``."""
    for axis, n in enumerate(shape):
        if n < 2:
            continue
        lo = [slice(None)] * len(shape)
        hi = [slice(None)] * len(shape)
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        yield axis, tuple(lo), tuple(hi)


def _neighbour_sum(xp, x):
    """Sum of the 2*ndim face neighbours of every cell, zero outside the array."""
    acc = xp.zeros_like(x)
    for _, lo, hi in _pairs(x.shape):
        acc[hi] += x[lo]
        acc[lo] += x[hi]
    return acc


def _coupled_sum(xp, couplings, x):
    """``sum_n K_cn x_n`` for every cell: ``couplings[a][c]`` links ``c`` and ``c + e_a``."""
    acc = xp.zeros_like(x)
    for axis, lo, hi in _pairs(x.shape):
        k = couplings[axis][lo]
        acc[lo] += k * x[hi]
        acc[hi] += k * x[lo]
    return acc


def _flag_slices(ndim: int):
    """For each face neighbour: the slice of the padded flags holding its flag, the slice
    of ``x`` its value comes from, and the slice of the cells that have it inside ``x``."""
    full = [slice(None)] * ndim
    for axis in range(ndim):
        for flag_part, src_part, dst_part in ((slice(0, -2), slice(0, -1), slice(1, None)),
                                              (slice(2, None), slice(1, None), slice(0, -1))):
            f = [slice(1, -1)] * ndim
            src, dst = list(full), list(full)
            f[axis], src[axis], dst[axis] = flag_part, src_part, dst_part
            yield tuple(f), tuple(src), tuple(dst)


def laplacian_matvec(fp, x, out, scale: float):
    """``out = L x`` for the masked 5/7-point Laplacian (any ``x``); see the reference."""
    xp = array_namespace(x)
    diag = xp.zeros_like(x)
    acc = xp.zeros_like(x)
    for f, src, dst in _flag_slices(x.ndim):
        nb = fp[f]
        diag += xp.astype(nb != SOLID, x.dtype)
        v = x[src]
        acc[dst] += xp.where(nb[dst] == FLUID, v, xp.zeros_like(v))
    fluid = fp[(slice(1, -1),) * x.ndim] == FLUID
    out[...] = xp.where(fluid, scale * (diag * x - acc), x)
    return out


def laplacian_matvec_fluid(code, x, out, scale: float):
    """``out = L x`` for ``x`` zero off FLUID cells (``code`` is the stencil code)."""
    xp = array_namespace(x)
    c = xp.astype(code, x.dtype)
    d = xp.clip(c, 0, None)
    fluid = xp.astype(code >= 0, x.dtype)
    out[...] = scale * (d * x - fluid * _neighbour_sum(xp, x))
    return out


def coef_matvec(diag, couplings, x, out, scale: float):
    """``out = L x`` for a coefficient stencil ``(diag, couplings)`` (face weights; 2-D or
    3-D, any ``x``); see :func:`dcdm.kernels.reference.coef_matvec`."""
    xp = array_namespace(x)
    val = scale * (diag * x - _coupled_sum(xp, couplings, x))
    out[...] = xp.where(diag < 0, x, val)
    return out


# -- vector updates ----------------------------------------------------------------------------


def _dot(xp, x, y):
    if x.ndim == 1:
        return xp.vecdot(x, y)
    return xp.sum(x * y)


def cg_update(x, r, p, Ap, alpha: float) -> float:
    """``x += alpha p``, ``r -= alpha Ap``, return the new ``r . r`` (in place)."""
    xp = array_namespace(r)
    x += alpha * p
    r -= alpha * Ap
    return float(_dot(xp, r, r))


def xpby(z, beta: float, p):
    """``p = z + beta p`` in place; returns ``p``."""
    p *= beta
    p += z
    return p


def dot(x, y) -> float:
    """``x . y`` as a Python float (one scalar to the host)."""
    return float(_dot(array_namespace(x), x, y))


def axpy(alpha: float, x, y):
    """``y += alpha x`` in place; returns ``y``."""
    y += alpha * x
    return y


# -- multigrid (3-D arrays) --------------------------------------------------------------------


def _parity(xp, x, color: int):
    """Boolean mask of the cells with ``(i + j + k) % 2 == color``."""
    dev = device(x)
    idx = [xp.arange(n, device=dev) for n in x.shape]
    s = (xp.reshape(idx[0], (-1, 1, 1)) + xp.reshape(idx[1], (1, -1, 1))
         + xp.reshape(idx[2], (1, 1, -1)))
    return s % 2 == color


def _diag(xp, code, shift, dtype):
    """The stencil's diagonal ``d + shift`` (``d`` clipped at 0 off FLUID cells)."""
    d = xp.astype(xp.where(code > 0, code, xp.zeros_like(code)), dtype)
    return d if shift is None else d + xp.astype(shift, dtype)


def rbgs_sweep(code, x, b, scale: float, color: int, shift=None) -> None:
    """One red-black Gauss-Seidel half-sweep (see :func:`dcdm.kernels.reference.rbgs_sweep`)."""
    xp = array_namespace(x)
    d = _diag(xp, code, shift, x.dtype)
    upd = _parity(xp, x, color) & (code >= 0) & (d > 0)
    new = (b / scale + _neighbour_sum(xp, x)) / xp.where(upd, d, xp.ones_like(d))
    x[...] = xp.where(upd, new, x)


def residual_restrict(code_f, x_f, b_f, scale_f: float, code_c, b_c, factors, weight: float,
                      work=None, shift=None) -> None:
    """``b_c = weight * sum over children of (b_f - L_f x_f)`` on coarse FLUID cells, else 0
    (``shift`` as in :func:`dcdm.kernels.reference.rbgs_sweep`)."""
    xp = array_namespace(x_f)
    r = xp.empty_like(x_f) if work is None else work
    laplacian_matvec_fluid(code_f, x_f, r, scale_f)
    if shift is not None:
        r += scale_f * xp.astype(shift, x_f.dtype) * x_f
    r[...] = xp.where(code_f >= 0, b_f - r, xp.zeros_like(r))
    _restrict(xp, r, code_c >= 0, b_c, factors, weight)


def _restrict(xp, r, keep, b_c, factors, weight: float) -> None:
    """``b_c = weight * sum over children of r`` where ``keep``, else 0 (in place)."""
    padded = tuple(f * n for f, n in zip(factors, b_c.shape, strict=True))
    if padded != tuple(r.shape):
        rp = xp.zeros(padded, dtype=r.dtype, device=device(r))
        rp[tuple(slice(0, n) for n in r.shape)] = r
    else:
        rp = r
    split = (b_c.shape[0], factors[0], b_c.shape[1], factors[1], b_c.shape[2], factors[2])
    blocks = xp.sum(xp.reshape(rp, split), axis=(1, 3, 5))
    b_c[...] = xp.where(keep, weight * blocks, xp.zeros_like(blocks))


def prolong_add(x_c, code_f, x_f, factors) -> None:
    """``x_f += P x_c``: every FLUID fine cell takes its parent's value (``code_f`` the
    stencil code, or a coefficient stencil's ``diag``: the test is ``code_f >= 0``)."""
    xp = array_namespace(x_f)
    n0, n1, n2 = x_c.shape
    f0, f1, f2 = factors
    up = xp.broadcast_to(xp.reshape(x_c, (n0, 1, n1, 1, n2, 1)), (n0, f0, n1, f1, n2, f2))
    up = xp.reshape(up, (n0 * f0, n1 * f1, n2 * f2))
    up = up[tuple(slice(0, n) for n in x_f.shape)]
    x_f += xp.where(code_f >= 0, up, xp.zeros_like(up))


def rbgs_cells(code, x, b, scale: float, cells, shift=None) -> None:
    """Gauss-Seidel update of the listed cells ``cells = (i, j, k)``, all of one colour
    (``shift`` as in :func:`dcdm.kernels.reference.rbgs_sweep`).

    Works on the listed cells only (gathers their six neighbours), so a call costs
    ``O(len(cells))``, not a pass over the grid.
    """
    xp = array_namespace(x)

    def divisor(lin):
        c = xp.take(xp.reshape(code, (-1,)), lin)
        d = _diag(xp, c, None if shift is None else xp.take(xp.reshape(shift, (-1,)), lin),
                  x.dtype)
        return d, (c >= 0) & (d > 0)

    _update_cells(xp, x, b, scale, cells, None, divisor)


def _update_cells(xp, x, b, scale: float, cells, couplings, divisor) -> None:
    """Gauss-Seidel update of the listed cells (one colour): gathers each cell's six
    neighbours, weighted by ``couplings`` (None: weight 1, the plain stencil on vectors that
    vanish off FLUID cells); ``divisor(lin)`` gives the cells' divisors and which to update."""
    ii, jj, kk = cells
    if ii.shape[0] == 0:
        return
    n0, n1, n2 = x.shape
    strides = (n1 * n2, n2, 1)
    lin = ii * strides[0] + jj * strides[1] + kk
    xf = xp.reshape(x, (-1,))
    s = xp.zeros(ii.shape, dtype=x.dtype, device=device(x))
    zero = xp.zeros_like(s)
    for axis, (idx, n, stride) in enumerate(zip((ii, jj, kk), (n0, n1, n2), strides,
                                                strict=True)):
        kf = None if couplings is None else xp.reshape(couplings[axis], (-1,))
        for ok, nb, at in ((idx + 1 < n, lin + stride, lin),  # c + e_a: coupling K_a[c]
                           (idx > 0, lin - stride, lin - stride)):  # c - e_a: K_a[c - e_a]
            nb = xp.where(ok, nb, lin)
            value = xp.take(xf, nb)
            if kf is not None:
                value = xp.take(kf, xp.where(ok, at, lin)) * value
            s += xp.where(ok, value, zero)
    d, upd = divisor(lin)
    val = (xp.take(xp.reshape(b, (-1,)), lin) / scale + s) / xp.where(upd, d, xp.ones_like(d))
    xf[lin] = xp.where(upd, val, xp.take(xf, lin))


# -- multigrid on coefficient stencils (3-D arrays; see dcdm.kernels.reference) ----------------


def coef_rbgs_sweep(diag, couplings, x, b, scale: float, color: int) -> None:
    """One red-black Gauss-Seidel half-sweep of a coefficient stencil (in place on ``x``);
    see :func:`dcdm.kernels.reference.coef_rbgs_sweep`."""
    xp = array_namespace(x)
    upd = _parity(xp, x, color) & (diag > 0)
    new = (b / scale + _coupled_sum(xp, couplings, x)) / xp.where(upd, diag, xp.ones_like(diag))
    x[...] = xp.where(upd, new, x)


def coef_residual_restrict(diag_f, couplings_f, x_f, b_f, scale_f: float, diag_c, b_c, factors,
                           weight: float, work=None) -> None:
    """``b_c = weight * sum over children of (b_f - L_f x_f)`` where ``diag_c >= 0``, else 0,
    for a coefficient stencil (see :func:`dcdm.kernels.reference.coef_residual_restrict`)."""
    xp = array_namespace(x_f)
    r = xp.empty_like(x_f) if work is None else work
    coef_matvec(diag_f, couplings_f, x_f, r, scale_f)
    r[...] = xp.where(diag_f >= 0, b_f - r, xp.zeros_like(r))
    _restrict(xp, r, diag_c >= 0, b_c, factors, weight)


def coef_rbgs_cells(diag, couplings, x, b, scale: float, cells) -> None:
    """Gauss-Seidel update of the listed cells ``cells = (i, j, k)`` (one colour) of a
    coefficient stencil; ``O(len(cells))`` gathers, as :func:`rbgs_cells`."""
    xp = array_namespace(x)

    def divisor(lin):
        d = xp.take(xp.reshape(diag, (-1,)), lin)
        return d, d > 0

    _update_cells(xp, x, b, scale, cells, couplings, divisor)


# full sweeps as two half-sweeps (only the Numba back-end fuses them)
rbgs_pair, coef_rbgs_pair = half_sweep_pairs(rbgs_sweep, coef_rbgs_sweep)
