"""Flag grids, their pressure operators, geometry, scenes, right-hand sides and matrix I/O."""

from . import gallery, geometry, io, rhs, scenes
from .geometry import Box, Sphere, Union
from .grid import CellType, Grid, GridLaplacian

__all__ = [
    "Box",
    "CellType",
    "Grid",
    "GridLaplacian",
    "Sphere",
    "Union",
    "gallery",
    "geometry",
    "io",
    "rhs",
    "scenes",
]
