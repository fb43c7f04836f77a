"""Flag grids, their pressure operators, geometry, scenes, right-hand sides, matrix I/O, and
the optimization test problems of :mod:`dcdm.optimize` (:mod:`.optimization`)."""

from . import gallery, geometry, io, optimization, rhs, scenes
from .geometry import Box, Sphere, Union
from .grid import CellType, Grid, GridLaplacian, ShiftedGridLaplacian

__all__ = [
    "Box",
    "CellType",
    "Grid",
    "GridLaplacian",
    "ShiftedGridLaplacian",
    "Sphere",
    "Union",
    "gallery",
    "geometry",
    "io",
    "optimization",
    "rhs",
    "scenes",
]
