"""Two-phase (variable-density) flow: a heavy fluid in the light one of the smoke solver.

The heavy fluid is marked by a colour function ``phi`` per cell (1 heavy, 0 light,
in between at the smeared interface), advected every step like the smoke's
density (:mod:`.advect`; semi-Lagrangian, so it stays in ``[0, 1]``). The cell
density is the linear blend

    rho = rho_light + (rho_heavy - rho_light) phi,   rho_heavy = density_ratio * rho_light,

``rho_light`` the configured constant density (``SmokeConfig.rho``). Gravity acts
on the density difference (:func:`~.forces.add_gravity`), and the projection
solves the variable-density system with face weights ``rho_light / rho_face``
(:mod:`.projection`): with a density ratio of 1000 the weights span three decades,
the hard case for a pressure preconditioner.

Examples
--------
>>> import numpy as np
>>> from dcdm.problems.geometry import Box
>>> from dcdm.problems.smoke.two_phase import TwoPhase
>>> tp = TwoPhase(heavy=(Box((0, 0), (4, 1)),), density_ratio=1000.0)
>>> phi = tp.initial_phase((4, 4))
>>> phi[:, 0].tolist(), tp.density(phi, rho_light=1.0)[0].tolist()
([1.0, 1.0, 1.0, 1.0], [1000.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..geometry import Shape

__all__ = ["TwoPhase"]


@dataclass(frozen=True)
class TwoPhase:
    """A heavy fluid in the light one: where it starts, how heavy, how strong gravity is.

    Parameters
    ----------
    heavy : sequence of Shape
        The regions filled with the heavy fluid at ``t = 0`` (cell units, as
        :mod:`dcdm.problems.geometry`), e.g. a pool and a drop above it.
    density_ratio : float, default 1000.0
        ``rho_heavy / rho_light`` (>= 1; water in air is about 800).
    gravity : float, default 9.81
        Gravitational acceleration (domain units / s^2), along ``-axis 1``.
    """

    heavy: Sequence[Shape]
    density_ratio: float = 1000.0
    gravity: float = 9.81

    def __post_init__(self):
        heavy = tuple(self.heavy)
        bad = [type(s).__name__ for s in heavy if not isinstance(s, Shape)]
        if bad:
            raise TypeError(f"heavy must hold dcdm.problems.geometry Shape objects, got {bad[0]}")
        object.__setattr__(self, "heavy", heavy)
        r = self.density_ratio
        if isinstance(r, bool) or not (np.isfinite(r) and r >= 1):
            raise ValueError(f"density_ratio must be a finite number >= 1 (rho_heavy / "
                             f"rho_light), got {r}")
        if isinstance(self.gravity, bool) or not (np.isfinite(self.gravity)
                                                  and self.gravity >= 0):
            raise ValueError(f"gravity must be a finite number >= 0, got {self.gravity}")

    def initial_phase(self, shape: Sequence[int]) -> np.ndarray:
        """``phi`` at ``t = 0``: 1 in the heavy regions, 0 elsewhere."""
        phi = np.zeros(tuple(shape))
        for region in self.heavy:
            phi[region.mask(phi.shape)] = 1.0
        return phi

    def density(self, phase: np.ndarray, rho_light: float) -> np.ndarray:
        """Cell densities ``rho_light * (1 + (density_ratio - 1) * clip(phi, 0, 1))``."""
        phi = np.clip(phase, 0.0, 1.0)
        return rho_light * (1.0 + (self.density_ratio - 1.0) * phi)
