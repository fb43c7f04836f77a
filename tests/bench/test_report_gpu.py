"""The GPU section of the report (bench/report_gpu.py) on synthetic GPU results."""

import json

import pytest

from bench import report
from bench.results import load

GPU_INFO = {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "memory_gib": 79.1,
            "driver": "580.65.06", "cuda_driver_api": "13.0", "cuda_runtime": "13.0",
            "cupy": "14.0.1", "torch": "2.11.0+cu130", "torch_cuda": "13.0", "cudnn": 91300,
            "kernels": {"stencil": "fatbin:/x/build/cuda/stencil.fatbin",
                        "vector": "fatbin:/x/build/cuda/vector.fatbin"},
            "loader": "fatbin", "fatbin_dir": "/x/build/cuda"}


def _bench(key, median, **info):
    info = {"key": key, "problem": "smoke", "dim": 3, "unknowns": info["n"] ** 3, **info}
    return {"name": key, "fullname": f"bench/test_gpu.py::{key}", "extra_info": info,
            "stats": {"median": median, "mean": median, "min": median, "rounds": 3}}


def _kernel(method, n, dtype, event_s, gbps):
    return _bench(f"gpu-{method}-3d-{n}-{dtype}", 20 * event_s, kind="kernel", method=method,
                  n=n, dtype=dtype, device="cuda", event_s=event_s, event_GBps=gbps,
                  **{"GB/s": gbps * 0.95})


def _solve(label, n, dtype, median, iterations, device="cuda", reason="CONVERGED_RTOL"):
    key = f"gpu-solve-smoke3d-{n}-{label}-{dtype}" if device == "cuda" else (
        f"solve-smoke3d-{n}-{label}")
    method = label.split("+")[0].split("-")[0]
    return _bench(key, median, kind="solver", case="to-tolerance", label=label, method=method,
                  n=n, dtype=dtype, device=device, iterations=iterations, reason=reason,
                  rtol=1e-6, setup_s=0.01)


def _write(path, benchmarks, gpu=None, skipped=()):
    data = {"machine_info": {"node": "gpu-box", "cpu": {"brand_raw": "Xeon", "count": 16}},
            "datetime": "2026-12-01T10:00:00", "benchmarks": benchmarks,
            "dcdm": {"gpu": gpu, "skipped": list(skipped), "ratios": [],
                     "options": {"device": "cpu"}}}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def gpu_run(tmp_path):
    cpu = _write(tmp_path / "cpu.json", [_solve("cg+mic0", 128, "float64", 3.94, 141, "cpu"),
                                         _solve("cg+mg", 128, "float64", 0.286, 7, "cpu")])
    gpu = _write(tmp_path / "gpu.json", [
        _kernel("matvec_fluid", 256, "float64", 100e-6, 2850.0),
        _kernel("copy", 256, "float64", 90e-6, 3000.0),
        _kernel("matvec_fluid", 256, "float32", 70e-6, 2100.0),
        _kernel("copy", 256, "float32", 50e-6, 3000.0),
        _solve("cg+mg", 128, "float64", 0.05, 7),
        _solve("cg+mg", 256, "float64", 0.20, 7),
        _solve("cg", 256, "float32", 1.5, 3000, reason="STAGNATION"),
        _solve("dcdm-robust", 128, "float64", 0.1, 5),
        _solve("dcdm-robust", 256, "float64", 0.4, 6),
    ], gpu=GPU_INFO)
    return load([cpu, gpu])


def _row(text, start):
    return next(line for line in text.splitlines() if line.startswith(start))


