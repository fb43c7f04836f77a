"""Right-hand sides for grid problems: random, smooth (low-frequency) and manufactured.

All return 1-D vectors in the grid's vector layout (C-order ravel), zero on
non-FLUID cells. For singular grids (FLUID regions without AIR) the random and
smooth fields are projected onto the range of the operator, so they are
consistent.

Examples
--------
>>> from dcdm.problems import rhs, scenes
>>> g = scenes.tank((16, 16))
>>> A = g.laplacian()
>>> b, x = rhs.manufactured(A, seed=0)
>>> bool(abs(A.matvec(x) - b).max() < 1e-12)
True
"""

from __future__ import annotations

import numpy as np

from .grid import Grid

__all__ = ["manufactured", "random", "smooth"]


def _finish(grid: Grid, field: np.ndarray, dtype) -> np.ndarray:
    v = np.where(grid.fluid, field, 0.0).reshape(-1).astype(dtype)
    if grid.nullspace is not None:
        grid.nullspace.project(v, out=v)
        v[~grid.fluid.reshape(-1)] = 0
    return v


def random(grid: Grid, seed: int | None = 0, dtype=np.float64) -> np.ndarray:
    """Independent standard-normal values on FLUID cells (white noise: every frequency)."""
    rng = np.random.default_rng(seed)
    return _finish(grid, rng.standard_normal(grid.shape), dtype)


def smooth(grid: Grid, seed: int | None = 0, modes: int = 4, dtype=np.float64) -> np.ndarray:
    """A random sum of low-frequency cosines (wavenumbers ``0..modes`` per axis)."""
    if modes < 1:
        raise ValueError(f"modes must be >= 1, got {modes}")
    rng = np.random.default_rng(seed)
    coords = np.ogrid[tuple(slice(0.5, n + 0.5, 1.0) for n in grid.shape)]
    field = np.zeros(grid.shape)
    for _ in range(2 * modes):
        k = rng.integers(0, modes + 1, size=grid.ndim)
        phase = rng.uniform(0, 2 * np.pi, size=grid.ndim)
        term = np.ones(grid.shape)
        for c, kk, ph, n in zip(coords, k, phase, grid.shape, strict=True):
            term = term * np.cos(np.pi * kk * c / n + ph)
        field += rng.standard_normal() * term
    return _finish(grid, field, dtype)


def manufactured(A, seed: int | None = 0, kind: str = "smooth") -> tuple[np.ndarray, np.ndarray]:
    """A problem with a known answer: returns ``(b, x)`` with ``b = A x``.

    Parameters
    ----------
    A : GridLaplacian
        The grid operator.
    kind : {"smooth", "random"}
        The field ``x`` is drawn from.
    """
    grid = A.grid
    if kind == "smooth":
        x = smooth(grid, seed, dtype=A.dtype)
    elif kind == "random":
        x = random(grid, seed, dtype=A.dtype)
    else:
        raise ValueError(f"kind must be 'smooth' or 'random', got {kind!r}")
    return A.matvec(x), x
