"""CG time per iteration: the matrix-free loop against scipy's cg on the CSR matrix.

Both run a fixed number of iterations (rtol = atol = 0 so neither stops
early) on the same system, so the ratio of medians is the ratio of time per
iteration (issue 2 target: ours <= 1.0x scipy's).
"""

import pytest
import scipy.sparse.linalg as sla

from dcdm import cg
from dcdm.problems import gallery

from .conftest import RATIOS, record

ITERS = 100


@pytest.fixture(scope="module")
def system64():
    return gallery.smoke((64, 64, 64), obstacles=8, seed=0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cg_dcdm(benchmark, system64, dtype):
    A, b = system64
    A = A.grid.laplacian(dtype)
    b = b.astype(dtype)
    res = benchmark.pedantic(cg, args=(A, b), kwargs=dict(rtol=0.0, maxiter=ITERS), rounds=7,
                             iterations=1, warmup_rounds=1)
    assert res.iterations == ITERS
    record(benchmark, f"cg-dcdm-{dtype}", iterations=ITERS, problem="smoke3d", n=64, dtype=dtype)
    RATIOS[f"cg per iteration dcdm/scipy 64^3 {dtype}"] = (
        f"cg-dcdm-{dtype}", "cg-scipy-float64", 1.0,
        "matrix-free dcdm.cg over scipy cg on CSR float64; target <= 1.0")


def test_cg_scipy(benchmark, system64):
    A, b = system64
    C = A.to_csr()
    _x, info = benchmark.pedantic(sla.cg, args=(C, b), kwargs=dict(rtol=0.0, atol=0.0,
                                 maxiter=ITERS), rounds=7, iterations=1, warmup_rounds=1)
    assert info == ITERS
    record(benchmark, "cg-scipy-float64", iterations=ITERS, problem="smoke3d", n=64,
           dtype="float64", scipy=True)
