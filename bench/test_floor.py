"""Multigrid at the memory-bandwidth floor (issue 16, item 3): every cost in same-run mat-vecs.

For the 3-D smoke tank and the baffle tank at 64^3 and 128^3 (16^3 with ``--bench-smoke``),
in one run: ``np.copyto`` of a float64 vector (the bandwidth reference), the solvers' fluid
mat-vec, one V-cycle of ``M="mg"`` in float64 and with ``precision="float32"`` (a float32
V-cycle on float64 vectors), the multigrid set-up alone, and set-up + CG solve to rtol 1e-6
with each. The report divides every median by the same run's mat-vec median (issue 16's
target: set-up + solve <= 60 mat-vecs at 128^3) and shows each kernel's bandwidth against
the copy's. Numba is compiled by a warm-up solve at 48^3 before the first case.
"""

from __future__ import annotations

import numpy as np
import pytest

import dcdm
from dcdm.problems import gallery
from dcdm.solvers.precond.mg import GeometricMG

from .conftest import cpu_only, is_smoke, record

RTOL = 1e-6
PHASES = ("copy", "matvec", "vcycle", "vcycle-f32", "setup", "solve", "solve-f32")
_CACHE: dict = {}


def pytest_generate_tests(metafunc):
    if "floor_case" in metafunc.fixturenames:
        sizes = [16] if is_smoke(metafunc.config) else [64, 128]
        metafunc.parametrize("floor_case", [
            pytest.param((problem, n, phase), id=f"{problem}3d-{n}-{phase}")
            for problem in ("smoke", "baffles") for n in sizes for phase in PHASES])


def _problem(problem: str, n: int):
    key = (problem, n)
    if key not in _CACHE:
        if not _CACHE:  # compile the kernels once, off the clock
            A, b = gallery.build("smoke3d", 48)
            for precision in (None, "float32"):
                dcdm.solve(A, b, M=GeometricMG(precision=precision), rtol=RTOL)
        _CACHE.clear()  # one problem in memory at a time
        _CACHE[key] = gallery.build(f"{problem}3d", n)
    return _CACHE[key]


def _rounds(config, phase: str) -> dict:
    if is_smoke(config):
        return dict(rounds=2, iterations=1, warmup_rounds=1)
    many = phase in ("copy", "matvec", "vcycle", "vcycle-f32")
    return dict(rounds=31 if many else 5, iterations=1, warmup_rounds=2 if many else 1)


def test_floor(benchmark, request, bench_device, floor_case):
    cpu_only(bench_device)
    problem, n, phase = floor_case
    A, b = _problem(problem, n)
    x = np.where(A.support, np.random.default_rng(0).standard_normal(A.shape[0]), 0.0)
    out = np.empty_like(x)
    extra: dict = {}
    precision = "float32" if phase.endswith("f32") else None
    if phase == "copy":
        fn, extra["bytes"] = (lambda: np.copyto(out, x)), 2 * x.nbytes
    elif phase == "matvec":
        fn, extra["bytes"] = (lambda: A.matvec_fluid(x, out)), 2 * x.nbytes + x.size
    elif phase.startswith("vcycle"):
        M = GeometricMG(precision=precision).build(A)
        M.apply(b, out=out)
        fn = lambda: M.apply(b, out=out)  # noqa: E731
        extra.update(levels=M.stats["mg_levels"])
    elif phase == "setup":
        fn = lambda: GeometricMG().build(A)  # noqa: E731
    else:
        def fn():
            return dcdm.solve(A, b, M=GeometricMG(precision=precision), rtol=RTOL)
    result = benchmark.pedantic(fn, **_rounds(request.config, phase))
    if phase.startswith("solve"):
        res = result
        assert res.converged, res.reason
        extra.update(iterations=res.iterations, reason=res.reason.name,
                     rel_residual=res.residual_norm / float(np.linalg.norm(b)),
                     setup_s=res.setup_time, solve_s=res.solve_time)
    record(benchmark, f"floor-{problem}3d-{n}-{phase}", kind="floor", method=phase,
           preconditioner="mg", problem=problem, dim=3, n=n, dtype="float64",
           precision=precision or "float64", **extra)
