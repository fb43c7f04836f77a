"""bench/test_gpu.py without a GPU: its code run against a NumPy stand-in for the few CuPy
calls it makes (device arrays are NumPy arrays, so the kernels and solves run on the CPU),
so that the GPU suite cannot rot between GPU sessions. The timings mean nothing; what is
checked is that every case runs, records the common schema with ``device="cuda"``, and that
the report's GPU section reads the result."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from bench import report
from bench.conftest import SCHEMA
from bench.results import load

ONE_THREAD = {name: "1" for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}

FAKE_CUPY = '''
"""A NumPy stand-in for the CuPy calls of bench/test_gpu.py (tests only)."""
import time
import types

import numpy as np

__version__ = "0.0-stand-in"
ndarray = np.ndarray
uint8 = np.uint8
asarray = np.asarray
asnumpy = np.asarray
empty_like = np.empty_like


class _Pointer:
    def __init__(self, arr):
        self.arr = arr

    def copy_from_device_async(self, src, size, stream=None):
        self.arr.view(np.uint8).reshape(-1)[:size] = src.arr.view(np.uint8).reshape(-1)[:size]


class _Array(np.ndarray):
    @property
    def data(self):
        return _Pointer(self)


def ones(n, dtype=None):
    return np.ones(n, dtype=dtype).view(_Array)


class _Stream:
    def synchronize(self):
        pass


class _Event:
    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


class _Device:
    id = 0
    compute_capability = "90"

    def synchronize(self):
        pass


runtime = types.SimpleNamespace(
    getDeviceCount=lambda: 1, getDevice=lambda: 0,
    getDeviceProperties=lambda i: {"name": b"Stand-in GPU", "totalGlobalMem": 2**34},
    driverGetVersion=lambda: 13000, runtimeGetVersion=lambda: 13000)
cuda = types.SimpleNamespace(
    runtime=runtime, Device=_Device, Event=_Event, get_current_stream=_Stream,
    get_elapsed_time=lambda a, b: 1e3 * (b.t - a.t))
'''


@pytest.mark.slow
def test_gpu_suite_runs_and_reports_against_a_stand_in(tmp_path, root, fixture_json):
    fake = tmp_path / "fake" / "cupy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(textwrap.dedent(FAKE_CUPY))
    out = tmp_path / "gpu.json"
    env = os.environ | ONE_THREAD | {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(fake.parent),
                                                    os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "pytest", "bench/test_gpu.py", "--bench-smoke",
           "--benchmark-enable", "--benchmark-only", f"--benchmark-json={out}",
           "-p", "no:cacheprovider", "-q", "-rs"]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["dcdm"]["gpu"]["name"] == "Stand-in GPU"
    assert data["dcdm"]["gpu"]["cuda_runtime"] == "13.0"
    benches = {b["extra_info"]["key"]: b["extra_info"] for b in data["benchmarks"]}
    expected = {f"gpu-{k}-3d-32-{d}" for k in ("matvec_fluid", "copy")
                for d in ("float32", "float64")}
    expected |= {f"gpu-solve-smoke3d-32-{m}-{d}" for m in ("cg", "cg+mg")
                 for d in ("float32", "float64")}
    assert expected <= set(benches)
    for key, info in benches.items():
        assert not [k for k in SCHEMA if k not in info], key
        assert info["device"] == "cuda"
    for d in ("float32", "float64"):
        mv, cp = benches[f"gpu-matvec_fluid-3d-32-{d}"], benches[f"gpu-copy-3d-32-{d}"]
        assert mv["bytes_per_launch"] == cp["bytes_per_launch"]  # the same bytes moved
        assert mv["event_s"] > 0 and mv["GB/s"] > 0
        assert benches[f"gpu-solve-smoke3d-32-cg+mg-{d}"]["iterations"] <= 10
    assert benches["gpu-solve-smoke3d-32-cg-float64"]["reason"] == "CONVERGED_RTOL"
    # DCDM either ran or says why not (no CUDA torch here)
    dcdm = [k for k in benches if "dcdm-robust" in k]
    if not dcdm:
        assert "sees no CUDA device" in proc.stdout or "DCDM weights" in proc.stdout
    md = tmp_path / "REPORT.md"
    report.write_report(load([fixture_json, out]), md)
    gpu = md.read_text().split("## GPU", 1)[1]
    assert "| card | Stand-in GPU (compute capability 9.0, 16.0 GiB) |" in gpu
    assert "| `matvec_fluid` | 32^3 float64 |" in gpu
    assert "| smoke 32^3 | `cg+mg` | float64 |" in gpu
