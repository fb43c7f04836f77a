"""Body forces and sources of the smoke solver: buoyancy, gravity and a smoke inflow.

Buoyancy (Fedkiw, Stam & Jensen, "Visual simulation of smoke", SIGGRAPH 2001,
without the temperature term) pushes smoky fluid up: on every vertical face
(axis 1 is up)

    v += dt * buoyancy * (density averaged over the face's two cells).

Smoke is a passive marker in the (light) fluid, so this is an acceleration,
independent of the fluid's density. Gravity in two-phase flow
(:func:`add_gravity`) acts on the difference between the fluid's density and
the ambient (light) one, in the same spirit: buoyancy relative to the fluid at
rest. Writing the pressure as ``p = p' + p_h`` with ``p_h`` the hydrostatic
pressure of the ambient fluid (``grad p_h = -rho_a g e_up``), the momentum
equation ``du/dt = -grad p / rho - g e_up`` becomes, exactly,

    du/dt = -grad p' / rho - g (1 - rho_a / rho) e_up,

so on every vertical face ``v -= dt * g * (1 - rho_a / rho_f)``, ``rho_f`` the
face density of the projection (:func:`dcdm.problems.faces.from_density`): the
ambient fluid feels no force, a 1000 times heavier one nearly the full ``g``,
and the projection solves for ``p'`` (0 at an open top, as ``p_h`` is there).

A :class:`Source` keeps its region full of smoke and drives an inflow: each
step its cells' density is raised to ``density`` and every face touching the
region gets the inflow ``velocity`` (domain units per second), optionally
perturbed by a seeded random factor that breaks the scene's symmetry. The
pressure projection afterwards makes the inflow divergence-free.

Examples
--------
>>> import numpy as np
>>> from dcdm.problems.geometry import Box
>>> from dcdm.problems.smoke.forces import Source, add_buoyancy
>>> from dcdm.problems.smoke.state import SmokeState
>>> s = SmokeState.empty((8, 8))
>>> Source(Box((3, 0), (5, 2)), velocity=(0.0, 1.0)).apply(s)
>>> float(s.density.sum()), float(s.velocity[1].max())
(4.0, 1.0)
>>> add_buoyancy(s.velocity, s.density, dt=0.5, buoyancy=2.0)
>>> float(s.velocity[1][3, 1])
2.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .. import faces
from ..geometry import Shape
from .state import SmokeState

__all__ = ["Source", "add_buoyancy", "add_gravity"]

UP = 1


def add_buoyancy(velocity: Sequence[np.ndarray], density: np.ndarray, dt: float,
                 buoyancy: float) -> None:
    """``v += dt * buoyancy * face density`` on the vertical faces, in place.

    A boundary face sees its one cell's density (boundary faces are walls or
    outflows; the projection overwrites the walls).
    """
    if buoyancy == 0.0:
        return
    pad = [(0, 0)] * density.ndim
    pad[UP] = (1, 1)
    d = np.pad(density, pad, mode="edge")
    lo = [slice(None)] * density.ndim
    hi = [slice(None)] * density.ndim
    lo[UP] = slice(0, -1)
    hi[UP] = slice(1, None)
    velocity[UP] += (0.5 * dt * buoyancy) * (d[tuple(lo)] + d[tuple(hi)])


def add_gravity(velocity: Sequence[np.ndarray], rho: np.ndarray, dt: float, gravity: float,
                rho_ambient: float) -> None:
    """``v -= dt * gravity * (1 - rho_ambient / rho_f)`` on the vertical faces, in place.

    ``rho`` holds the cell densities, ``rho_f`` is a face's (the mean of its two cells',
    a boundary face's its cell's, as the projection's face weights). See the module
    docstring for why gravity acts on the density difference only.
    """
    if gravity == 0.0:
        return
    # from_density(rho / rho_a) is rho_a / rho_f: exactly 1 (no force) in the ambient fluid
    w = faces.from_density(np.asarray(rho, dtype=np.float64) / rho_ambient)[UP]
    velocity[UP] -= (dt * gravity) * (1.0 - w)


@dataclass(frozen=True)
class Source:
    """A smoke source with inflow.

    Parameters
    ----------
    shape : Shape
        The region (cell units, as :mod:`dcdm.problems.geometry`).
    density : float, default 1.0
        Smoke density the region is kept at.
    velocity : sequence of float, optional
        Inflow velocity imposed on the faces touching the region (domain units
        per second); ``None`` for smoke without inflow.
    noise : float, default 0.0
        Random perturbation of every inflow face velocity, uniform in
        ``[-noise, noise]`` times the inflow speed, drawn per face and step from
        the ``rng`` of :meth:`apply`.
    """

    shape: Shape
    density: float = 1.0
    velocity: tuple[float, ...] | None = None
    noise: float = 0.0

    def __post_init__(self):
        if not isinstance(self.shape, Shape):
            raise TypeError(f"shape must be a dcdm.problems.geometry Shape, got "
                            f"{type(self.shape).__name__}")
        if not (np.isfinite(self.density) and self.density >= 0):
            raise ValueError(f"density must be a finite number >= 0, got {self.density}")
        if not (np.isfinite(self.noise) and 0 <= self.noise <= 1):
            raise ValueError(f"noise must be in [0, 1], got {self.noise}")
        if self.velocity is not None:
            object.__setattr__(self, "velocity", tuple(float(v) for v in self.velocity))

    def apply(self, state: SmokeState, rng: np.random.Generator | None = None) -> None:
        """Fill the region with smoke and impose the inflow on ``state``, in place."""
        m = self.shape.mask(state.shape)
        np.maximum(state.density, np.where(m, self.density, 0.0), out=state.density)
        if self.velocity is None:
            return
        if len(self.velocity) != state.ndim:
            raise ValueError(f"the source's velocity has {len(self.velocity)} components but "
                             f"the grid is {state.ndim}-D")
        for a, u in enumerate(state.velocity):
            if self.velocity[a] == 0.0 and self.noise == 0.0:
                continue
            pad = [(0, 0)] * state.ndim
            pad[a] = (1, 1)
            mp = np.pad(m, pad)
            lo = [slice(None)] * state.ndim
            hi = [slice(None)] * state.ndim
            lo[a] = slice(0, -1)
            hi[a] = slice(1, None)
            touches = mp[tuple(lo)] | mp[tuple(hi)]
            v = np.full(int(touches.sum()), self.velocity[a])
            if self.noise and rng is not None:
                speed = math.hypot(*self.velocity)
                v += self.noise * speed * rng.uniform(-1.0, 1.0, size=v.size)
            u[touches] = v
