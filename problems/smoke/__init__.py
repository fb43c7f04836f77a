"""An incompressible smoke solver on a MAC grid that calls :func:`dcdm.solve` every step.

Modules: :mod:`.state` (staggered grid, face classes, divergence, gradient),
:mod:`.advect` (semi-Lagrangian advection, NumPy and Numba), :mod:`.forces`
(buoyancy, sources), :mod:`.obstacles` (static and moving solids),
:mod:`.projection` (the pressure system and its solve), :mod:`.simulation`
(the time loop and per-step records), :mod:`.scene` (the demo scene),
:mod:`.render` (frames, GIF, plots) and :mod:`.demo` (``dcdm demo``).

Examples
--------
>>> from dcdm.problems.smoke import Simulation, rising_smoke
>>> sim = Simulation(rising_smoke(16, ndim=2))
>>> records = sim.run(2)
>>> [r.converged for r in records]
[True, True]
"""

from .forces import Source, add_buoyancy
from .obstacles import Obstacle, circle, oscillate, rasterize
from .projection import Projection, assemble, project, save_system
from .scene import rising_smoke
from .simulation import Simulation, SmokeConfig, StepRecord
from .state import SmokeState, divergence

__all__ = [
    "Obstacle",
    "Projection",
    "Simulation",
    "SmokeConfig",
    "SmokeState",
    "Source",
    "StepRecord",
    "add_buoyancy",
    "assemble",
    "circle",
    "divergence",
    "oscillate",
    "project",
    "rasterize",
    "rising_smoke",
    "save_system",
]
