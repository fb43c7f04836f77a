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

The stencil arrays (``fp``, ``code``) must live in the namespace and on the
device of ``x``: :meth:`dcdm.problems.Grid.kernel_arrays` converts them once (the
edge transfers are :mod:`dcdm.kernels.arrays`).

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

__all__ = [
    "axpy",
    "cg_update",
    "dot",
    "laplacian_matvec",
    "laplacian_matvec_fluid",
    "prolong_add",
    "rbgs_cells",
    "rbgs_sweep",
    "residual_restrict",
    "xpby",
]


# -- stencil -----------------------------------------------------------------------------------


def _neighbour_sum(xp, x):
    """Sum of the 2*ndim face neighbours of every cell, zero outside the array."""
    acc = xp.zeros_like(x)
    for axis in range(x.ndim):
        if x.shape[axis] < 2:
            continue
        lo = [slice(None)] * x.ndim
        hi = [slice(None)] * x.ndim
        lo[axis] = slice(0, -1)
        hi[axis] = slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        acc[hi] += x[lo]
        acc[lo] += x[hi]
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
    padded = tuple(f * n for f, n in zip(factors, b_c.shape, strict=True))
    if padded != tuple(r.shape):
        rp = xp.zeros(padded, dtype=r.dtype, device=device(r))
        rp[tuple(slice(0, n) for n in r.shape)] = r
    else:
        rp = r
    split = (b_c.shape[0], factors[0], b_c.shape[1], factors[1], b_c.shape[2], factors[2])
    blocks = xp.sum(xp.reshape(rp, split), axis=(1, 3, 5))
    b_c[...] = xp.where(code_c >= 0, weight * blocks, xp.zeros_like(blocks))


def prolong_add(x_c, code_f, x_f, factors) -> None:
    """``x_f += P x_c``: every FLUID fine cell takes its parent's value."""
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
    ii, jj, kk = cells
    if ii.shape[0] == 0:
        return
    n0, n1, n2 = x.shape
    strides = (n1 * n2, n2, 1)
    lin = ii * strides[0] + jj * strides[1] + kk
    xf = xp.reshape(x, (-1,))
    s = xp.zeros(ii.shape, dtype=x.dtype, device=device(x))
    for idx, n, stride in ((ii, n0, strides[0]), (jj, n1, strides[1]), (kk, n2, strides[2])):
        for step in (-1, 1):
            ok = (idx + step >= 0) & (idx + step < n)
            nb = xp.where(ok, lin + step * stride, lin)
            s += xp.where(ok, xp.take(xf, nb), xp.zeros_like(s))
    c = xp.take(xp.reshape(code, (-1,)), lin)
    d = _diag(xp, c, None if shift is None else xp.take(xp.reshape(shift, (-1,)), lin),
              x.dtype)
    upd = (c >= 0) & (d > 0)
    val = (xp.take(xp.reshape(b, (-1,)), lin) / scale + s) / xp.where(upd, d, xp.ones_like(d))
    xf[lin] = xp.where(upd, val, xp.take(xf, lin))
