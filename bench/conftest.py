"""Shared machinery of the benchmark suites.

- Options: ``--bench-smoke`` (smallest sizes, one round: the suite's own test),
  ``--bench-large`` (adds 256^3 and lifts the default caps on slow methods),
  ``--bench-sizes`` (explicit sizes), ``--bench-device`` (``cpu`` or ``cuda``) and
  ``--bench-model`` (a DCDM checkpoint instead of the shipped weights).
- :func:`record` tags every benchmark with the same ``extra_info`` schema
  (:data:`SCHEMA` plus ``versions``), which ``bench/report.py`` reads.
- ``MEDIANS`` and ``RATIOS``: benchmarks store their median under a key, and
  ``RATIOS`` names pairs whose ratio the terminal summary prints (both measured
  in the same run). The ratios, the suite's wall time, its options and the
  skipped cases also go into the ``--benchmark-json`` file (key ``"dcdm"``),
  with :func:`gpu_info` (card, driver, CUDA, CuPy and torch versions, kernel
  loader) when a GPU was used.
- Devices: the ``bench_device`` fixture (``--bench-device``) and the ``gpu``
  fixture (CuPy, for the GPU-only cases of ``test_gpu.py``) skip with
  "no CUDA device (...)" where there is none.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
import time

import numpy as np
import pytest

MEDIANS: dict[str, float] = {}
# label -> (numerator key, denominator key, factor, what the ratio means);
# the summary prints factor * median[numerator] / median[denominator]
RATIOS: dict[str, tuple[str, str, float, str]] = {}

KINDS = ("kernel", "solver", "pipeline", "spectrum", "optimize", "differentiable", "floor")
# every record carries these keys (None where they do not apply)
SCHEMA = ("key", "kind", "method", "preconditioner", "problem", "dim", "n", "unknowns", "dtype",
          "device", "iterations", "reason", "residual", "rel_residual", "setup_s", "solve_s")
LIBRARIES = ("dcdm", "numpy", "scipy", "numba", "pyamg", "torch", "cupy-cuda12x",
             "cupy-cuda13x")

# sizes per dimension: cells per axis
DEFAULT_SIZES = {3: (32, 64, 128), 2: (256, 512, 1024, 2048)}
LARGE_SIZES = {3: (32, 64, 128, 256), 2: (256, 512, 1024, 2048)}
SMOKE_SIZES = {3: (32,), 2: (256,)}
KERNEL_SIZES = {3: 128, 2: 2048}
SMOKE_KERNEL_SIZES = {3: 32, 2: 256}

_SESSION: dict = {"start": time.time(), "skipped": []}


def pytest_addoption(parser):
    group = parser.getgroup("dcdm benchmarks")
    group.addoption("--bench-smoke", action="store_true",
                    help="smallest sizes only (3-D 32^3, 2-D 256^2), one round: checks the code")
    group.addoption("--bench-large", action="store_true",
                    help="add 256^3 and run the slow methods at every size (default: capped)")
    group.addoption("--bench-sizes", default=None, metavar="SPEC",
                    help="explicit sizes, e.g. '3=32,64;2=256' (overrides smoke/large sizes)")
    group.addoption("--bench-device", default="cpu", choices=("cpu", "cuda"),
                    help="where the dcdm solvers and kernels run (default cpu)")
    group.addoption("--bench-model", default=None, metavar="PATH",
                    help="DCDM checkpoint for the dcdm cases (default: the shipped weights)")


def pytest_configure(config):
    spec = config.getoption("--bench-sizes")
    if spec:
        _parse_sizes(spec)  # a usage error now, not one per test module


def pytest_collection_modifyitems(config, items):
    """The network's cases run last: once torch has started its thread pool, it would share
    the two cores with Numba's in every case after it."""
    items.sort(key=lambda item: "dcdm-robust" in item.nodeid)


def pytest_sessionstart(session):
    _SESSION["start"] = time.time()
    _SESSION["load_start"] = _load_average()


