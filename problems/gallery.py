"""A gallery of named test problems, as pyamg's: each returns ``(A, b)``.

``A`` is the matrix-free grid operator (``A.to_csr()`` assembles it), ``b`` a
seeded right-hand side in the grid's vector layout.

Examples
--------
>>> from dcdm.problems import gallery
>>> A, b = gallery.build("smoke3d", n=16)
>>> A.shape
(4096, 4096)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import rhs as _rhs
from . import scenes
from .grid import CellType, Grid, GridLaplacian

__all__ = ["PROBLEMS", "baffles", "build", "cutcell", "poisson", "smoke", "twophase"]


def _rhs_for(A: GridLaplacian, kind: str, seed) -> np.ndarray:
    if kind == "random":
        return _rhs.random(A.grid, seed, dtype=A.dtype)
    if kind == "smooth":
        return _rhs.smooth(A.grid, seed, dtype=A.dtype)
    if kind == "ones":
        return A.grid.mask(np.ones(A.grid.size, dtype=A.dtype))
    raise ValueError(f"rhs must be 'random', 'smooth' or 'ones', got {kind!r}")


def poisson(shape: Sequence[int], *, rhs: str = "random", seed: int | None = 0,
            dtype=np.float64) -> tuple[GridLaplacian, np.ndarray]:
    """The Dirichlet Poisson problem on a box: every cell FLUID, ``p = 0`` outside."""
    shape = tuple(int(n) for n in shape)
    g = Grid(np.full(shape, CellType.FLUID, dtype=np.int8), boundary=CellType.AIR)
    A = g.laplacian(dtype)
    return A, _rhs_for(A, rhs, seed)


def smoke(shape: Sequence[int], *, obstacles: int = 8, open_top: bool = True,
          rhs: str = "random", seed: int | None = 0,
          dtype=np.float64) -> tuple[GridLaplacian, np.ndarray]:
    """The seeded smoke tank of :func:`dcdm.problems.scenes.smoke` with a right-hand side."""
    g = scenes.smoke(shape, obstacles=obstacles, seed=seed, open_top=open_top)
    A = g.laplacian(dtype)
    return A, _rhs_for(A, rhs, seed)


def baffles(shape: Sequence[int], *, walls: int = 3, opening: int = 2, open_top: bool = True,
            rhs: str = "random", seed: int | None = 0,
            dtype=np.float64) -> tuple[GridLaplacian, np.ndarray]:
    """The thin-wall tank of :func:`dcdm.problems.scenes.baffles` with a right-hand side."""
    g = scenes.baffles(shape, walls=walls, opening=opening, open_top=open_top)
    A = g.laplacian(dtype)
    return A, _rhs_for(A, rhs, seed)


def twophase(shape: Sequence[int], *, ratio: float = 1000.0, bubbles: int = 8,
             open_top: bool = True, rhs: str = "random", seed: int | None = 0,
             dtype=np.float64) -> tuple[GridLaplacian, np.ndarray]:
    """The bubbly tank of :func:`dcdm.problems.scenes.two_phase` (density ratio ``ratio``,
    face weights ``1 / rho``) with a right-hand side."""
    g = scenes.two_phase(shape, ratio=ratio, bubbles=bubbles, seed=seed, open_top=open_top)
    A = g.laplacian(dtype)
    return A, _rhs_for(A, rhs, seed)


def cutcell(shape: Sequence[int], *, obstacles: int = 8, open_top: bool = True,
            rhs: str = "random", seed: int | None = 0,
            dtype=np.float64) -> tuple[GridLaplacian, np.ndarray]:
    """The tank of :func:`dcdm.problems.scenes.cut_cells` (solid spheres cut into the grid by
    open face fractions) with a right-hand side."""
    g = scenes.cut_cells(shape, obstacles=obstacles, seed=seed, open_top=open_top)
    A = g.laplacian(dtype)
    return A, _rhs_for(A, rhs, seed)


PROBLEMS = {
    "baffles2d": lambda n, **kw: baffles((n, n), **kw),
    "baffles3d": lambda n, **kw: baffles((n, n, n), **kw),
    "cutcell2d": lambda n, **kw: cutcell((n, n), **kw),
    "cutcell3d": lambda n, **kw: cutcell((n, n, n), **kw),
    "poisson2d": lambda n, **kw: poisson((n, n), **kw),
    "poisson3d": lambda n, **kw: poisson((n, n, n), **kw),
    "smoke2d": lambda n, **kw: smoke((n, n), **kw),
    "smoke3d": lambda n, **kw: smoke((n, n, n), **kw),
    "twophase2d": lambda n, **kw: twophase((n, n), **kw),
    "twophase3d": lambda n, **kw: twophase((n, n, n), **kw),
}


def build(name: str, n: int, **kwargs) -> tuple[GridLaplacian, np.ndarray]:
    """Build a named problem of ``n`` cells per axis (names: ``sorted(PROBLEMS)``)."""
    if name not in PROBLEMS:
        raise ValueError(f"problem={name!r} is not known; choose one of {sorted(PROBLEMS)}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 4:
        raise ValueError(f"n must be an integer >= 4, got {n!r}")
    return PROBLEMS[name](int(n), **kwargs)
