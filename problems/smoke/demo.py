"""``dcdm demo``: smoke rising past a moving obstacle, one pressure solve per step.

:func:`run_demo` runs :func:`~dcdm.problems.smoke.scene.rising_smoke` (or another
scene of :data:`~dcdm.problems.smoke.scene.SCENES`) with a progress bar, solving
every step's pressure system with the chosen method (default: CG with geometric
multigrid, the fastest measured on CPU, see ``bench/NOTES.md``). At ``compare``
steps spread over the run it also solves that step's system with every method
and preconditioner (from a zero initial guess, as ``dcdm solve`` would on the
exported file; methods whose optional parts are missing, e.g. DCDM without
trained weights, are skipped with a note) and exports the system to
``systems/step_NNNN.npz``. Then (``compare_two_phase``) it runs a short
:func:`~dcdm.problems.smoke.scene.two_phase_tank` (a heavy drop over a pool,
density ratio 1000, at most 32^3 or 64^2 cells, :data:`TWO_PHASE_STEPS` steps)
and compares every method on its last system too, the variable-density case
(face weights over three decades) next to the smoke's constant density; it is
exported as ``systems/two_phase.npz`` (an assembled matrix). It writes into ``out``:

``frames/frame_NNNN.png``   density frames (3-D: mid-slice and max-projection)
``smoke.gif``               the frames animated
``solver.png``              iterations and times per step
``records.json``            the scene, every step's record, the comparisons, the
                            two-phase comparison, a summary
``systems/*.npz``           the compared steps' pressure systems (``dcdm solve`` reads them)

Examples
--------
>>> import tempfile
>>> from dcdm.problems.smoke.demo import run_demo
>>> out = run_demo(n=16, steps=2, ndim=2, compare=0, out=tempfile.mkdtemp(), progress=False)
>>> len(out.records), out.gif.name
(2, 'smoke.gif')
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dcdm._version import __version__
from dcdm.solvers.compare import compare, format_table

from .render import FrameWriter, plot_records, write_gif
from .scene import SCENES, two_phase_tank
from .simulation import Simulation

__all__ = ["DEFAULT_STEPS", "DemoOutput", "compare_methods", "compare_two_phase_system",
           "format_table", "run_demo"]

log = logging.getLogger(__name__)

DEFAULT_STEPS = 240
COMPARE_MAXITER = 2000
#: iterations of a network (DCDM, FCG + neural) cost far more on a CPU: cap them lower so
#: an untrained or poor network cannot stall the demo
COMPARE_MAXITER_NETWORK = 100
#: steps of the two-phase run before its system is compared (the drop is falling)
TWO_PHASE_STEPS = 4
#: the network methods' cap on the two-phase system: the shipped networks are trained on
#: constant-density systems and FCG + neural does not converge at a 1000:1 density ratio, so
#: 30 iterations show that at under a third of the cost of 100
TWO_PHASE_MAXITER_NETWORK = 30


@dataclass
class DemoOutput:
    """Where :func:`run_demo` wrote its files, and what it measured."""

    folder: Path
    frames: list[Path]
    gif: Path
    plot: Path
    json: Path
    systems: list[Path]
    records: list[dict]
    comparisons: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    two_phase: dict | None = None


def compare_methods(A, b, rtol: float = 1e-6, maxiter: int = COMPARE_MAXITER,
                    warm_up: bool = True, network_maxiter: int = COMPARE_MAXITER_NETWORK
                    ) -> tuple[list[dict], list[str]]:
    """Solve ``A x = b`` with every method and preconditioner; returns ``(rows, skipped)``.

    :func:`dcdm.solvers.compare.compare` over the registries' comparison matrix (the one
    ``dcdm solve --method all`` prints), with network methods (DCDM, FCG + neural)
    stopped after at most ``network_maxiter`` iterations. Each row has
    ``method``, ``M``, ``iterations``, ``reason``, ``rel_residual`` (true
    ``||b - A x|| / ||b||``), ``setup_time``, ``solve_time``; ``skipped`` says which
    combinations could not run and why (a missing extra, no weights).
    """
    return compare(A, b, rtol=rtol, maxiter=maxiter, network_maxiter=network_maxiter,
                   warm_up=warm_up)


def two_phase_size(n: int, ndim: int) -> int:
    """Cells per axis of the demo's two-phase system: ``n / 2`` in 3-D (at most 32),
    ``n`` in 2-D (at most 64), at least 8."""
    return max(8, min(n // 2, 32) if ndim == 3 else min(n, 64))


def compare_two_phase_system(n: int, ndim: int, folder: Path, *, method: str = "cg",
                             M: Any = "auto", rtol: float = 1e-6, steps: int = TWO_PHASE_STEPS,
                             seed: int | None = 0, warm_up: bool = True) -> dict[str, Any]:
    """Run ``steps`` steps of :func:`~.scene.two_phase_tank` (``n`` cells per axis, solved
    with ``method``/``M``), export the last system to ``folder/systems/two_phase.npz`` and
    solve it with every method (:func:`compare_methods`, network methods capped at
    :data:`TWO_PHASE_MAXITER_NETWORK` iterations).

    Returns a JSON-ready dict: ``scene``, ``shape``, ``density_ratio``, ``step``,
    ``system`` (relative to ``folder``), ``records`` (the run's steps), ``rows`` and
    ``skipped`` (as :func:`compare_methods`), ``wall_time`` (run and comparison, s).
    """
    t0 = time.perf_counter()
    sim = Simulation(two_phase_tank(n, ndim=ndim, seed=seed, method=method, M=M, rtol=rtol))
    sim.run(steps)
    path = folder / "systems" / "two_phase.npz"
    sim.export_system(path)
    proj = sim.last_projection
    rows, skipped = compare_methods(proj.grid.laplacian(), proj.rhs, rtol=rtol,
                                    warm_up=warm_up, network_maxiter=TWO_PHASE_MAXITER_NETWORK)
    return {"scene": "two_phase_tank", "shape": list(sim.config.shape),
            "density_ratio": sim.config.two_phase.density_ratio, "step": sim.state.step,
            "system": str(path.relative_to(folder)),
            "records": [r.to_dict() for r in sim.records], "rows": rows, "skipped": skipped,
            "wall_time": time.perf_counter() - t0}


def _summary(records: list[dict]) -> dict[str, Any]:
    """Mean per-step costs (the first step, which compiles kernels, left out when possible)."""
    steady = records[1:] if len(records) > 1 else records
    mean = {k: float(np.mean([r[k] for r in steady])) for k in
            ("advect_time", "setup_time", "solve_time", "project_time", "step_time",
             "iterations")}
    return {
        "steps_averaged": len(steady),
        **{f"mean_{k}": v for k, v in mean.items()},
        "max_iterations": int(max(r["iterations"] for r in records)),
        "max_div_after": float(max(r["max_div_after"] for r in records)),
        "all_converged": all(r["converged"] for r in records),
    }


def _compare_at(steps: int, compare: int) -> list[int]:
    """``compare`` steps spread evenly over ``1..steps``, ending at the last."""
    k = min(max(compare, 0), steps)
    return sorted({round(steps * (i + 1) / k) for i in range(k)}) if k else []


def _output_folder(out) -> Path:
    """Create ``out`` (and ``out/systems``) and prove it writable before any step runs."""
    folder = Path(out)
    try:
        (folder / "systems").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder / "systems", prefix=".probe-"):
            pass
    except OSError as exc:  # a regular file on the path, no permission, a read-only disk
        raise ValueError(f"out {str(out)!r} cannot be used as the output folder: "
                         f"{exc.strerror}: {exc.filename or folder}") from exc
    return folder


def run_demo(
    n: int = 64,
    steps: int = DEFAULT_STEPS,
    ndim: int = 3,
    method: str = "auto",
    precond: str | None = "auto",
    out="out/demo",
    seed: int | None = 0,
    compare: int = 3,
    rtol: float = 1e-6,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
    scene: str = "rising_smoke",
    compare_two_phase: bool = True,
) -> DemoOutput:
    """Run the demo scene and write frames, GIF, plot, JSON and the compared systems.

    Parameters
    ----------
    n : int
        Cells per axis.
    steps : int
        Time steps.
    ndim : {2, 3}
        Dimensionality.
    method : str
        ``"auto"`` (CG), ``"cg"``, ``"fcg"`` or ``"dcdm"``.
    precond : str or None
        Preconditioner name for CG/FCG (``"auto"``: geometric multigrid).
    out : path
        Output folder (created; a ``ValueError`` names it when it cannot be).
    seed : int or None
        Seed of the inflow perturbation.
    compare : int
        Steps at which every method also solves the step's system.
    rtol : float
        Relative tolerance of every solve.
    progress : bool
        Show a tqdm bar.
    report : callable, optional
        Receives the comparison tables and the summary as text (default: the log).
    scene : str
        A scene of :data:`~dcdm.problems.smoke.scene.SCENES` (``"rising_smoke"``, or
        ``"two_phase_tank"``: its frames show the heavy fluid).
    compare_two_phase : bool
        Also compare every method on a short two-phase run's system (see the module
        docstring); not done when ``compare`` is 0 or the scene itself is two-phase.

    Returns
    -------
    DemoOutput
    """
    report = report or log.info
    if scene not in SCENES:
        raise ValueError(f"scene must be one of {sorted(SCENES)}, got {scene!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if method == "auto":
        method = "cg"
    if method == "dcdm" and precond not in (None, "auto"):
        raise ValueError(f"method='dcdm' takes no preconditioner precond (got {precond!r}; its "
                         "preconditioner is the network): pass precond=None, or use "
                         "method='fcg' with precond='neural'")
    M = None if method == "dcdm" else (precond or "auto")
    folder = _output_folder(out)
    sim = Simulation(SCENES[scene](n, ndim=ndim, seed=seed, method=method, M=M, rtol=rtol))
    cfg = sim.config
    frame_every = max(1, math.ceil(steps / 150))
    frames = FrameWriter(folder / "frames", ndim)
    compare_steps = _compare_at(steps, compare)
    comparisons: list[dict] = []
    systems: list[Path] = []

    def after_step(sim: Simulation, rec) -> None:
        if rec.step % frame_every == 0 or rec.step == steps:
            shown = sim.state.density if sim.state.phase is None else sim.state.phase
            frames.write(shown, sim.state.flags,
                         f"step {rec.step}, t = {rec.time:.2f} s: {rec.method} "
                         f"(M={rec.preconditioner}) {rec.iterations} iterations")
        if rec.step in compare_steps:
            path = folder / "systems" / f"step_{rec.step:04d}.npz"
            sim.export_system(path)
            systems.append(path)
            proj = sim.last_projection
            rows, skipped = compare_methods(proj.grid.laplacian(), proj.rhs, rtol=rtol,
                                            warm_up=not comparisons)
            comparisons.append({"step": rec.step, "system": str(path.relative_to(folder)),
                                "rows": rows, "skipped": skipped})

    t0 = time.perf_counter()
    two_phase, wall = None, None
    try:
        sim.run(steps, progress=progress, callback=after_step)
        wall = time.perf_counter() - t0  # the scene's run; the two-phase one times itself
        if compare_two_phase and compare > 0 and cfg.two_phase is None:
            two_phase = compare_two_phase_system(
                two_phase_size(n, ndim), ndim, folder, method=method, M=M, rtol=rtol,
                seed=seed, warm_up=not comparisons)
            systems.append(folder / two_phase["system"])
    except KeyboardInterrupt:  # keep what was computed so far
        log.warning("interrupted after %d steps; writing what there is", sim.state.step)
    finally:
        frames.close()
    if wall is None:
        wall = time.perf_counter() - t0
    records = [r.to_dict() for r in sim.records]
    if not records:
        raise RuntimeError("the demo ran no steps")
    summary = {"wall_time": wall, **_summary(records)}
    if two_phase is not None:
        summary["two_phase"] = {
            "shape": two_phase["shape"], "density_ratio": two_phase["density_ratio"],
            "steps": two_phase["step"], "wall_time": two_phase["wall_time"],
            "all_converged": all(r["converged"] for r in two_phase["records"]),
            "max_div_after": max(r["max_div_after"] for r in two_phase["records"]),
            "converged_methods": [f"{r['method']} M={r['M']}" for r in two_phase["rows"]
                                  if r["reason"].startswith("CONVERGED")],
        }
    gif = write_gif(frames.paths, folder / "smoke.gif")
    kind = "smoke" if cfg.two_phase is None else "two-phase"
    title = (f"{'x'.join(map(str, cfg.shape))} {kind}, {method} "
             f"M={records[-1]['preconditioner']}, rtol {rtol:g}")
    plot = plot_records(records, folder / "solver.png", compare_steps, title=title)
    payload = {
        "dcdm_version": __version__,
        "scene": {"name": scene, "n": n, "ndim": ndim, "steps": steps, "seed": seed,
                  "spacing": cfg.spacing, "dt": cfg.dt, "cfl": cfg.cfl,
                  "open_top": cfg.open_top, "method": method, "M": M, "rtol": rtol},
        "summary": summary,
        "records": records,
        "comparisons": comparisons,
        "two_phase": two_phase,
    }
    json_path = folder / "records.json"
    json_path.write_text(json.dumps(payload, indent=1))
    noted: set[str] = set()
    for c in comparisons:
        text = [f"step {c['step']}: every method on {c['system']} (zero initial guess)",
                format_table(c["rows"])]
        text += [f"  skipped {s}" for s in c["skipped"] if s not in noted]
        noted.update(c["skipped"])
        report("\n".join(text))
    if two_phase is not None:
        report("\n".join([
            f"two-phase: {'x'.join(map(str, two_phase['shape']))} heavy drop over a pool, density "
            f"ratio {two_phase['density_ratio']:g}, step {two_phase['step']}: every method on "
            f"{two_phase['system']} (zero initial guess; network methods capped at "
            f"{TWO_PHASE_MAXITER_NETWORK} iterations)", format_table(two_phase["rows"]),
            *[f"  skipped {s}" for s in two_phase["skipped"] if s not in noted]]))
    report(
        f"{title}: {len(records)} steps in {wall:.1f} s; per step (mean of "
        f"{summary['steps_averaged']}): advection {summary['mean_advect_time']:.3f} s, "
        f"solver set-up {summary['mean_setup_time']:.3f} s, solve "
        f"{summary['mean_solve_time']:.3f} s ({summary['mean_iterations']:.1f} iterations), "
        f"whole step {summary['mean_step_time']:.3f} s; max |div u| after projection "
        f"{summary['max_div_after']:.2e}"
    )
    return DemoOutput(folder, frames.paths, gif, plot, json_path, systems, records,
                      comparisons, summary, two_phase)
