"""Mat-vec bandwidth against a plain copy of the same bytes (issue 2 target: >= 0.7)."""

import numpy as np
import pytest

from dcdm import kernels
from dcdm.problems import scenes

from .conftest import RATIOS, record

SIZES = {"3d-128": (128, 128, 128), "2d-2048": (2048, 2048)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("size", sorted(SIZES))
def test_matvec(benchmark, rng, size, dtype):
    g = scenes.smoke(SIZES[size], obstacles=8, seed=0)
    x = rng.standard_normal(g.shape).astype(dtype)
    out = np.empty_like(x)
    fp = g.padded_flags
    mod = kernels.select(x)
    benchmark.pedantic(mod.laplacian_matvec, args=(fp, x, out, 1.0), rounds=30, iterations=1,
                       warmup_rounds=3)
    nbytes = 2 * x.nbytes + fp.size  # read x and the flags, write out
    record(benchmark, f"matvec-{size}-{dtype}", bytes=nbytes, backend=mod.__name__)
    RATIOS[f"matvec/copy bandwidth {size} {dtype}"] = (
        f"copy-{size}-{dtype}", f"matvec-{size}-{dtype}", nbytes / (2 * x.nbytes),
        "bytes/s of the general mat-vec over bytes/s of np.copyto of x")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("size", sorted(SIZES))
def test_matvec_fluid(benchmark, rng, size, dtype):
    """The mat-vec the solvers use on their Krylov vectors (zero off FLUID cells)."""
    g = scenes.smoke(SIZES[size], obstacles=8, seed=0)
    x = np.where(g.fluid, rng.standard_normal(g.shape), 0).astype(dtype)
    out = np.empty_like(x)
    code = g.stencil_code
    mod = kernels.select(x)
    benchmark.pedantic(mod.laplacian_matvec_fluid, args=(code, x, out, 1.0), rounds=30,
                       iterations=1, warmup_rounds=3)
    nbytes = 2 * x.nbytes + code.size  # read x and the codes, write out
    record(benchmark, f"matvec_fluid-{size}-{dtype}", bytes=nbytes, backend=mod.__name__)
    RATIOS[f"fluid mat-vec/copy bandwidth {size} {dtype}"] = (
        f"copy-{size}-{dtype}", f"matvec_fluid-{size}-{dtype}", nbytes / (2 * x.nbytes),
        "bytes/s of the solvers' mat-vec over bytes/s of np.copyto of x; target >= 0.7")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("size", sorted(SIZES))
def test_copy(benchmark, rng, size, dtype):
    x = rng.standard_normal(SIZES[size]).astype(dtype)
    out = np.empty_like(x)
    benchmark.pedantic(np.copyto, args=(out, x), rounds=30, iterations=1, warmup_rounds=3)
    record(benchmark, f"copy-{size}-{dtype}", bytes=2 * x.nbytes)
