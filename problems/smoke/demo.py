"""``dcdm demo``: smoke rising past a moving obstacle, one pressure solve per step.

:func:`run_demo` runs :func:`~dcdm.problems.smoke.scene.rising_smoke` with a
progress bar, solving every step's pressure system with the chosen method
(default: CG with geometric multigrid, the fastest measured on CPU, see
``bench/NOTES.md``). At ``compare`` steps spread over the run it also solves
that step's system with every method and preconditioner (from a zero initial
guess, as ``dcdm solve`` would on the exported file; methods whose optional
parts are missing, e.g. DCDM without trained weights, are skipped with a note)
and exports the system to ``systems/step_NNNN.npz``. It writes into ``out``:

``frames/frame_NNNN.png``   density frames (3-D: mid-slice and max-projection)
``smoke.gif``               the frames animated
``solver.png``              iterations and times per step
``records.json``            the scene, every step's record, the comparisons, a summary
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
from .scene import rising_smoke
from .simulation import Simulation

__all__ = ["DEFAULT_STEPS", "DemoOutput", "compare_methods", "format_table", "run_demo"]

log = logging.getLogger(__name__)

DEFAULT_STEPS = 240
COMPARE_MAXITER = 2000
#: iterations of a network (DCDM, FCG + neural) cost far more on a CPU: cap them lower so
#: an untrained or poor network cannot stall the demo
COMPARE_MAXITER_NETWORK = 100


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


def compare_methods(A, b, rtol: float = 1e-6, maxiter: int = COMPARE_MAXITER,
                    warm_up: bool = True) -> tuple[list[dict], list[str]]:
    """Solve ``A x = b`` with every method and preconditioner; returns ``(rows, skipped)``.

    :func:`dcdm.solvers.compare.compare` over the registries' comparison matrix (the one
    ``dcdm solve --method all`` prints), with network methods (DCDM, FCG + neural)
    stopped after at most :data:`COMPARE_MAXITER_NETWORK` iterations. Each row has
    ``method``, ``M``, ``iterations``, ``reason``, ``rel_residual`` (true
    ``||b - A x|| / ||b||``), ``setup_time``, ``solve_time``; ``skipped`` says which
    combinations could not run and why (a missing extra, no weights).
    """
    return compare(A, b, rtol=rtol, maxiter=maxiter, network_maxiter=COMPARE_MAXITER_NETWORK,
                   warm_up=warm_up)


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

    Returns
    -------
    DemoOutput
    """
    report = report or log.info
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
    sim = Simulation(rising_smoke(n, ndim=ndim, seed=seed, method=method, M=M, rtol=rtol))
    cfg = sim.config
    frame_every = max(1, math.ceil(steps / 150))
    frames = FrameWriter(folder / "frames", ndim)
    compare_steps = _compare_at(steps, compare)
    comparisons: list[dict] = []
    systems: list[Path] = []

    def after_step(sim: Simulation, rec) -> None:
        if rec.step % frame_every == 0 or rec.step == steps:
            frames.write(sim.state.density, sim.state.flags,
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
    try:
        sim.run(steps, progress=progress, callback=after_step)
    except KeyboardInterrupt:  # keep what was computed so far
        log.warning("interrupted after %d steps; writing what there is", sim.state.step)
    finally:
        frames.close()
    wall = time.perf_counter() - t0
    records = [r.to_dict() for r in sim.records]
    if not records:
        raise RuntimeError("the demo ran no steps")
    summary = {"wall_time": wall, **_summary(records)}
    gif = write_gif(frames.paths, folder / "smoke.gif")
    scene = (f"{'x'.join(map(str, cfg.shape))} smoke, {method} M={records[-1]['preconditioner']}"
             f", rtol {rtol:g}")
    plot = plot_records(records, folder / "solver.png", compare_steps, title=scene)
    payload = {
        "dcdm_version": __version__,
        "scene": {"name": "rising_smoke", "n": n, "ndim": ndim, "steps": steps, "seed": seed,
                  "spacing": cfg.spacing, "dt": cfg.dt, "cfl": cfg.cfl,
                  "open_top": cfg.open_top, "method": method, "M": M, "rtol": rtol},
        "summary": summary,
        "records": records,
        "comparisons": comparisons,
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
    report(
        f"{scene}: {len(records)} steps in {wall:.1f} s; per step (mean of "
        f"{summary['steps_averaged']}): advection {summary['mean_advect_time']:.3f} s, "
        f"solver set-up {summary['mean_setup_time']:.3f} s, solve "
        f"{summary['mean_solve_time']:.3f} s ({summary['mean_iterations']:.1f} iterations), "
        f"whole step {summary['mean_step_time']:.3f} s; max |div u| after projection "
        f"{summary['max_div_after']:.2e}"
    )
    return DemoOutput(folder, frames.paths, gif, plot, json_path, systems, records,
                      comparisons, summary)
