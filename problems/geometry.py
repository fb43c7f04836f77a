"""Solid geometry rasterised onto flag grids: spheres, boxes and their unions.

Coordinates are in cell units: cell ``(i, j, k)`` covers ``[i, i+1) x [j, j+1)
x [k, k+1)`` and its centre is ``(i + 0.5, j + 0.5, k + 0.5)``. A cell belongs to
a shape when its centre does. Shapes combine with ``|`` and move with
:meth:`Shape.translated` (for obstacles on a prescribed path).

Examples
--------
>>> from dcdm.problems.geometry import Box, Sphere
>>> s = Sphere((4, 4), 2) | Box((0, 0), (8, 1))
>>> int(s.mask((8, 8)).sum())
20
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .grid import CellType

__all__ = ["Box", "Shape", "Sphere", "Union", "paint"]


def _centres(shape: Sequence[int]) -> list[np.ndarray]:
    """Open (broadcastable) cell-centre coordinates for a grid shape."""
    return list(np.ogrid[tuple(slice(0.5, n + 0.5, 1.0) for n in shape)])


class Shape:
    """Base class: a region of space that can be rasterised to a boolean mask."""

    def mask(self, shape: Sequence[int]) -> np.ndarray:
        """Boolean array of the cells whose centres lie inside."""
        raise NotImplementedError

    def translated(self, offset: Sequence[float]) -> Shape:
        """The same shape moved by ``offset`` (cell units)."""
        raise NotImplementedError

    def __or__(self, other: Shape) -> Union:
        return Union(self, other)


def _vec(v, name: str) -> tuple[float, ...]:
    a = np.asarray(v, dtype=float).reshape(-1)
    if a.size not in (2, 3) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be 2 or 3 finite coordinates, got {v!r}")
    return tuple(float(t) for t in a)


def _offset(offset, ndim: int) -> tuple[float, ...]:
    off = _vec(offset, "offset")
    if len(off) != ndim:
        raise ValueError(
            f"offset must have {ndim} coordinates for a {ndim}-D shape, got {offset!r}"
        )
    return off


def _check_dim(ndim_shape: int, ndim_grid: int, what: str) -> None:
    if ndim_shape != ndim_grid:
        raise ValueError(f"a {ndim_shape}-D {what} cannot be rasterised on a {ndim_grid}-D grid")


@dataclass(frozen=True)
class Sphere(Shape):
    """Ball (disc in 2-D) of ``radius`` around ``center``."""

    center: tuple[float, ...]
    radius: float

    def __post_init__(self):
        object.__setattr__(self, "center", _vec(self.center, "center"))
        if not (np.isfinite(self.radius) and self.radius > 0):
            raise ValueError(f"radius must be positive, got {self.radius}")

    def mask(self, shape):
        _check_dim(len(self.center), len(shape), "sphere")
        d2 = sum((c - x0) ** 2 for c, x0 in zip(_centres(shape), self.center, strict=True))
        return np.broadcast_to(d2 <= self.radius**2, tuple(shape)).copy()

    def translated(self, offset):
        off = _offset(offset, len(self.center))
        return Sphere(tuple(c + o for c, o in zip(self.center, off, strict=True)), self.radius)


@dataclass(frozen=True)
class Box(Shape):
    """Axis-aligned box ``lo <= centre < hi``."""

    lo: tuple[float, ...]
    hi: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "lo", _vec(self.lo, "lo"))
        object.__setattr__(self, "hi", _vec(self.hi, "hi"))
        if len(self.lo) != len(self.hi):
            raise ValueError(
                f"Box lo and hi must have the same number of coordinates, got lo={self.lo}, "
                f"hi={self.hi}"
            )
        if any(h <= l for l, h in zip(self.lo, self.hi, strict=True)):
            raise ValueError(f"Box needs lo < hi per axis, got lo={self.lo}, hi={self.hi}")

    def mask(self, shape):
        _check_dim(len(self.lo), len(shape), "box")
        m = np.ones(tuple(shape), dtype=bool)
        for c, l, h in zip(_centres(shape), self.lo, self.hi, strict=True):
            m &= (c >= l) & (c < h)
        return m

    def translated(self, offset):
        off = _offset(offset, len(self.lo))
        return Box(tuple(a + o for a, o in zip(self.lo, off, strict=True)),
                   tuple(a + o for a, o in zip(self.hi, off, strict=True)))


class Union(Shape):
    """The union of several shapes."""

    def __init__(self, *shapes: Shape):
        if not shapes:
            raise ValueError("Union needs at least one shape")
        flat: list[Shape] = []
        for s in shapes:
            if not isinstance(s, Shape):
                raise TypeError(f"Union takes Shape objects, got {type(s).__name__}")
            flat.extend(s.shapes if isinstance(s, Union) else [s])
        self.shapes = tuple(flat)

    def mask(self, shape):
        m = np.zeros(tuple(shape), dtype=bool)
        for s in self.shapes:
            m |= s.mask(shape)
        return m

    def translated(self, offset):
        return Union(*(s.translated(offset) for s in self.shapes))

    def __repr__(self) -> str:
        return f"Union{self.shapes!r}"


def paint(flags: np.ndarray, shape: Shape, value: CellType = CellType.SOLID) -> np.ndarray:
    """Return a copy of ``flags`` with the cells inside ``shape`` set to ``value``."""
    out = np.array(flags, dtype=np.int8, copy=True)
    out[shape.mask(out.shape)] = int(value)
    return out
