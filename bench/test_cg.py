"""CG time per iteration: the matrix-free loop against scipy's cg on the CSR matrix.

Both run a fixed number of iterations (rtol = atol = 0 so neither stops
early) on the same system, so the ratio of medians is the ratio of time per
iteration (issue 2 target: ours <= 1.0x scipy's). 64^3 smoke tank (32^3 under
``--bench-smoke``).
"""

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from dcdm import cg
from dcdm.problems import gallery

from .conftest import RATIOS, is_smoke, record, synchronized, to_device

ITERS = 100


@pytest.fixture(scope="module")
def n(request):
    return 32 if is_smoke(request.config) else 64


@pytest.fixture(scope="module")
def system(n):
    return gallery.smoke((n, n, n), obstacles=8, seed=0)


def _rounds(config) -> dict:
    return dict(rounds=1, iterations=1, warmup_rounds=1) if is_smoke(config) else dict(
        rounds=7, iterations=1, warmup_rounds=1)


def _fields(n: int, dtype: str, device: str) -> dict:
    return dict(problem="smoke", dim=3, n=n, dtype=dtype, device=device, rtol=0.0,
                case="fixed-iterations")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cg_dcdm(benchmark, request, system, n, bench_device, dtype):
    A, b = system
    A = A.grid.laplacian(dtype)
    b = to_device(b.astype(dtype), bench_device)
    res = benchmark.pedantic(synchronized(cg, bench_device), args=(A, b),
                             kwargs=dict(rtol=0.0, maxiter=ITERS), **_rounds(request.config))
    assert res.iterations == ITERS
    record(benchmark, f"cg-dcdm-{dtype}", kind="solver", method="cg", preconditioner="none",
           iterations=ITERS, reason=res.reason.name, residual=float(res.residual_norm),
           setup_s=res.setup_time, solve_s=res.solve_time, **_fields(n, dtype, bench_device))
    RATIOS[f"cg per iteration dcdm/scipy {n}^3 {dtype}"] = (
        f"cg-dcdm-{dtype}", "cg-scipy-float64", 1.0,
        "matrix-free dcdm.cg over scipy cg on CSR float64; target <= 1.0")


def test_cg_scipy(benchmark, request, system, n):
    A, b = system
    C = A.to_csr()
    x, info = benchmark.pedantic(sla.cg, args=(C, b), kwargs=dict(rtol=0.0, atol=0.0,
                                 maxiter=ITERS), **_rounds(request.config))
    assert info == ITERS
    record(benchmark, "cg-scipy-float64", kind="solver", method="scipy.cg",
           preconditioner="none", iterations=ITERS, reason="MAX_ITERATIONS",
           residual=float(np.linalg.norm(b - C @ x)), **_fields(n, "float64", "cpu"))
