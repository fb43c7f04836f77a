"""Ready-made smoke scenes: :func:`rising_smoke` is the scene of ``dcdm demo``,
:func:`two_phase_tank` (a heavy drop falling into a pool, density ratio up to 1000)
the variable-density one the demo also compares the methods on.

Examples
--------
>>> from dcdm.problems.smoke.scene import SCENES, rising_smoke, two_phase_tank
>>> cfg = rising_smoke(32)
>>> cfg.shape, len(cfg.obstacles), [ob.moving for ob in cfg.obstacles]
((32, 32, 32), 2, [False, True])
>>> two_phase_tank(16, ndim=2).two_phase.density_ratio, sorted(SCENES)
(1000.0, ['rising_smoke', 'two_phase_tank'])
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ..geometry import Box, Sphere
from .forces import Source
from .obstacles import Obstacle, oscillate
from .simulation import SmokeConfig
from .two_phase import TwoPhase

__all__ = ["SCENES", "rising_smoke", "two_phase_tank"]


def _check(n, ndim) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 8:
        raise ValueError(f"n must be an integer >= 8, got {n!r}")
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")


def _point(n: int, ndim: int, *fractions: float) -> tuple[float, ...]:
    """A point given as fractions of the domain (x, y[, z]), in cell units."""
    return tuple(f * n for f in fractions[:ndim])


def rising_smoke(n: int = 64, ndim: int = 3, seed: int | None = 0, open_top: bool = True,
                 **config: Any) -> SmokeConfig:
    """Smoke rising from a source on the floor past a sphere that sweeps side to side.

    The domain is a box one unit high, ``n`` cells per axis, walls on the sides
    and the floor, an open (AIR) top unless ``open_top=False``. A round source
    at the bottom centre (radius ``0.09``) feeds smoke with an upward inflow of
    1 unit/s, perturbed by 20% seeded noise; buoyancy 2. A sphere of radius
    ``0.12`` at mid-height oscillates along axis 0 (amplitude ``0.22``, period
    1.5 s) through the plume; a static slab hangs at three-quarter height off
    to one side. ``dt = 0.75 h`` capped at CFL 2.

    Parameters
    ----------
    n : int
        Cells per axis (>= 8).
    ndim : {2, 3}
        Dimensionality.
    seed : int or None
        Seed of the inflow perturbation.
    open_top : bool
        AIR on the top layer; ``False`` closes the box (a singular system each step).
    **config
        Any other :class:`SmokeConfig` field (``method``, ``M``, ``rtol``, ...).

    Returns
    -------
    SmokeConfig
    """
    _check(n, ndim)
    at = functools.partial(_point, n, ndim)

    source = Source(Sphere(at(0.5, 0.05, 0.5), 0.07 * n), density=1.0,
                    velocity=(0.0, 0.6, 0.0)[:ndim], noise=0.3)
    sphere = Obstacle(Sphere(at(0.5, 0.45, 0.5), 0.12 * n),
                      path=oscillate(at(0.22, 0.0, 0.0), period=1.5))
    slab = Obstacle(Box(at(0.62, 0.72, 0.3), at(0.9, 0.77, 0.7)))
    config.setdefault("dt", 0.75 / n)
    config.setdefault("buoyancy", 3.0)
    return SmokeConfig(shape=(n,) * ndim, sources=(source,), obstacles=(slab, sphere),
                       open_top=open_top, seed=seed, **config)


def two_phase_tank(n: int = 32, ndim: int = 3, density_ratio: float = 1000.0,
                   gravity: float = 9.81, seed: int | None = 0, open_top: bool = True,
                   **config: Any) -> SmokeConfig:
    """A heavy drop falling through light gas into a pool of the heavy fluid.

    The smoke solver's tank (one unit high, ``n`` cells per axis, walls on the
    sides and the floor, an open (AIR) top unless ``open_top=False``) holds a pool
    of the heavy fluid a fifth of the height deep and a drop of it (radius
    ``0.12``) off-centre at two-thirds height, in a gas ``density_ratio`` times
    lighter (:class:`~.two_phase.TwoPhase`); a static slab juts from the left wall
    above the pool. Gravity ``gravity`` (domain units / s^2) acts on the density
    difference. No smoke, no sources. ``dt = 0.5 h`` capped at CFL 1.

    Parameters
    ----------
    n : int
        Cells per axis (>= 8).
    ndim : {2, 3}
        Dimensionality.
    density_ratio : float
        ``rho_heavy / rho_light`` (>= 1).
    gravity : float
        Gravitational acceleration (>= 0).
    seed : int or None
        Seed of the simulation's random generator (unused without sources).
    open_top : bool
        AIR on the top layer; ``False`` closes the box (a singular system each step).
    **config
        Any other :class:`SmokeConfig` field (``method``, ``M``, ``rtol``, ``rho``, ...).

    Returns
    -------
    SmokeConfig
    """
    _check(n, ndim)
    at = functools.partial(_point, n, ndim)

    pool = Box(at(0.0, 0.0, 0.0), at(1.0, 0.2, 1.0))
    drop = Sphere(at(0.58, 0.66, 0.5), 0.12 * n)
    ledge = Obstacle(Box(at(0.0, 0.36, 0.0), at(0.25, 0.42, 1.0)))
    config.setdefault("dt", 0.5 / n)
    config.setdefault("cfl", 1.0)
    config.setdefault("buoyancy", 0.0)
    return SmokeConfig(shape=(n,) * ndim, obstacles=(ledge,), open_top=open_top, seed=seed,
                       two_phase=TwoPhase((pool, drop), density_ratio, gravity), **config)


#: the ready-made scenes by name: ``SCENES[name](n, ndim=..., **config)``
SCENES: dict[str, Callable[..., SmokeConfig]] = {
    "rising_smoke": rising_smoke,
    "two_phase_tank": two_phase_tank,
}
