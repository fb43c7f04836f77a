"""Solid obstacles of the smoke solver: static or moving on a prescribed path.

An :class:`Obstacle` is a :class:`~dcdm.problems.geometry.Shape` (cell units,
as in :mod:`dcdm.problems.geometry`) plus a path: a function of time giving the
shape's displacement in cell units. At every step the obstacles are rasterised
onto the flag grid (their cells become SOLID) and each one's velocity, the
derivative of its path, is imposed on the faces of its cells: the fluid sees it
as the normal velocity of the wall (the solid-velocity boundary condition of the
pressure projection) and advection carries it inside the solid.

Examples
--------
>>> from dcdm.problems.geometry import Sphere
>>> from dcdm.problems.smoke.obstacles import Obstacle, oscillate
>>> ob = Obstacle(Sphere((8, 8), 2), path=oscillate(amplitude=(4, 0), period=2.0))
>>> ob.offset(0.5)
(4.0, 0.0)
>>> [round(v, 6) for v in ob.velocity(0.0, spacing=1.0)]
[12.566371, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import Shape
from .state import face_shape

__all__ = ["Obstacle", "circle", "oscillate", "rasterize"]

Path = Callable[[float], Sequence[float]]


def oscillate(amplitude: Sequence[float], period: float, phase: float = 0.0) -> Path:
    """Path ``amplitude * sin(2 pi t / period + phase)`` (cell units).

    Parameters
    ----------
    amplitude : sequence of float
        Peak displacement per axis (cell units).
    period : float
        Seconds per cycle.
    phase : float
        Radians at ``t = 0``.
    """
    amp = tuple(float(a) for a in amplitude)
    if not (np.isfinite(period) and period > 0):
        raise ValueError(f"period must be a positive number of seconds, got {period}")
    w = 2.0 * math.pi / period
    return lambda t: tuple(a * math.sin(w * t + phase) for a in amp)


def circle(radius: float, period: float, axes: tuple[int, int] = (0, 2), ndim: int = 3) -> Path:
    """Path on a circle of ``radius`` (cell units) in the plane of ``axes``, starting at 0."""
    if not (np.isfinite(period) and period > 0):
        raise ValueError(f"period must be a positive number of seconds, got {period}")
    if len(set(axes)) != 2 or not all(0 <= a < ndim for a in axes):
        raise ValueError(f"axes must be two different axes of a {ndim}-D grid, got {axes}")
    w = 2.0 * math.pi / period

    def path(t: float) -> tuple[float, ...]:
        off = [0.0] * ndim
        off[axes[0]] = radius * (math.cos(w * t) - 1.0)
        off[axes[1]] = radius * math.sin(w * t)
        return tuple(off)

    return path


@dataclass(frozen=True)
class Obstacle:
    """A solid shape, static (``path=None``) or moving along ``path``.

    Parameters
    ----------
    shape : Shape
        Where the solid is at displacement 0 (cell units).
    path : callable, optional
        ``path(t) -> displacement`` in cell units; ``None`` for a static solid.
    """

    shape: Shape
    path: Path | None = None

    def __post_init__(self):
        if not isinstance(self.shape, Shape):
            raise TypeError(f"shape must be a dcdm.problems.geometry Shape, got "
                            f"{type(self.shape).__name__}")
        if self.path is not None and not callable(self.path):
            raise TypeError(f"path must be a callable t -> displacement or None, got "
                            f"{type(self.path).__name__}")

    @property
    def moving(self) -> bool:
        return self.path is not None

    def offset(self, t: float) -> tuple[float, ...]:
        """Displacement at time ``t`` (cell units); ``()`` for a static solid."""
        if self.path is None:
            return ()
        return tuple(float(v) for v in self.path(t))

    def velocity(self, t: float, spacing: float) -> tuple[float, ...]:
        """Velocity at ``t``, domain units per second (central difference of the path); ``()``
        for a static solid."""
        if self.path is None:
            return ()
        eps = 1e-6
        lo, hi = self.path(t - eps), self.path(t + eps)
        return tuple((b - a) / (2 * eps) * spacing for a, b in zip(lo, hi, strict=True))

    def mask(self, grid_shape: Sequence[int], t: float) -> np.ndarray:
        """Boolean cells covered at time ``t``."""
        shape = self.shape if self.path is None else self.shape.translated(self.offset(t))
        return shape.mask(tuple(grid_shape))


def rasterize(obstacles: Sequence[Obstacle], grid_shape: Sequence[int], t: float,
              spacing: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """The solid cells at time ``t`` and the solid velocity on every face.

    Returns
    -------
    solid : ndarray of bool
        Cells covered by any obstacle.
    face_velocity : list of ndarray
        Per axis, on the face grid: the normal velocity of the obstacle a face
        touches (a face with a cell of a moving obstacle on either side), else 0.
        Later obstacles win where two touch the same face.
    """
    grid_shape = tuple(int(n) for n in grid_shape)
    ndim = len(grid_shape)
    solid = np.zeros(grid_shape, dtype=bool)
    face_velocity = [np.zeros(face_shape(grid_shape, a)) for a in range(ndim)]
    for ob in obstacles:
        m = ob.mask(grid_shape, t)
        solid |= m
        if not ob.moving or not m.any():
            continue
        v = ob.velocity(t, spacing)
        for a in range(ndim):
            pad = [(0, 0)] * ndim
            pad[a] = (1, 1)
            mp = np.pad(m, pad)
            lo = [slice(None)] * ndim
            hi = [slice(None)] * ndim
            lo[a] = slice(0, -1)
            hi[a] = slice(1, None)
            touches = mp[tuple(lo)] | mp[tuple(hi)]
            face_velocity[a][touches] = v[a]
    return solid, face_velocity
