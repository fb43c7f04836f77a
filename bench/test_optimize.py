"""GNS on the semilinear Poisson energy, inner solves by dcdm, beside scipy's Newton methods.

``f(u) = 1/2 u'Au + sum u_i^4/4 - b'u`` on the smoke tank (8 obstacles, seed 0) at 32^3 and
64^3 (128^3 with ``--bench-large``; 16^3 with ``--bench-smoke``), ``b`` of size 0.1 (the
Laplacian dominates) and 10 (the cubic term does), to ``||g|| <= 1e-8``: GNS with no inner
preconditioner, MIC0 and AMG (each built once per outer iteration on ``H + lam I``), and
scipy's ``Newton-CG`` and ``trust-krylov`` given the same ``hessp`` (scipy's Newton-CG
cannot take a Hessian preconditioner: scipy issue 8756). Recorded: outer iterations, inner
iterations (Hessian products for scipy), the final gradient norm, wall time (one round).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize as so

from dcdm import optimize
from dcdm.problems import optimization

from .conftest import cpu_only as _cpu_only
from .conftest import is_large, is_smoke, record

GTOL = 1e-8
RUNS = ("gns", "gns+mic0", "gns+amg", "scipy-newton-cg", "scipy-trust-krylov")


def pytest_generate_tests(metafunc):
    if "optimize_case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    sizes = [16] if is_smoke(config) else [32, 64] + ([128] if is_large(config) else [])
    metafunc.parametrize("optimize_case", [
        pytest.param((n, scale, run), id=f"semilinear3d-{n}-b{scale:g}-{run}")
        for n in sizes for scale in (0.1, 10.0) for run in RUNS])


_CACHE: dict = {}


def _problem(n: int, scale: float):
    if (n, scale) not in _CACHE:
        _CACHE.clear()
        _CACHE[(n, scale)] = optimization.semilinear_poisson((n,) * 3, b_scale=scale, seed=0,
                                                             obstacles=8)
    return _CACHE[(n, scale)]


def _run(P, run: str) -> dict:
    if run.startswith("gns"):
        M = run.partition("+")[2] or None
        res = optimize.minimize(P.fun, P.x0, jac=P.jac, hess=P.hess, M=M, gtol=GTOL, maxiter=200)
        return dict(nit=res.nit, inner=res.n_inner, trials=res.n_trials, success=res.success,
                    gammas=res.gammas.tolist(), values=res.values.tolist(), x=res.x)
    method = "Newton-CG" if run.endswith("newton-cg") else "trust-krylov"
    options = {"xtol": 1e-14} if method == "Newton-CG" else {"gtol": GTOL}
    res = so.minimize(P.fun, P.x0, jac=P.jac, hessp=P.hessp, method=method,
                      options={"maxiter": 200, **options})
    return dict(nit=int(res.nit), inner=int(res.get("nhev", 0)), trials=None,
                success=bool(res.success), x=res.x)


def test_semilinear_poisson(benchmark, bench_device, optimize_case):
    _cpu_only(bench_device)
    n, scale, run = optimize_case
    P = _problem(n, scale)
    if n == 16 or not _CACHE.get("warm"):
        _run(optimization.semilinear_poisson((8, 8, 8), b_scale=1.0), "gns+mic0")  # JIT
        _CACHE["warm"] = True
    out = {}
    benchmark.pedantic(lambda: out.update(_run(P, run)), rounds=1, iterations=1)
    gnorm = float(np.linalg.norm(P.jac(out.pop("x"))))
    record(benchmark, f"optimize-semilinear3d-{n}-b{scale:g}-{run}", kind="optimize",
           method=run, preconditioner=run.partition("+")[2] or "none", problem="semilinear",
           dim=3, n=n, dtype="float64", iterations=out["nit"], inner_iterations=out["inner"],
           trials=out["trials"], success=out["success"], grad_norm=gnorm, b_scale=scale,
           gammas=out.get("gammas"), values=out.get("values"))
