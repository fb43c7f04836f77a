"""Spectra of the preconditioned operators, and what the spectrum back-end costs.

``test_spectrum``: per smoke tank (the scaling report's problem: 8 obstacles, seed 0) and
linear preconditioner, one :func:`dcdm.spectrum.survey` row: extremes and ``kappa`` of
``M^-1 A`` (Lanczos), the free ``kappa`` read off the CG solve, predicted (from ``b``,
and from random right-hand sides) vs actual CG iterations to rtol 1e-6, and the SLQ
density (kept as a curve over ``log10(lambda / lambda_max)`` for the report's plot). The
timed call is the spectrum (extremes + SLQ + predictions), not the solve. Sizes: 3-D
32^3 and 64^3, 2-D 128^2 and 256^2 (``--bench-smoke``: 16^3 and 64^2); the slow
preconditioners (none, Jacobi) stop at 32^3 / 128^2 unless ``--bench-large``.

``test_slq_overhead``: SLQ of MG-preconditioned 64^3 (16^3 with ``--bench-smoke``) against
the bare loop of the same mat-vecs and preconditioner applications: the target is an
overhead of at most 1.1x.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from dcdm import kernels, spectrum
from dcdm.problems import gallery
from dcdm.solvers import as_operator, make_preconditioner

from .conftest import MEDIANS, RATIOS, is_large, is_smoke, record
from .conftest import cpu_only as _cpu_only

RTOL = 1e-6
SLOW = ("none", "jacobi")
STEPS, PROBES, PREDICT_STEPS = 30, 6, 400


def _sizes(config):
    if is_smoke(config):
        return [(3, 16), (2, 64)]
    return [(3, 32), (3, 64), (2, 128), (2, 256)]


def pytest_generate_tests(metafunc):
    if "spectrum_case" not in metafunc.fixturenames:
        return
    params = []
    for dim, n in _sizes(metafunc.config):
        for M in spectrum.LINEAR:
            marks = []
            if M in SLOW and n > (32 if dim == 3 else 128) and not is_large(metafunc.config):
                marks.append(pytest.mark.skip(reason=f"M={M} spectra stop at 32^3 / 128^2 in "
                                                     "the default suite (--bench-large runs it)"))
            params.append(pytest.param((dim, n, M), id=f"smoke{dim}d-{n}-{M}", marks=marks))
    metafunc.parametrize("spectrum_case", params)


_CACHE: dict = {}


def _tank(dim: int, n: int):
    if (dim, n) not in _CACHE:
        _CACHE.clear()
        _CACHE[(dim, n)] = gallery.smoke((n,) * dim, obstacles=8, seed=0)
    return _CACHE[(dim, n)]


def test_spectrum(benchmark, bench_device, spectrum_case):
    _cpu_only(bench_device)
    dim, n, M = spectrum_case
    A, b = _tank(dim, n)
    rows = []

    def run():
        rows[:] = spectrum.survey(A, b, (M,), rtol=RTOL, steps=STEPS, probes=PROBES,
                                  predict_steps=PREDICT_STEPS)

    benchmark.pedantic(run, rounds=1, iterations=1)
    row = rows[0]
    if "skipped" in row:
        pytest.skip(row["skipped"])
    grid, values = row.pop("density").relative_log_density(points=160)
    grid = grid.round(4).tolist()
    values = values.tolist()
    record(benchmark, f"spectrum-smoke{dim}d-{n}-{M}", kind="spectrum", method="cg",
           preconditioner=M, problem="smoke", dim=dim, n=n, dtype="float64",
           iterations=row["actual"], reason=row["reason"], setup_s=row["setup_time"],
           lowest=row["lowest"], highest=row["highest"], kappa=row["kappa"],
           extremes_converged=row["extremes_converged"],
           kappa_from_solve=row["kappa_from_solve"], predicted=row["predicted"],
           predicted_generic=row["predicted_generic"], extrapolated=row["extrapolated"],
           slq_steps=STEPS, slq_probes=PROBES, density_grid=grid, density=values)
    assert row["reason"].startswith("CONVERGED")


def test_slq_overhead(benchmark, bench_device, request):
    _cpu_only(bench_device)
    n = 16 if is_smoke(request.config) else 64
    A, _ = _tank(3, n)
    A = as_operator(A)
    P = make_preconditioner("mg", A)
    probes, steps = 4, STEPS
    support = np.asarray(A.support)
    rng = np.random.default_rng(0)
    v = np.where(support, rng.standard_normal(A.shape[0]), 0.0)

    def bare():  # the same products and nothing else
        w = v
        for _ in range(probes):
            z = P.apply(w)
            for _ in range(steps):
                w = np.asarray(A.matvec(z))
                w[~support] = 0
                w /= np.sqrt(kernels.dot(w, w))  # not BLAS: its pool spins against Numba's
                z = P.apply(w)

    def run_slq():
        spectrum.slq(A, M=P, steps=steps, probes=probes, seed=0)

    rounds = 1 if is_smoke(request.config) else 3
    bare()  # warm-up: kernels compiled, MG buffers allocated
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        bare()
        times.append(time.perf_counter() - t0)
    MEDIANS[f"slq-bare-{n}"] = float(np.median(times))
    benchmark.pedantic(run_slq, rounds=rounds, iterations=1)
    record(benchmark, f"slq-mg-smoke3d-{n}", kind="spectrum", method="slq",
           preconditioner="mg", problem="smoke", dim=3, n=n, dtype="float64",
           slq_steps=steps, slq_probes=probes, bare_loop_s=MEDIANS[f"slq-bare-{n}"])
    RATIOS[f"SLQ overhead mg {n}^3"] = (
        f"slq-mg-smoke3d-{n}", f"slq-bare-{n}", 1.0,
        "SLQ time over the bare loop of the same mat-vecs and V-cycles; target <= 1.1")