def test_card_bandwidth_times_and_targets(tmp_path, gpu_run):
    out = tmp_path / "REPORT.md"
    report.write_report(gpu_run, out)
    text = out.read_text()
    gpu = text[text.index("## GPU"):]
    assert "| card | NVIDIA H100 80GB HBM3 (compute capability 9.0, 79.1 GiB) |" in gpu
    assert "| NVIDIA driver | 580.65.06 |" in gpu
    assert "| torch | 2.11.0+cu130 (CUDA 13.0, cuDNN 91300) |" in gpu
    assert "| dcdm CUDA kernels | fatbin (loader fatbin) |" in gpu
    # bandwidth: events-based fraction 2850 / 3000
    assert "| `matvec_fluid` | 256^3 float64 | 100 us | 2850 | 0.95 |" in gpu
    bw64 = _row(gpu, "| fluid mat-vec / device copy bandwidth at 256^3 (float64)")
    assert "0.95 (target >= 0.8): met" in bw64
    bw32 = _row(gpu, "| fluid mat-vec / device copy bandwidth at 256^3 (float32)")
    assert "0.70 (target >= 0.8): **not met**" in bw32
    # DCDM GPU vs MIC0-PCG CPU at 128^3: 3.94 / 0.1
    row = _row(gpu, "| DCDM GPU speed-up over MIC0-PCG CPU at 128^3 (`dcdm-robust`, float64)")
    assert "39.40 (target >= 20): met" in row
    row = _row(gpu, "| DCDM GPU time / MG-PCG GPU time at 256^3 (`dcdm-robust`, float64)")
    assert "2.00 (target <= 1): **not met**" in row
    row = _row(gpu, "| DCDM GPU speed-up over MIC0-PCG CPU at 128^3 (`dcdm-robust`, float32)")
    assert "not measured" in row
    # times beside the CPU's: the same scene, method and dtype
    row = _row(gpu, "| smoke 128^3 | `cg+mg` | float64 |")
    assert "| 286.0 ms (7) | 5.7x |" in row
    assert "**STAGNATION**" in _row(gpu, "| smoke 256^3 | `cg` | float32 |")
    assert "MG-PCG on the GPU (float64) is 78.8x faster than MIC0-PCG" in gpu
    # the CPU sections keep the CPU records only
    smoke = text[text.index("### Smoke tank, 8 obstacles (3-D)"):text.index("## GPU")]
    assert "dcdm-robust" not in smoke and "286.0 ms" in smoke
    assert "| devices | cpu, cuda (NVIDIA H100 80GB HBM3) |" in text


def test_without_gpu_results_it_says_so(tmp_path, fixture_json):
    out = tmp_path / "REPORT.md"
    report.write_report(load([fixture_json]), out)
    gpu = out.read_text().split("## GPU", 1)[1]
    assert "**No GPU results in these inputs**" in gpu.split("\n## ")[0]
    skipped = _write(tmp_path / "skipped.json", [], skipped=[
        {"test": "bench/test_gpu.py::test_gpu_copy[3d-128-float32]",
         "reason": "Skipped: no CUDA device (CUDARuntimeError: no driver)"}])
    report.write_report(load([fixture_json, skipped]), out)
    gpu = out.read_text().split("## GPU", 1)[1].split("\n## ")[0]
    assert "skipped: no CUDA device (CUDARuntimeError: no driver)" in gpu


def test_dcdm_skip_reason_is_the_verdict(tmp_path, gpu_run):
    gpu = _write(tmp_path / "nodcdm.json", [_solve("cg+mg", 256, "float64", 0.2, 7)],
                 gpu=GPU_INFO, skipped=[{"test": "bench/test_gpu.py::test_gpu_solve[x]",
                                         "reason": "Skipped: DCDM weights do not load (no 3-D)"}])
    out = tmp_path / "R.md"
    report.write_report(load([gpu]), out)
    row = _row(out.read_text(), "| DCDM GPU time / MG-PCG GPU time at 256^3 (`dcdm-robust`, "
                                "float64)")
    assert "not measured: DCDM weights do not load (no 3-D)" in row


def test_cli_only_gpu(tmp_path, gpu_run):
    paths = gpu_run.paths
    out = tmp_path / "gpu" / "GPU.md"
    assert report.main([*paths, "--out", str(out), "--only-gpu"]) == 0
    text = out.read_text()
    assert text.startswith("# dcdm scaling report") and "## GPU" in text
    assert "## Solvers" not in text and not (out.parent / "report").exists()
