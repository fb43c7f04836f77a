"""Semi-Lagrangian advection on the MAC grid (Stam, "Stable Fluids", SIGGRAPH 1999).

Each sample point ``x`` of a field (a face of a velocity component, or a cell
centre) is traced back through the velocity field with a midpoint (RK2) step,

    x_mid  = x - (dt / 2h) u(x)
    x_back = x - (dt / h) u(x_mid)

and the field's new value there is its old value at ``x_back``, by
(bi/tri)linear interpolation clamped to the field's sample points, so no value
leaves the range of the old ones (unconditionally stable). Velocities are
interpolated from their own faces (component ``a`` sits at offset 0 along axis
``a`` and 0.5 along the others, in cell units).

Two back-ends compute the same numbers: vectorised NumPy (the oracle) and a
Numba kernel (one fused pass per field, threads over axis 0), picked as
:mod:`dcdm.kernels` picks its back-end (Numba when it imports, unless
``DCDM_KERNELS=numpy``).

Examples
--------
>>> import numpy as np
>>> from dcdm.problems.smoke.advect import advect_scalar
>>> q = np.zeros((6, 4)); q[2, :] = 1.0
>>> u = [np.ones((7, 4)), np.zeros((6, 5))]        # one cell per unit time to +axis 0
>>> advect_scalar(q, u, dt=1.0, spacing=1.0)[3].tolist()
[1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from types import ModuleType

import numpy as np

from dcdm.kernels.optional import maybe, require

__all__ = ["advect_scalar", "advect_velocity", "available", "sample"]

BACKENDS = ("numpy", "numba")


@functools.cache
def _numba() -> ModuleType | None:
    return maybe(f"{__package__}._advect_numba")  # numba is an optional extra


def available() -> list[str]:
    """The advection back-ends that import on this machine."""
    return ["numpy"] + (["numba"] if _numba() is not None else [])


def _backend(backend: str | None) -> str:
    if backend is None:
        use_numba = os.environ.get("DCDM_KERNELS", "") != "numpy" and _numba() is not None
        return "numba" if use_numba else "numpy"
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not an advection back-end; choose one of "
                         f"{BACKENDS}")
    if backend == "numba" and _numba() is None:
        require("numba", "the numba advection back-end")
    return backend


def _face_offsets(ndim: int, axis: int | None) -> tuple[float, ...]:
    """Sample offsets (cell units) of a face component (``axis``) or a cell field (None)."""
    return tuple(0.0 if a == axis else 0.5 for a in range(ndim))


def sample(q: np.ndarray, offsets: Sequence[float], points: Sequence[np.ndarray]) -> np.ndarray:
    """Linear interpolation of ``q`` (sample ``i`` at ``i + offsets``) at ``points``, clamped.

    Parameters
    ----------
    q : ndarray, 2-D or 3-D
    offsets : sequence of float
        Position of sample ``0`` per axis (cell units).
    points : sequence of ndarray
        One coordinate array per axis (broadcastable), cell units.
    """
    idx = []
    for n, off, x in zip(q.shape, offsets, points, strict=True):
        s = np.clip(np.asarray(x, dtype=np.float64) - off, 0.0, n - 1.0)
        i0 = np.minimum(np.floor(s).astype(np.intp), max(n - 2, 0))
        idx.append((i0, np.minimum(i0 + 1, n - 1), s - i0))

    def lerp(prefix: tuple, axis: int):
        # innermost axis first, the same order as the Numba kernel
        if axis == q.ndim:
            return q[prefix]
        i0, i1, t = idx[axis]
        return lerp((*prefix, i0), axis + 1) * (1.0 - t) + lerp((*prefix, i1), axis + 1) * t

    return lerp((), 0)


def _velocity_at(velocity: Sequence[np.ndarray], points: Sequence[np.ndarray]) -> list:
    ndim = len(velocity)
    return [sample(u, _face_offsets(ndim, a), points) for a, u in enumerate(velocity)]


def _advect_numpy(q, offsets, velocity, c):
    pts = [np.arange(n, dtype=np.float64).reshape([-1 if b == a else 1 for b in range(q.ndim)])
           + off for a, (n, off) in enumerate(zip(q.shape, offsets, strict=True))]
    v = _velocity_at(velocity, pts)
    mid = [x - 0.5 * c * va for x, va in zip(pts, v, strict=True)]
    v = _velocity_at(velocity, mid)
    back = [x - c * va for x, va in zip(pts, v, strict=True)]
    return np.broadcast_to(sample(q, offsets, back), q.shape).copy()


def _advect_numba(q, offsets, velocity, c):
    mod = _numba()
    if q.ndim == 2:  # run as n0 x n1 x 1 with a zero third component
        q3 = q[..., None]
        u = [velocity[0][..., None], velocity[1][..., None], np.zeros((1, 1, 1))]
        offs = (*offsets, 0.5)
    else:
        q3, u, offs = q, list(velocity), tuple(offsets)
    u = [np.ascontiguousarray(v, dtype=np.float64) for v in u]
    q3 = np.ascontiguousarray(q3, dtype=np.float64)
    out = np.empty_like(q3)
    mod.advect(out.size)(q3, *(float(o) for o in offs), *u, float(c), out)
    return out.reshape(q.shape)


def _check(velocity: Sequence[np.ndarray], dt: float, spacing: float) -> None:
    if not (np.isfinite(dt) and dt >= 0):
        raise ValueError(f"dt must be a finite number >= 0, got {dt}")
    if not (np.isfinite(spacing) and spacing > 0):
        raise ValueError(f"spacing must be a positive finite number, got {spacing}")
    if len(velocity) not in (2, 3):
        raise ValueError(f"velocity must have 2 or 3 components, got {len(velocity)}")


def advect_scalar(q: np.ndarray, velocity: Sequence[np.ndarray], dt: float, spacing: float,
                  backend: str | None = None) -> np.ndarray:
    """Advect a cell-centred field ``q`` through the face ``velocity`` for ``dt``.

    Parameters
    ----------
    q : ndarray
        Cell field (e.g. smoke density).
    velocity : sequence of ndarray
        Face velocities (see :mod:`dcdm.problems.smoke.state`), domain units per second.
    dt, spacing : float
        Time step (s) and cell size (domain units).
    backend : {"numpy", "numba"}, optional
        Default: Numba when available.

    Returns
    -------
    ndarray
        The advected field (a new array).
    """
    _check(velocity, dt, spacing)
    if q.ndim != len(velocity):
        raise ValueError(f"q is {q.ndim}-D but velocity has {len(velocity)} components")
    fn = _advect_numba if _backend(backend) == "numba" else _advect_numpy
    return fn(q, _face_offsets(q.ndim, None), velocity, dt / spacing)


def advect_velocity(velocity: Sequence[np.ndarray], dt: float, spacing: float,
                    backend: str | None = None) -> list[np.ndarray]:
    """Advect the face velocity through itself (every component by the old field).

    Returns
    -------
    list of ndarray
        New face velocities (the input is not modified).
    """
    _check(velocity, dt, spacing)
    fn = _advect_numba if _backend(backend) == "numba" else _advect_numpy
    ndim = len(velocity)
    return [fn(u, _face_offsets(ndim, a), velocity, dt / spacing)
            for a, u in enumerate(velocity)]