def _load_average() -> float | None:
    """The 1-minute load average: above ~0.5 on 2 cores, other jobs shared the machine."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def _parse_sizes(spec: str) -> dict[int, tuple[int, ...]]:
    sizes: dict[int, tuple[int, ...]] = {}
    try:
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            dim, ns = part.split("=")
            sizes[int(dim)] = tuple(int(n) for n in ns.split(",") if n.strip())
    except ValueError as err:
        raise pytest.UsageError(
            f"--bench-sizes={spec!r}: expected e.g. '3=32,64;2=256' ({err})") from None
    if not sizes or any(d not in (2, 3) or not ns or min(ns) < 4 for d, ns in sizes.items()):
        raise pytest.UsageError(f"--bench-sizes={spec!r}: dimensions 2 or 3, sizes >= 4")
    return sizes


def solver_sizes(config) -> dict[int, tuple[int, ...]]:
    """Cells per axis of the solver cases, per dimension, under the command-line options."""
    spec = config.getoption("--bench-sizes")
    if spec:
        return _parse_sizes(spec)
    if config.getoption("--bench-smoke"):
        return SMOKE_SIZES
    return LARGE_SIZES if config.getoption("--bench-large") else DEFAULT_SIZES


def kernel_sizes(config) -> dict[int, int]:
    """Cells per axis of the kernel cases (one size per dimension)."""
    spec = config.getoption("--bench-sizes")
    if spec:
        return {d: max(ns) for d, ns in _parse_sizes(spec).items()}
    return SMOKE_KERNEL_SIZES if config.getoption("--bench-smoke") else KERNEL_SIZES


def is_smoke(config) -> bool:
    return bool(config.getoption("--bench-smoke"))


def is_large(config) -> bool:
    return bool(config.getoption("--bench-large"))


# -- devices -------------------------------------------------------------------------------

@functools.cache
def cuda_unavailable() -> str | None:
    """Why CUDA cannot be used here, or None when a device and CuPy are present."""
    if importlib.util.find_spec("cupy") is None:
        return "CuPy is not installed"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CuPy raises its own runtime errors without a driver
        return f"{type(err).__name__}: {err}"
    return None if count > 0 else "no GPU visible to CuPy"


def _skip_without_cuda() -> None:
    """Skip the case, saying why, unless a CUDA device and CuPy are present."""
    why = cuda_unavailable()
    if why is not None:
        pytest.skip(f"no CUDA device ({why})")


@pytest.fixture(scope="session")
def bench_device(request) -> str:
    """``"cpu"`` or ``"cuda"``; under ``--bench-device cuda`` skips without a usable GPU."""
    device = request.config.getoption("--bench-device")
    if device == "cuda":
        _skip_without_cuda()
    return device


def cpu_only(device: str) -> None:
    """Skip a case that runs on the CPU only (NumPy, a CPU torch model) under
    ``--bench-device cuda`` (the ``bench_device`` fixture has already skipped without a GPU)."""
    if device != "cpu":
        pytest.skip("runs on the CPU only (NumPy / CPU torch): nothing to measure on the GPU")


@pytest.fixture(scope="session")
def gpu():
    """CuPy, for the cases that only exist on a GPU; skips without CuPy and a device
    (whatever ``--bench-device`` says)."""
    _skip_without_cuda()
    import cupy

    return cupy


def to_device(x, device: str):
    """``x`` as an array on ``device`` (CuPy for cuda)."""
    if device == "cuda":
        import cupy

        return cupy.asarray(x)
    return x


def synchronized(fn, device: str):
    """``fn`` followed by a device synchronisation, so that timings cover the GPU work."""
    if device != "cuda":
        return fn
    import cupy

    def run(*args, **kwargs):
        out = fn(*args, **kwargs)
        cupy.cuda.Device().synchronize()
        return out

    return run


# -- the record --------------------------------------------------------------------------

@functools.cache
def versions() -> dict[str, str]:
    """Installed versions of the libraries that decide the numbers (without importing them:
    importing torch would start a second OpenMP runtime next to Numba's)."""
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name.split("-")[0]] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def record(benchmark, key: str, *, kind: str, **extra) -> None:
    """Tag a finished benchmark with the common ``extra_info`` schema; store its median.

    Parameters
    ----------
    benchmark
        The pytest-benchmark fixture, after its ``pedantic`` call.
    key : str
        Unique, stable name of the case (the report compares runs by it).
    kind : {"kernel", "solver", "pipeline", "spectrum", "optimize", "differentiable", "floor"}
    **extra
        Values for :data:`SCHEMA` keys and anything else worth keeping (``bytes``
        adds a ``GB/s`` entry).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    info = dict.fromkeys(SCHEMA)
    info.update(key=key, kind=kind, device="cpu")
    if extra.get("dim") is not None and extra.get("n") is not None:
        info["unknowns"] = int(extra["n"]) ** int(extra["dim"])
    info.update(extra)
    info["versions"] = versions()
    info["machine"] = platform.processor() or platform.machine()
    benchmark.extra_info.update(info)
    stats = benchmark.stats
    if stats is not None:
        MEDIANS[key] = stats.stats.median
        if "bytes" in extra:
            benchmark.extra_info["GB/s"] = extra["bytes"] / stats.stats.median / 1e9


def outcome_of(result, b) -> dict:
    """The solver fields of :data:`SCHEMA` from a :class:`dcdm.SolveResult`."""
    bnorm = float(np.linalg.norm(np.asarray(_host(b)).ravel()))
    return dict(iterations=int(result.iterations), reason=result.reason.name,
                residual=float(result.residual_norm),
                rel_residual=float(result.residual_norm) / bnorm if bnorm else None,
                setup_s=float(result.setup_time), solve_s=float(result.solve_time))


def _host(x):
    return x.get() if hasattr(x, "get") else x


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# -- what the run leaves behind ------------------------------------------------------------

def _ratios() -> list[dict]:
    return [dict(label=label, value=factor * MEDIANS[num] / MEDIANS[den], meaning=meaning)
            for label, (num, den, factor, meaning) in RATIOS.items()
            if num in MEDIANS and den in MEDIANS]


def pytest_runtest_logreport(report):
    if report.skipped and isinstance(report.longrepr, tuple):
        _SESSION["skipped"].append(dict(test=report.nodeid, reason=str(report.longrepr[2])))


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["dcdm"] = dict(
        suite_wall_s=time.time() - _SESSION["start"],
        options=dict(smoke=is_smoke(config), large=is_large(config),
                     sizes=config.getoption("--bench-sizes"),
                     device=config.getoption("--bench-device"),
                     model=config.getoption("--bench-model")),
        ratios=_ratios(),
        skipped=_SESSION["skipped"],
        versions=versions(),
        memory_gib=_memory_gib(),
        load_average=dict(start=_SESSION.get("load_start"), end=_load_average()),
        gpu=gpu_info() if _gpu_used(config) else None,
    )


def _memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _gpu_used(config) -> bool:
    """The run touched a GPU: ``--bench-device cuda``, or CuPy was imported by a case."""
    return config.getoption("--bench-device") == "cuda" or "cupy" in sys.modules


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}"


def _nvidia_smi(query: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0].strip() if out.strip() else None


def gpu_info() -> dict | None:
    """The current CUDA device and the software around it (``None`` without one): card name,
    compute capability, memory, NVIDIA driver, CUDA runtime/driver API versions, CuPy, torch
    and torch's CUDA, and where ``dcdm.kernels.cuda_loader`` loaded its kernels from."""
    if cuda_unavailable() is not None:
        return None
    import cupy

    rt = cupy.cuda.runtime
    dev = cupy.cuda.Device()
    props = rt.getDeviceProperties(dev.id)
    name = props.get("name", b"?")
    cc = str(dev.compute_capability)  # "90" for 9.0
    info = dict(
        name=name.decode() if isinstance(name, bytes) else str(name),
        compute_capability=f"{cc[:-1]}.{cc[-1]}",
        memory_gib=round(props.get("totalGlobalMem", 0) / 2**30, 1),
        driver=_nvidia_smi("driver_version"),
        cuda_driver_api=_cuda_version(rt.driverGetVersion()),
        cuda_runtime=_cuda_version(rt.runtimeGetVersion()),
        cupy=cupy.__version__,
        torch=None, torch_cuda=None, cudnn=None, kernels=None,
        loader=os.environ.get("DCDM_CUDA_LOADER", "auto"),
        fatbin_dir=os.environ.get("DCDM_CUDA_FATBIN"),
    )
    if "torch" in sys.modules:  # only if a case used it (importing it costs seconds)
        import torch

        info.update(torch=torch.__version__, torch_cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    try:
        from dcdm.kernels import cuda_loader

        info["kernels"] = cuda_loader.origins() or None
    except Exception:  # only reporting: a broken loader shows in the cases themselves
        pass
    return info


def pytest_terminal_summary(terminalreporter):
    lines = [f"{r['label']}: {r['value']:.3f}  ({r['meaning']})" for r in _ratios()]
    if lines:
        terminalreporter.section("dcdm ratios (medians, same run)")
        for line in lines:
            terminalreporter.write_line(line)
