"""Pressure projection: make the velocity divergence-free on the FLUID cells.

Discretisation and scaling (the documented contract)
----------------------------------------------------
With face classes as in :mod:`dcdm.problems.smoke.state`, the projected
velocity is ``u = u* - (dt / rho_f) grad p`` on FLUID faces (``p = 0`` in AIR),
``rho_f`` the face's density, and the solid's velocity on SOLID faces.

*Constant density* ``rho`` (a number): ``rho_f = rho`` and the divergence on a
FLUID cell ``c`` is

    div(u)_c = div(u*)_c + (dt / rho) (L p)_c,

where ``L`` is *exactly* the grid operator :meth:`dcdm.problems.Grid.laplacian`
of the step's flags (rows ``(d_c p_c - sum_{FLUID n} p_n) / h**2``). So the
system solved is

    A p = b,   A = Grid(flags, spacing=h).laplacian(),
               b_c = -(rho / dt) div(u*)_c on FLUID cells, 0 elsewhere,

with ``p`` the physical pressure.

*Variable density* ``rho`` (a grid-shaped array of cell densities, two-phase
flow): ``rho_f`` is the mean of the densities of the face's two cells (a
boundary face takes its cell's, :func:`dcdm.problems.faces.from_density`), and
with a reference density ``rho_ref`` (default ``rho.min()``; the simulation
passes its configured constant density) the faces carry the weights
``w_f = rho_ref / rho_f``. Then ``u = u* - (dt / rho_ref) w grad p`` and

    div(u)_c = div(u*)_c + (dt / rho_ref) (L_w p)_c,
    A = Grid(flags, spacing=h, face_weights=w).laplacian()  (``-div(w grad p) / h**2``),
    b_c = -(rho_ref / dt) div(u*)_c on FLUID cells, 0 elsewhere.

A density field equal to ``rho_ref`` everywhere gives ``w = 1``: the constant
density system, solved without face weights (bit for bit today's system).

Either way the divergence left on the FLUID cells after the solve is
``-(dt / rho_ref) (b - A p)`` (``rho_ref = rho`` for a constant density): the
solver's own residual, so ``||div u||_2 <= rtol ||div u*||_2`` whenever the
solve converged. For a closed box (no AIR) ``A`` is singular; ``b`` is
consistent (walls carry no net flux) up to rounding, and :func:`dcdm.solve`
projects its constant component.

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

from .. import faces as _faces
from ..grid import CellType, Grid
from .state import (
    SOLID_FACE,
    classify_faces,
    divergence,
    extrapolate_open,
    subtract_gradient,
)

__all__ = ["Projection", "assemble", "density_weights", "enforce_solid", "project",
           "save_system"]


@dataclass(frozen=True)
class Projection:
    """What one projection produced.

    Attributes
    ----------
    grid : Grid
        The step's flag grid (its ``laplacian()`` is ``A``; face weights
        ``rho_ref / rho_face`` with a density field).
    rhs : ndarray
        ``b`` (1-D, the grid's vector layout).
    pressure : ndarray
        The solution ``p``, grid-shaped (0 off FLUID cells).
    result : SolveResult
        What :func:`dcdm.solve` returned.
    max_div_before, max_div_after : float
        ``max |div u|`` over FLUID cells before and after (1/s).
    rho_ref : float
        The density ``b`` is scaled with (the constant density, or the reference
        density of a density field): ``div u = -(dt / rho_ref) (b - A p)``.
    """

    grid: Grid
    rhs: np.ndarray
    pressure: np.ndarray
    result: SolveResult
    max_div_before: float
    max_div_after: float
    rho_ref: float = 1.0


def enforce_solid(velocity: Sequence[np.ndarray], faces: Sequence[np.ndarray],
                  solid_velocity: Sequence[np.ndarray] | None = None) -> None:
    """Set every SOLID face to the solid's normal velocity (0 without ``solid_velocity``)."""
    for a, (u, cls) in enumerate(zip(velocity, faces, strict=True)):
        m = cls == SOLID_FACE
        u[m] = 0.0 if solid_velocity is None else solid_velocity[a][m]


def density_weights(rho, shape: tuple[int, ...], rho_ref: float | None = None
                    ) -> tuple[float, tuple[np.ndarray, ...] | None]:
    """``(rho_ref, face_weights)`` of a density: a number (``rho_ref = rho``, no weights) or
    a grid-shaped array of cell densities (weights ``rho_ref / rho_face``; ``rho_ref``
    defaults to ``rho.min()``; ``None`` when ``rho == rho_ref`` everywhere).

    Raises ``ValueError`` naming ``rho`` (or ``rho_ref``) when it is not finite and
    ``> 0``, or not of the grid's ``shape``.

    Examples
    --------
    >>> import numpy as np
    >>> rho_ref, w = density_weights(np.array([[1.0, 1000.0]]), (1, 2))
    >>> rho_ref, w[1].tolist()
    (1.0, [[1.0, 0.001998001998001998, 0.001]])
    >>> density_weights(np.full((1, 2), 1.5), (1, 2))
    (1.5, None)
    """
    arr = np.asarray(rho)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating)
                                 or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"rho must be a number or a real array of cell densities, got "
                        f"dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.ndim == 0:
        value = float(arr)
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"rho must be a positive finite density, got {value}")
        if rho_ref is not None and rho_ref != value:
            arr = np.full(shape, value)  # a uniform density other than the reference
        else:
            return value, None
    if arr.shape != tuple(shape):
        raise ValueError(f"rho must be a number or an array of the grid's shape {tuple(shape)} "
                         f"(one density per cell), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("rho must be finite in every cell (it holds NaN or Inf)")
    if not (arr > 0).all():
        raise ValueError(f"rho must be > 0 in every cell, got min {arr.min():.3g}")
    ref = float(arr.min()) if rho_ref is None else float(rho_ref)
    if not (np.isfinite(ref) and ref > 0):
        raise ValueError(f"rho_ref must be a positive finite density, got {rho_ref}")
    if (arr == ref).all():
        return ref, None
    # from_density(rho / rho_ref) is rho_ref / rho_face, exactly 1 where rho == rho_ref
    return ref, _faces.from_density(arr / ref)


def assemble(flags: np.ndarray, velocity: Sequence[np.ndarray], spacing: float, dt: float,
             rho: float | np.ndarray = 1.0, boundary: CellType = CellType.SOLID,
             rho_ref: float | None = None) -> tuple[Grid, np.ndarray]:
    """The step's pressure system: the grid and ``b = -(rho_ref / dt) div(u*)`` on FLUID cells.

    ``velocity`` must already carry the solid velocities on its SOLID faces
    (:func:`enforce_solid`). ``rho`` is a constant density or a grid-shaped density
    field (then the grid carries the face weights ``rho_ref / rho_face``; see
    :func:`density_weights` and the module docstring). Returns ``(grid, b)``;
    ``A = grid.laplacian()``.
    """
    grid, b, _ = _assemble(flags, velocity, spacing, dt, rho, boundary, rho_ref)
    return grid, b


def _assemble(flags, velocity, spacing, dt, rho, boundary, rho_ref):
    """:func:`assemble`, also returning ``rho_ref``."""
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive finite number of seconds, got {dt}")
    shape = np.shape(flags)
    ref, weights = density_weights(rho, shape, rho_ref)
    grid = Grid(flags, spacing=spacing, boundary=boundary, face_weights=weights)
    for a, u in enumerate(velocity):
        expect = tuple(n + (b == a) for b, n in enumerate(grid.shape))
        if u.shape != expect:
            raise ValueError(f"velocity component {a} has shape {u.shape}; on a grid of shape "
                             f"{grid.shape} its faces have shape {expect}")
    div = divergence(velocity, spacing)
    b = np.where(grid.fluid, (-ref / dt) * div, 0.0).reshape(-1)
    return grid, b, ref


def _max_div(velocity, spacing, fluid) -> float:
    d = divergence(velocity, spacing)[fluid]
    return float(np.abs(d).max()) if d.size else 0.0


def project(
    velocity: list[np.ndarray],
    flags: np.ndarray,
    *,
    spacing: float,
    dt: float,
    rho: float | np.ndarray = 1.0,
    rho_ref: float | None = None,
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
    spacing, dt : float
        Cell size (domain units), time step (s).
    rho : float or ndarray
        Fluid density: a number, or one positive density per cell (variable
        density, two-phase flow; the grid then carries face weights).
    rho_ref : float, optional
        Reference density of a density field (default ``rho.min()``); see the
        module docstring.
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
    grid, b, ref = _assemble(flags, velocity, spacing, dt, rho, boundary, rho_ref)
    max_before = _max_div(velocity, spacing, grid.fluid)
    A = grid.laplacian()
    if x0 is not None:
        x0 = grid.mask(np.asarray(x0, dtype=np.float64).reshape(grid.shape)).reshape(-1)
    res = solve(A, b, method=method, M=M, x0=x0, rtol=rtol, atol=atol, maxiter=maxiter,
               **options)
    p = grid.mask(np.asarray(res.x).reshape(grid.shape))
    subtract_gradient(velocity, p, faces, dt / (ref * spacing), grid.face_weights)
    extrapolate_open(velocity, faces)
    return Projection(grid, b, p, res, max_before, _max_div(velocity, spacing, grid.fluid), ref)


def save_system(path, projection: Projection) -> None:
    """Write a projection's system as ``.npz``: flags, ``b`` and the simulation's ``p`` as ``x``.

    The file is what :func:`dcdm.problems.io.load` and ``dcdm solve FILE.npz`` read; a
    variable-density system keeps its face weights (the grid format ``dcdm-grid-2``).
    """
    from .. import io

    io.save(path, projection.grid.laplacian(), projection.rhs,
            x=projection.pressure.reshape(-1))
