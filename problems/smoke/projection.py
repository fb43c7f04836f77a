"""Pressure projection: make the velocity divergence-free on the FLUID cells.

Discretisation and scaling (the documented contract)
----------------------------------------------------
With face classes as in :mod:`dcdm.problems.smoke.state`, the projected
velocity is ``u = u* - (dt / rho) grad p`` on FLUID faces (``p = 0`` in AIR) and
the solid's velocity on SOLID faces. Its divergence on a FLUID cell ``c`` is

    div(u)_c = div(u*)_c + (dt / rho) (L p)_c,

where ``L`` is *exactly* the grid operator :meth:`dcdm.problems.Grid.laplacian`
of the step's flags (rows ``(d_c p_c - sum_{FLUID n} p_n) / h**2``). So the
system solved is

    A p = b,   A = Grid(flags, spacing=h).laplacian(),
               b_c = -(rho / dt) div(u*)_c on FLUID cells, 0 elsewhere,

with ``p`` the physical pressure. After the solve the divergence left on the
FLUID cells is ``-(dt / rho) (b - A p)``: the solver's own residual, so
``||div u||_2 <= rtol ||div u*||_2`` whenever the solve converged. For a closed
box (no AIR) ``A`` is singular; ``b`` is consistent (walls carry no net flux)
up to rounding, and :func:`dcdm.solve` projects its constant component.

Examples
--------
>>> import numpy as np
>>> from dcdm.problems.smoke.projection import project
>>> from dcdm.problems.smoke.state import SmokeState, divergence
>>> s = SmokeState.empty((16, 16), spacing=1 / 16)
>>> s.flags[:, -1] = 2                                       # open (AIR) top
>>> s.velocity[1][6:10, 1:15] = 1.0                           # an updraft
>>> proj = project(s.velocity, s.flags, spacing=s.spacing, dt=0.01, rtol=1e-10)
>>> proj.result.converged, bool(proj.max_div_after < 1e-8 * proj.max_div_before)
(True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcdm.solvers.result import SolveResult
from dcdm.solvers.solve import solve

from ..grid import CellType, Grid
from .state import (
    SOLID_FACE,
    classify_faces,
    divergence,
    extrapolate_open,
    subtract_gradient,
)

__all__ = ["Projection", "assemble", "enforce_solid", "project", "save_system"]


@dataclass(frozen=True)
class Projection:
    """What one projection produced.

    Attributes
    ----------
    grid : Grid
        The step's flag grid (its ``laplacian()`` is ``A``).
    rhs : ndarray
        ``b`` (1-D, the grid's vector layout).
    pressure : ndarray
        The solution ``p``, grid-shaped (0 off FLUID cells).
    result : SolveResult
        What :func:`dcdm.solve` returned.
    max_div_before, max_div_after : float
        ``max |div u|`` over FLUID cells before and after (1/s).
    """

    grid: Grid
    rhs: np.ndarray
    pressure: np.ndarray
    result: SolveResult
    max_div_before: float
    max_div_after: float


def enforce_solid(velocity: Sequence[np.ndarray], faces: Sequence[np.ndarray],
                  solid_velocity: Sequence[np.ndarray] | None = None) -> None:
    """Set every SOLID face to the solid's normal velocity (0 without ``solid_velocity``)."""
    for a, (u, cls) in enumerate(zip(velocity, faces, strict=True)):
        m = cls == SOLID_FACE
        u[m] = 0.0 if solid_velocity is None else solid_velocity[a][m]


def assemble(flags: np.ndarray, velocity: Sequence[np.ndarray], spacing: float, dt: float,
             rho: float = 1.0, boundary: CellType = CellType.SOLID) -> tuple[Grid, np.ndarray]:
    """The step's pressure system: the grid and ``b = -(rho / dt) div(u*)`` on FLUID cells.

    ``velocity`` must already carry the solid velocities on its SOLID faces
    (:func:`enforce_solid`). Returns ``(grid, b)``; ``A = grid.laplacian()``.
    """
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number of seconds, got {dt}")
    if not (np.isfinite(rho) and rho > 0):
        raise ValueError(f"rho must be a positive finite density, got {rho}")
    grid = Grid(flags, spacing=spacing, boundary=boundary)
    for a, u in enumerate(velocity):
        expect = tuple(n + (b == a) for b, n in enumerate(grid.shape))
        if u.shape != expect:
            raise ValueError(f"velocity component {a} has shape {u.shape}; on a grid of shape "
                             f"{grid.shape} its faces have shape {expect}")
    div = divergence(velocity, spacing)
    b = np.where(grid.fluid, (-rho / dt) * div, 0.0).reshape(-1)
    return grid, b


def _max_div(velocity, spacing, fluid) -> float:
    d = divergence(velocity, spacing)[fluid]
    return float(np.abs(d).max()) if d.size else 0.0


def project(
    velocity: list[np.ndarray],
    flags: np.ndarray,
    *,
    spacing: float,
    dt: float,
    rho: float = 1.0,
    boundary: CellType = CellType.SOLID,
    solid_velocity: Sequence[np.ndarray] | None = None,
    x0: np.ndarray | None = None,
    method: str = "cg",
    M: Any = "auto",
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    **options: Any,
) -> Projection:
    """Project ``velocity`` onto divergence-free fields, in place.

    Parameters
    ----------
    velocity : list of ndarray
        Face velocities (modified in place: solid faces set, gradient
        subtracted, open faces extrapolated).
    flags : ndarray
        Cell codes of the step (obstacles at their new position).
    spacing, dt, rho : float
        Cell size (domain units), time step (s), fluid density.
    boundary : CellType
        Beyond the domain (``SOLID``: closed walls).
    solid_velocity : list of ndarray, optional
        Per-face solid velocity (see :func:`dcdm.problems.smoke.obstacles.rasterize`).
    x0 : ndarray, optional
        Initial guess of ``p`` (grid-shaped or 1-D), e.g. the previous step's pressure.
    method, M, rtol, atol, maxiter, **options
        Passed to :func:`dcdm.solve`.

    Returns
    -------
    Projection
    """
    faces = classify_faces(np.asarray(flags), boundary)
    enforce_solid(velocity, faces, solid_velocity)
    grid, b = assemble(flags, velocity, spacing, dt, rho, boundary)
    max_before = _max_div(velocity, spacing, grid.fluid)
    A = grid.laplacian()
    if x0 is not None:
        x0 = grid.mask(np.asarray(x0, dtype=np.float64).reshape(grid.shape)).reshape(-1)
    res = solve(A, b, method=method, M=M, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter,
               **options)
    p = grid.mask(np.asarray(res.x).reshape(grid.shape))
    subtract_gradient(velocity, p, faces, dt / (rho * spacing))
    extrapolate_open(velocity, faces)
    return Projection(grid, b, p, res, max_before, _max_div(velocity, spacing, grid.fluid))


def save_system(path, projection: Projection) -> None:
    """Write a projection's system as ``.npz``: flags, ``b`` and the simulation's ``p`` as ``x``.

    The file is what :func:`dcdm.problems.io.load` and ``dcdm solve FILE.npz`` read.
    """
    from .. import io

    io.save(path, projection.grid.laplacian(), projection.rhs,
            x=projection.pressure.reshape(-1))
