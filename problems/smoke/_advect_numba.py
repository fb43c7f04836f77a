"""Numba kernel of :mod:`dcdm.problems.smoke.advect`: semi-Lagrangian advection, one pass.

Computes exactly what :func:`dcdm.problems.smoke.advect._advect_numpy` computes
(the tests use that as the oracle). Works on 3-D arrays; a 2-D field runs as an
``n0 x n1 x 1`` field with a zero third velocity component. Importing this
module needs numba; :mod:`.advect` imports it lazily.
"""

from __future__ import annotations

import numba as nb

from dcdm.kernels._jit import kernel

__all__ = ["advect"]


@nb.njit(inline="always")
def _axis(x, off, n):
    """Clamped linear-interpolation index pair and weight along one axis."""
    s = x - off
    if s < 0.0:
        s = 0.0
    if s > n - 1.0:
        s = n - 1.0
    i0 = int(s)  # s >= 0: truncation is floor
    if i0 > n - 2:
        i0 = max(n - 2, 0)
    i1 = min(i0 + 1, n - 1)
    return i0, i1, s - i0


@nb.njit(inline="always")
def _sample(q, o0, o1, o2, x0, x1, x2):
    """Trilinear interpolation of ``q`` (sample ``i`` at ``i + o``) at point ``x``, clamped."""
    i0, i1, t0 = _axis(x0, o0, q.shape[0])
    j0, j1, t1 = _axis(x1, o1, q.shape[1])
    k0, k1, t2 = _axis(x2, o2, q.shape[2])
    c00 = q[i0, j0, k0] * (1.0 - t2) + q[i0, j0, k1] * t2
    c01 = q[i0, j1, k0] * (1.0 - t2) + q[i0, j1, k1] * t2
    c10 = q[i1, j0, k0] * (1.0 - t2) + q[i1, j0, k1] * t2
    c11 = q[i1, j1, k0] * (1.0 - t2) + q[i1, j1, k1] * t2
    c0 = c00 * (1.0 - t1) + c01 * t1
    c1 = c10 * (1.0 - t1) + c11 * t1
    return c0 * (1.0 - t0) + c1 * t0


@nb.njit(inline="always")
def _velocity(u0, u1, u2, x0, x1, x2):
    return (_sample(u0, 0.0, 0.5, 0.5, x0, x1, x2),
            _sample(u1, 0.5, 0.0, 0.5, x0, x1, x2),
            _sample(u2, 0.5, 0.5, 0.0, x0, x1, x2))


@kernel
def advect(q, o0, o1, o2, u0, u1, u2, c, out):
    """``out[i] = q(x_i - c u(x_mid))``, RK2 (midpoint) back-trace; ``c = dt / h``.

    ``q`` and ``out`` sample the point ``i + o`` of cell units; ``u0, u1, u2``
    are the face velocities (component ``a`` at offset 0 along axis ``a`` and
    0.5 along the others).
    """
    n0, n1, n2 = out.shape
    for i in nb.prange(n0):
        for j in range(n1):
            for k in range(n2):
                x0, x1, x2 = i + o0, j + o1, k + o2
                v0, v1, v2 = _velocity(u0, u1, u2, x0, x1, x2)
                h = 0.5 * c
                v0, v1, v2 = _velocity(u0, u1, u2, x0 - h * v0, x1 - h * v1, x2 - h * v2)
                out[i, j, k] = _sample(q, o0, o1, o2, x0 - c * v0, x1 - c * v1, x2 - c * v2)
