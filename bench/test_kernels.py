"""Mat-vec bandwidth against a plain copy of the same bytes (issue 2 target: >= 0.7).

Sizes: 3-D 128^3 and 2-D 2048^2 (``--bench-smoke``: 32^3 and 256^2), float64 and
float32, on the seeded smoke tank. Bandwidth = bytes moved / median time.
"""

import numpy as np
import pytest

from dcdm import kernels
from dcdm.problems import scenes

from .conftest import RATIOS, is_smoke, kernel_sizes, record, synchronized, to_device

DTYPES = ["float64", "float32"]


def pytest_generate_tests(metafunc):
    if "size" in metafunc.fixturenames:
        sizes = kernel_sizes(metafunc.config)
        labels = [f"{d}d-{sizes[d]}" for d in sorted(sizes, reverse=True)]
        metafunc.parametrize("size", labels)


def _shape(size: str) -> tuple[int, ...]:
    dim, n = size.split("d-")
    return (int(n),) * int(dim)


def _rounds(config) -> dict:
    return dict(rounds=5, iterations=1, warmup_rounds=1) if is_smoke(config) else dict(
        rounds=30, iterations=1, warmup_rounds=3)


def _array_module(device: str):
    if device == "cuda":
        import cupy

        return cupy
    return np


def _fields(size: str, dtype: str, device: str) -> dict:
    shape = _shape(size)
    return dict(problem="smoke", dim=len(shape), n=shape[0], dtype=dtype, device=device)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matvec(benchmark, request, rng, bench_device, size, dtype):
    """The general flag-aware mat-vec (exact for any ``x``)."""
    g = scenes.smoke(_shape(size), obstacles=8, seed=0)
    x = to_device(rng.standard_normal(g.shape).astype(dtype), bench_device)
    out = x.copy()
    fp = to_device(g.padded_flags, bench_device)
    mod = kernels.select(x)
    benchmark.pedantic(synchronized(mod.laplacian_matvec, bench_device), args=(fp, x, out, 1.0),
                       **_rounds(request.config))
    nbytes = 2 * x.nbytes + fp.size  # read x and the flags, write out
    record(benchmark, f"matvec-{size}-{dtype}", kind="kernel", method="matvec", bytes=nbytes,
           backend=mod.__name__, **_fields(size, dtype, bench_device))
    RATIOS[f"matvec/copy bandwidth {size} {dtype}"] = (
        f"copy-{size}-{dtype}", f"matvec-{size}-{dtype}", nbytes / (2 * x.nbytes),
        "bytes/s of the general mat-vec over bytes/s of np.copyto of x")


@pytest.mark.parametrize("dtype", DTYPES)
def test_matvec_fluid(benchmark, request, rng, bench_device, size, dtype):
    """The mat-vec the solvers use on their Krylov vectors (zero off FLUID cells)."""
    g = scenes.smoke(_shape(size), obstacles=8, seed=0)
    x = to_device(np.where(g.fluid, rng.standard_normal(g.shape), 0).astype(dtype), bench_device)
    out = x.copy()
    code = to_device(g.stencil_code, bench_device)
    mod = kernels.select(x)
    benchmark.pedantic(synchronized(mod.laplacian_matvec_fluid, bench_device),
                       args=(code, x, out, 1.0), **_rounds(request.config))
    nbytes = 2 * x.nbytes + code.size  # read x and the codes, write out
    record(benchmark, f"matvec_fluid-{size}-{dtype}", kind="kernel", method="matvec_fluid",
           bytes=nbytes, backend=mod.__name__, **_fields(size, dtype, bench_device))
    RATIOS[f"fluid mat-vec/copy bandwidth {size} {dtype}"] = (
        f"copy-{size}-{dtype}", f"matvec_fluid-{size}-{dtype}", nbytes / (2 * x.nbytes),
        "bytes/s of the solvers' mat-vec over bytes/s of np.copyto of x; target >= 0.7")


@pytest.mark.parametrize("dtype", DTYPES)
def test_copy(benchmark, request, rng, bench_device, size, dtype):
    """The reference: a plain copy of the same array (read x, write out)."""
    x = to_device(rng.standard_normal(_shape(size)).astype(dtype), bench_device)
    out = x.copy()
    xp = _array_module(bench_device)
    benchmark.pedantic(synchronized(xp.copyto, bench_device), args=(out, x),
                       **_rounds(request.config))
    record(benchmark, f"copy-{size}-{dtype}", kind="kernel", method="copy", bytes=2 * x.nbytes,
           backend=f"{xp.__name__}.copyto", **_fields(size, dtype, bench_device))
