"""The smoke pipeline: one pressure solve per simulation step, set-up included.

The scene is ``dcdm demo``'s (:func:`dcdm.problems.smoke.rising_smoke`): a plume rising
past a sphere that sweeps through it, so the flags, the matrix and the preconditioner
change every step. Each round runs 30 steps of a fresh simulation (warm-started solves,
rtol 1e-6) at 64^3 and 512^2 (``--bench-large`` adds 128^3 and 1024^2); the median is
the time of the whole run, and ``extra_info`` keeps the per-step lists (``step_s``,
``pressure_s`` = set-up + solve, ``step_iterations``) of the last round. Numba
compilation is excluded by warm-up steps (2 on a 16^d scene, 1 at the real size).
``--bench-smoke``: 32^3 and 128^2, 2 steps.

The simulation is imported lazily: without :mod:`dcdm.problems.smoke` the cases skip.
"""

from __future__ import annotations

import importlib

import pytest

from .conftest import is_large, is_smoke, record

RTOL = 1e-6
# label -> solver arguments of one step
METHODS = {
    "cg+mg": dict(method="cg", M="mg"),
    "cg+mic0": dict(method="cg", M="mic0"),
    "cg+amg": dict(method="cg", M="amg"),
    "fcg+mg": dict(method="fcg", M="mg"),
    "dcdm-robust": dict(method="dcdm", M=None, maxiter=200),
}
FAST = {"cg+mg", "fcg+mg"}
SIZES = {3: (64,), 2: (512,)}
LARGE_SIZES = {3: (64, 128), 2: (512, 1024)}
SMOKE_SIZES = {3: (32,), 2: (128,)}


def _steps(config) -> int:
    return 2 if is_smoke(config) else 30


def pytest_generate_tests(metafunc):
    if "pipe" not in metafunc.fixturenames:
        return
    config = metafunc.config
    sizes = SMOKE_SIZES if is_smoke(config) else LARGE_SIZES if is_large(config) else SIZES
    cases = [(dim, n, label) for dim in sorted(sizes, reverse=True) for n in sizes[dim]
             for label in METHODS]
    metafunc.parametrize("pipe", cases, ids=[f"smoke{d}d-{n}-{lab}" for d, n, lab in cases])


@pytest.fixture(scope="module")
def smoke_sim():
    """The simulation package, or a skip saying why it is not there."""
    try:
        return importlib.import_module("dcdm.problems.smoke")
    except ImportError as err:
        pytest.skip(f"the smoke simulation (dcdm.problems.smoke) is not available: {err}")


_WARM: dict = {}


def _warm_up(sim_mod, dim: int, n: int, label: str, model) -> None:
    """Two steps on a 16^d scene (does the method run at all?), then one at the real size
    (every kernel of that size compiled or loaded from Numba's cache)."""
    key = (dim, label)
    if key not in _WARM:
        try:
            sim_mod.Simulation(_config(sim_mod, 16, dim, label, model)).run(2)
            _WARM[key] = None
        except Exception as err:
            if METHODS[label]["method"] != "dcdm":
                raise
            _WARM[key] = f"DCDM weights do not load ({type(err).__name__}: {err})"
    if _WARM[key] is not None:
        pytest.skip(_WARM[key])
    if (dim, n, label) not in _WARM:
        sim_mod.Simulation(_config(sim_mod, n, dim, label, model)).run(1)
        _WARM[(dim, n, label)] = None


def _config(sim_mod, n: int, dim: int, label: str, model=None):
    solver = dict(METHODS[label])
    if solver["method"] == "dcdm" and model is not None:
        solver["solver_options"] = {"model": model}
    return sim_mod.rising_smoke(n, ndim=dim, seed=0, rtol=RTOL, **solver)


def test_pipeline(benchmark, request, bench_device, smoke_sim, pipe):
    dim, n, label = pipe
    if bench_device != "cpu":
        pytest.skip("the smoke simulation runs on the CPU")
    model = request.config.getoption("--bench-model")
    _warm_up(smoke_sim, dim, n, label, model)
    steps = _steps(request.config)

    def fresh():
        return (smoke_sim.Simulation(_config(smoke_sim, n, dim, label, model)),), {}

    def run(sim):
        return sim.run(steps)

    smoke = is_smoke(request.config)
    rounds = 1 if smoke or label not in FAST else 3
    records = benchmark.pedantic(run, setup=fresh, rounds=rounds, warmup_rounds=0)
    bad = [r for r in records if not r.converged]
    if METHODS[label]["method"] != "dcdm":
        assert not bad, bad[0]
    rel = [r.residual_norm / r.rhs_norm for r in records if r.rhs_norm > 0]
    pressure = [r.setup_time + r.solve_time for r in records]
    record(
        benchmark, f"pipeline-smoke{dim}d-{n}-{label}", kind="pipeline",
        method=METHODS[label]["method"], preconditioner=records[0].preconditioner, label=label,
        problem="rising_smoke", dim=dim, n=n, dtype="float64", device=bench_device, rtol=RTOL,
        steps=steps, iterations=sum(r.iterations for r in records) / steps,
        reason=bad[0].reason if bad else records[-1].reason,
        residual=max(r.residual_norm for r in records), rel_residual=max(rel, default=None),
        setup_s=sum(r.setup_time for r in records) / steps,
        solve_s=sum(r.solve_time for r in records) / steps,
        step_s=[r.step_time for r in records], pressure_s=pressure,
        project_s=[r.project_time for r in records],
        step_iterations=[r.iterations for r in records],
        n_fluid=[r.n_fluid for r in records],
    )
