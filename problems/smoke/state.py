"""The MAC (staggered) grid of the smoke solver: state, face classes, divergence, gradient.

Layout
------
Cells follow :mod:`dcdm.problems.grid`: shape ``(n0, n1[, n2])``, axis 1 up,
cell ``i`` along an axis covers ``[i, i+1)`` in cell units. Velocity component
``a`` lives on the faces normal to axis ``a``: an array with ``n_a + 1``
entries along axis ``a`` (face ``i`` lies between cells ``i - 1`` and ``i``;
faces ``0`` and ``n_a`` are the domain boundary) and the cell count along the
others. Density and pressure live at cell centres. Velocities are in domain
units per second, the cell size ``h`` in domain units.

Face classes
------------
Each face is one of

``SOLID_FACE``
    a SOLID cell on either side, or the domain wall beside a FLUID or SOLID
    cell: its normal velocity is the solid's (zero for walls and static solids,
    the obstacle's velocity for moving ones) and the pressure does not act on it;
``FLUID_FACE``
    no SOLID side and at least one FLUID side: the pressure gradient acts on it
    (``p = 0`` in AIR cells and beyond an AIR domain boundary);
``OPEN_FACE``
    everything else (between AIR cells, or the wall beside an AIR cell): no
    equation; the velocity is extrapolated from its neighbours for advection.

With these classes the divergence of the projected velocity on FLUID cells is
``div(u*) + (dt / rho_ref) (L p)`` where ``L`` is exactly
:meth:`dcdm.problems.Grid.laplacian` of the step's grid, with the face weights
``rho_ref / rho_face`` when the density varies (see :mod:`.projection`).

Examples
--------
>>> import numpy as np
>>> from dcdm.problems.smoke.state import SmokeState, divergence
>>> s = SmokeState.empty((4, 5), spacing=0.25)
>>> [u.shape for u in s.velocity]
[(5, 5), (4, 6)]
>>> float(np.abs(divergence(s.velocity, s.spacing)).max())
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..grid import CellType

__all__ = [
    "FLUID_FACE",
    "OPEN_FACE",
    "SOLID_FACE",
    "SmokeState",
    "cell_velocity",
    "classify_faces",
    "divergence",
    "extrapolate_open",
    "face_shape",
    "subtract_gradient",
]

SOLID_FACE, FLUID_FACE, OPEN_FACE = 0, 1, 2


def face_shape(shape: Sequence[int], axis: int) -> tuple[int, ...]:
    """Shape of the face array of velocity component ``axis`` on a grid of ``shape``."""
    s = list(shape)
    s[axis] += 1
    return tuple(s)


def _slab(ndim: int, axis: int, sl: slice) -> tuple[slice, ...]:
    out = [slice(None)] * ndim
    out[axis] = sl
    return tuple(out)


@dataclass
class SmokeState:
    """Everything the solver carries from one step to the next.

    Attributes
    ----------
    velocity : list of ndarray
        Face velocities, one array per axis (see the module docstring).
    density : ndarray
        Smoke density per cell (0 = clear air, 1 = the source's).
    pressure : ndarray
        The last projection's pressure per cell (warm start of the next solve).
    flags : ndarray of int8
        The last projection's :class:`~dcdm.problems.CellType` codes.
    spacing : float
        Cell size ``h`` (domain units).
    time : float
        Simulated time (seconds).
    step : int
        Completed steps.
    phase : ndarray or None
        Two-phase flow only: the heavy fluid's colour function ``phi`` per cell, in
        ``[0, 1]`` (1 = heavy; see :mod:`.two_phase`); ``None`` for one fluid.
    """

    velocity: list[np.ndarray]
    density: np.ndarray
    pressure: np.ndarray
    flags: np.ndarray
    spacing: float = 1.0
    time: float = 0.0
    step: int = 0
    phase: np.ndarray | None = None

    @classmethod
    def empty(cls, shape: Sequence[int], spacing: float = 1.0) -> SmokeState:
        """Fluid at rest, no smoke, all cells FLUID."""
        shape = tuple(int(n) for n in shape)
        if len(shape) not in (2, 3) or min(shape) < 2:
            raise ValueError(f"shape must be 2 or 3 sizes, each >= 2, got {shape}")
        if not (np.isfinite(spacing) and spacing > 0):
            raise ValueError(f"spacing must be a positive finite number, got {spacing}")
        return cls(
            velocity=[np.zeros(face_shape(shape, a)) for a in range(len(shape))],
            density=np.zeros(shape),
            pressure=np.zeros(shape),
            flags=np.full(shape, CellType.FLUID, dtype=np.int8),
            spacing=float(spacing),
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return self.density.shape

    @property
    def ndim(self) -> int:
        return self.density.ndim


def divergence(velocity: Sequence[np.ndarray], spacing: float) -> np.ndarray:
    """Cell-centred divergence ``sum_a (u_a[i+1] - u_a[i]) / h`` (every cell)."""
    shape = list(velocity[0].shape)
    shape[0] -= 1
    div = np.zeros(shape)
    for a, u in enumerate(velocity):
        div += np.diff(u, axis=a)
    div /= spacing
    return div


def cell_velocity(velocity: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Velocity at cell centres: each component the mean of its two faces."""
    ndim = len(velocity)
    return [0.5 * (u[_slab(ndim, a, slice(None, -1))] + u[_slab(ndim, a, slice(1, None))])
            for a, u in enumerate(velocity)]


def classify_faces(flags: np.ndarray, boundary: CellType = CellType.SOLID) -> list[np.ndarray]:
    """Per axis, an ``int8`` array of face classes (``SOLID_FACE``, ``FLUID_FACE``, ``OPEN_FACE``).

    Parameters
    ----------
    flags : ndarray
        Cell codes.
    boundary : CellType
        What lies beyond the domain (as :class:`dcdm.problems.Grid`'s ``boundary``).
    """
    ndim = flags.ndim
    padded = np.pad(flags, 1, constant_values=int(boundary))
    out = []
    for a in range(ndim):
        core = [slice(1, -1)] * ndim
        lo, hi = list(core), list(core)
        lo[a] = slice(0, -1)
        hi[a] = slice(1, None)
        L, R = padded[tuple(lo)], padded[tuple(hi)]
        solid = (L == CellType.SOLID) | (R == CellType.SOLID)
        fluid = ~solid & ((L == CellType.FLUID) | (R == CellType.FLUID))
        cls = np.full(L.shape, OPEN_FACE, dtype=np.int8)
        cls[fluid] = FLUID_FACE
        cls[solid] = SOLID_FACE
        if boundary == CellType.SOLID:
            # the wall beside an AIR cell is an outflow, not a wall: let it extrapolate
            for end in (slice(0, 1), slice(-1, None)):
                face = cls[_slab(ndim, a, end)]  # a view: writes go to cls
                face[flags[_slab(ndim, a, end)] == CellType.AIR] = OPEN_FACE
        out.append(cls)
    return out


def subtract_gradient(
    velocity: Sequence[np.ndarray],
    pressure: np.ndarray,
    faces: Sequence[np.ndarray],
    coef: float,
    face_weights: Sequence[np.ndarray] | None = None,
) -> None:
    """``u_a -= coef * w_a * (p[i] - p[i-1])`` on FLUID faces, in place (``p`` is 0 off FLUID).

    ``coef = dt / (rho h)``; with variable density ``coef = dt / (rho_ref h)`` and
    ``face_weights`` the grid's ``w = rho_ref / rho_face`` (``None``: ``w = 1``). The
    pressure beyond the domain boundary counts as 0, which matters only for an AIR
    boundary (a SOLID one has no FLUID faces).
    """
    for a, (u, cls) in enumerate(zip(velocity, faces, strict=True)):
        pad = [(0, 0)] * pressure.ndim
        pad[a] = (1, 1)
        grad = np.diff(np.pad(pressure, pad), axis=a)
        m = cls == FLUID_FACE
        if face_weights is None:
            u[m] -= coef * grad[m]
        else:
            u[m] -= coef * face_weights[a][m] * grad[m]


def extrapolate_open(velocity: Sequence[np.ndarray], faces: Sequence[np.ndarray],
                     layers: int = 2) -> None:
    """Fill OPEN faces with the mean of their known face neighbours, ``layers`` rings deep.

    Known faces are SOLID and FLUID ones; each ring makes the faces it filled known.
    Faces still unknown after ``layers`` rings keep their value. In place.
    """
    ndim = len(velocity)
    for u, cls in zip(velocity, faces, strict=True):
        known = cls != OPEN_FACE
        if known.all():
            continue
        for _ in range(layers):
            total = np.zeros_like(u)
            count = np.zeros(u.shape, dtype=np.int32)
            uk = np.where(known, u, 0.0)
            kp = np.pad(known, 1)
            up = np.pad(uk, 1)
            for b in range(ndim):
                for step in (-1, 1):
                    sl = [slice(1, -1)] * ndim
                    sl[b] = slice(1 + step, up.shape[b] - 1 + step)
                    total += up[tuple(sl)]
                    count += kp[tuple(sl)]
            fill = ~known & (count > 0)
            if not fill.any():
                break
            u[fill] = total[fill] / count[fill]
            known = known | fill
