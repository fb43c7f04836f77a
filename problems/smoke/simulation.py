"""The smoke simulation: one :func:`dcdm.solve` per time step.

A step (Stam's splitting, as in Bridson, *Fluid Simulation for Computer
Graphics*, ch. 2-5):

1. choose ``dt`` (the configured one, capped by the CFL number);
2. advect density (and the two-phase colour function) and velocity through the
   last divergence-free velocity (:mod:`.advect`);
3. add buoyancy, gravity on the heavy fluid (two-phase flow, :mod:`.two_phase`)
   and the sources' smoke and inflow (:mod:`.forces`);
4. move the obstacles to ``t + dt``: new flags, solid velocities on their faces
   (:mod:`.obstacles`);
5. project (:mod:`.projection`): assemble ``A p = b`` on the new flags (with the
   face weights ``rho / rho_face`` of the two-phase density), solve it with the
   configured method warm-started from the last pressure, subtract the gradient;
6. record iterations, reason, true residual, set-up and solve time, advection
   time and ``max |div u|`` after projection (:class:`StepRecord`).

Examples
--------
>>> from dcdm.problems.smoke import SmokeConfig, Simulation
>>> sim = Simulation(SmokeConfig(shape=(24, 24)))
>>> rec = sim.step()
>>> rec.step, rec.reason, rec.converged
(1, 'CONVERGED_RTOL', True)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dcdm import kernels
from dcdm.kernels.optional import maybe

from ..grid import CellType
from .advect import advect_scalar, advect_velocity
from .forces import Source, add_buoyancy, add_gravity
from .obstacles import Obstacle, rasterize
from .projection import Projection, project, save_system
from .state import SmokeState
from .two_phase import TwoPhase

__all__ = ["Simulation", "SmokeConfig", "StepRecord"]

log = logging.getLogger(__name__)


@dataclass
class SmokeConfig:
    """A smoke scene and how to solve it.

    Parameters
    ----------
    shape : tuple of int
        Cells per axis (2-D or 3-D, axis 1 up).
    spacing : float, optional
        Cell size; default ``1 / shape[1]`` (a domain one unit high).
    dt : float
        Time step (s) before the CFL cap.
    cfl : float or None
        Cap ``dt`` so that ``max |u| dt / h <= cfl``; ``None``: never.
    buoyancy : float
        Upward acceleration per unit smoke density (domain units / s^2).
    rho : float
        Fluid density in the projection (the light fluid's with ``two_phase``).
    open_top : bool
        AIR on the top layer (an SPD system); ``False``: a closed box (singular).
    sources, obstacles : sequence
        :class:`~.forces.Source` and :class:`~.obstacles.Obstacle` objects.
    two_phase : TwoPhase or None
        A heavy fluid in the light one (variable density, gravity on the density
        difference; :mod:`.two_phase`); ``None``: one fluid of density ``rho``.
    method, M, rtol, atol, maxiter, solver_options
        How each step's pressure system is solved (:func:`dcdm.solve`).
    warm_start : bool
        Start each solve from the previous step's pressure.
    seed : int or None
        Seed of the sources' random inflow perturbation.
    backend : {"numpy", "numba"} or None
        Advection back-end (default: Numba when available).
    """

    shape: tuple[int, ...]
    spacing: float | None = None
    dt: float = 0.02
    cfl: float | None = 2.0
    buoyancy: float = 2.0
    rho: float = 1.0
    open_top: bool = True
    sources: Sequence[Source] = ()
    obstacles: Sequence[Obstacle] = ()
    two_phase: TwoPhase | None = None
    method: str = "cg"
    M: Any = "auto"
    rtol: float = 1e-6
    atol: float = 0.0
    maxiter: int | None = None
    solver_options: dict[str, Any] = field(default_factory=dict)
    warm_start: bool = True
    seed: int | None = 0
    backend: str | None = None

    def __post_init__(self):
        self.shape = tuple(int(n) for n in self.shape)
        if len(self.shape) not in (2, 3) or min(self.shape) < 4:
            raise ValueError(f"shape must be 2 or 3 sizes, each >= 4, got {self.shape}")
        if self.spacing is None:
            self.spacing = 1.0 / self.shape[1]
        for name in ("spacing", "dt"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive finite number, got {v}")
        if self.cfl is not None and not (np.isfinite(self.cfl) and self.cfl > 0):
            raise ValueError(f"cfl must be a positive number or None, got {self.cfl}")
        for name, kind in (("sources", Source), ("obstacles", Obstacle)):
            items = tuple(getattr(self, name))
            bad = [type(o).__name__ for o in items if not isinstance(o, kind)]
            if bad:
                raise TypeError(f"{name} must hold {kind.__name__} objects, got {bad[0]}")
            setattr(self, name, items)
        if self.two_phase is not None and not isinstance(self.two_phase, TwoPhase):
            raise TypeError(f"two_phase must be a TwoPhase or None, got "
                            f"{type(self.two_phase).__name__}")
        if not (np.isfinite(self.rho) and self.rho > 0):
            raise ValueError(f"rho must be a positive finite density, got {self.rho}")


@dataclass(frozen=True)
class StepRecord:
    """What one step did and cost (times in seconds of wall clock).

    ``setup_time`` and ``solve_time`` are the solver's (preconditioner set-up,
    iterations); ``project_time`` is the whole projection (flag grid, right-hand
    side, solve, gradient); ``advect_time`` the advection of density and velocity;
    ``residual_norm`` the true ``||b - A p||_2``; ``max_div_*`` over FLUID cells (1/s);
    ``density_ratio`` the step's ``max rho / min rho`` (1 for one fluid).
    """

    step: int
    time: float
    dt: float
    method: str
    preconditioner: str
    iterations: int
    reason: str
    converged: bool
    residual_norm: float
    rhs_norm: float
    setup_time: float
    solve_time: float
    advect_time: float
    project_time: float
    step_time: float
    max_div_before: float
    max_div_after: float
    n_fluid: int
    singular: bool
    density_ratio: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return dataclasses.asdict(self)


class Simulation:
    """Run a :class:`SmokeConfig` step by step.

    Attributes
    ----------
    state : SmokeState
    records : list of StepRecord
    last_projection : Projection or None
        The latest step's pressure system and solve (see :meth:`export_system`).
    """

    def __init__(self, config: SmokeConfig):
        if not isinstance(config, SmokeConfig):
            raise TypeError(f"config must be a SmokeConfig, got {type(config).__name__}")
        self.config = config
        self.state = SmokeState.empty(config.shape, config.spacing)
        self.state.flags, _ = self.flags_at(0.0)
        if config.two_phase is not None:
            phase = config.two_phase.initial_phase(config.shape)
            phase[self.state.flags == CellType.SOLID] = 0.0
            self.state.phase = phase
        self.records: list[StepRecord] = []
        self.last_projection: Projection | None = None
        self.rng = np.random.default_rng(config.seed)

    @property
    def boundary(self) -> CellType:
        return CellType.SOLID

    def flags_at(self, t: float) -> tuple[np.ndarray, list[np.ndarray]]:
        """The flag grid at time ``t`` and the solid velocity on every face."""
        cfg = self.config
        flags = np.full(cfg.shape, CellType.FLUID, dtype=np.int8)
        if cfg.open_top:
            flags[:, -1, ...] = CellType.AIR
        solid, face_velocity = rasterize(cfg.obstacles, cfg.shape, t, cfg.spacing)
        flags[solid] = CellType.SOLID
        return flags, face_velocity

    def next_dt(self) -> float:
        """The configured ``dt``, capped by the CFL number."""
        cfg = self.config
        dt = cfg.dt
        if cfg.cfl is not None:
            umax = max(float(np.abs(u).max()) for u in self.state.velocity)
            if umax > 0:
                dt = min(dt, cfg.cfl * cfg.spacing / umax)
        return dt

    def step(self, **overrides: Any) -> StepRecord:
        """Advance one time step; ``overrides`` replace the config's solver arguments
        (``method``, ``M``, ``rtol``, ...) for this step only."""
        cfg = self.config
        s = self.state
        t_start = time.perf_counter()
        dt = self.next_dt()
        h = cfg.spacing
        u_old = s.velocity
        s.density = advect_scalar(s.density, u_old, dt, h, backend=cfg.backend)
        if s.phase is not None:
            s.phase = advect_scalar(s.phase, u_old, dt, h, backend=cfg.backend)
        s.velocity = advect_velocity(u_old, dt, h, backend=cfg.backend)
        advect_time = time.perf_counter() - t_start
        add_buoyancy(s.velocity, s.density, dt, cfg.buoyancy)
        tp = cfg.two_phase
        if tp is not None:
            add_gravity(s.velocity, tp.density(s.phase, cfg.rho), dt, tp.gravity, cfg.rho)
        for src in cfg.sources:
            src.apply(s, self.rng)
        flags, solid_velocity = self.flags_at(s.time + dt)
        s.density[flags == CellType.SOLID] = 0.0
        rho: float | np.ndarray = cfg.rho
        if s.phase is not None:
            s.phase[flags == CellType.SOLID] = 0.0
            rho = tp.density(s.phase, cfg.rho)
        solver = dict(method=cfg.method, M=cfg.M, rtol=cfg.rtol, atol=cfg.atol,
                      maxiter=cfg.maxiter, **cfg.solver_options)
        solver.update(overrides)
        t_project = time.perf_counter()
        proj = project(s.velocity, flags, spacing=h, dt=dt, rho=rho, rho_ref=cfg.rho,
                       boundary=self.boundary, solid_velocity=solid_velocity,
                       x0=s.pressure if cfg.warm_start else None, **solver)
        project_time = time.perf_counter() - t_project
        s.pressure, s.flags = proj.pressure, flags
        s.time += dt
        s.step += 1
        self.last_projection = proj
        res = proj.result
        rec = StepRecord(
            step=s.step, time=s.time, dt=dt, method=str(solver["method"]),
            preconditioner=str(res.stats.get("preconditioner", "none")),
            iterations=int(res.iterations), reason=res.reason.name,
            converged=bool(res.converged), residual_norm=float(res.residual_norm),
            rhs_norm=math.sqrt(kernels.dot(proj.rhs, proj.rhs)), setup_time=float(res.setup_time),
            solve_time=float(res.solve_time), advect_time=advect_time, project_time=project_time,
            step_time=time.perf_counter() - t_start, max_div_before=proj.max_div_before,
            max_div_after=proj.max_div_after, n_fluid=proj.grid.n_fluid,
            singular=proj.grid.is_singular,
            density_ratio=float(np.max(rho) / np.min(rho)),
        )
        if not rec.converged:
            log.warning("step %d: pressure solve did not converge (%s after %d iterations)",
                        rec.step, rec.reason, rec.iterations)
        self.records.append(rec)
        return rec

    def run(self, steps: int, progress: bool = False,
            callback: Callable[[Simulation, StepRecord], None] | None = None) -> list[StepRecord]:
        """Run ``steps`` steps (a tqdm bar if ``progress`` and tqdm is installed);
        ``callback(sim, record)`` after each. Returns the new records."""
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
        bar = None
        if progress:
            tqdm = maybe("tqdm.auto")  # tqdm comes with the train extra
            if tqdm is not None:
                bar = tqdm.tqdm(total=int(steps), desc="smoke", unit="step")
            else:
                log.info("tqdm is not installed: no progress bar")
        out = []
        try:
            for _ in range(int(steps)):
                rec = self.step()
                out.append(rec)
                if bar is not None:
                    bar.set_postfix(iters=rec.iterations, solve=f"{rec.solve_time:.3f}s")
                    bar.update()
                if callback is not None:
                    callback(self, rec)
        finally:
            if bar is not None:
                bar.close()
        return out

    def export_system(self, path) -> None:
        """Write the latest step's pressure system (flags, ``b``, the simulation's ``p``) as
        ``.npz`` for ``dcdm solve`` and the training data pipeline."""
        if self.last_projection is None:
            raise ValueError("no step has been run yet: call step() before export_system()")
        save_system(path, self.last_projection)
