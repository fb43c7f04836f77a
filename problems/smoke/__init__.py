"""An incompressible smoke solver on a MAC grid that calls :func:`dcdm.solve` every step.

Modules: :mod:`.state` (staggered grid, face classes, divergence, gradient),
:mod:`.advect` (semi-Lagrangian advection, NumPy and Numba), :mod:`.forces`
(buoyancy, gravity, sources), :mod:`.obstacles` (static and moving solids),
:mod:`.two_phase` (a heavy fluid in the light one: variable density),
:mod:`.projection` (the pressure system and its solve, constant or variable
density), :mod:`.simulation` (the time loop and per-step records), :mod:`.scene`
(the demo scenes),
:mod:`.render` (frames, GIF, plots) and :mod:`.demo` (``dcdm demo``).

Examples
--------
>>> from dcdm.problems.smoke import Simulation, rising_smoke
>>> sim = Simulation(rising_smoke(16, ndim=2))
>>> records = sim.run(2)
>>> [r.converged for r in records]
[True, True]
"""

from .forces import Source, add_buoyancy, add_gravity
from .obstacles import Obstacle, circle, oscillate, rasterize
from .projection import Projection, assemble, density_weights, project, save_system
from .scene import SCENES, rising_smoke, two_phase_tank
from .simulation import Simulation, SmokeConfig, StepRecord
from .state import SmokeState, divergence
from .two_phase import TwoPhase

__all__ = [
    "SCENES",
    "Obstacle",
    "Projection",
    "Simulation",
    "SmokeConfig",
    "SmokeState",
    "Source",
    "StepRecord",
    "TwoPhase",
    "add_buoyancy",
    "add_gravity",
    "assemble",
    "circle",
    "density_weights",
    "divergence",
    "oscillate",
    "project",
    "rasterize",
    "rising_smoke",
    "save_system",
    "two_phase_tank",
]
