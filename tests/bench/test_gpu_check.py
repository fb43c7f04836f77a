"""bench/gpu_check.sh, the one script for a lent GPU machine, run here without a GPU: every
step runs (the GPU cases skipping) and it ends with exit status 0 and a report that says
there are no GPU results. The `gpu` test runs are left out (GPU_CHECK_SKIP_TESTS=1): they
would run this suite's GPU tests inside it."""

import os
import shutil
import subprocess
import sys

import pytest

ONE_THREAD = {name: "1" for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def test_the_script_parses(root):
    proc = subprocess.run(["bash", "-n", str(root / "bench" / "gpu_check.sh")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_runs_to_the_end_without_a_gpu(tmp_path, root):
    from bench.conftest import cuda_unavailable

    if cuda_unavailable() is None:
        pytest.skip("a CUDA device is present: the script would measure it")
    if sys.version_info < (3, 11):
        pytest.skip("the script's package map reads pyproject.toml with tomllib (3.11+)")
    out = tmp_path / "out"
    env = os.environ | ONE_THREAD | {
        "OUT": str(out), "PYTHON": sys.executable, "GPU_CHECK_SKIP_TESTS": "1",
        "GPU_CHECK_INSTALL": "path", "GPU_CHECK_SITE": str(tmp_path / "site"),
        "GPU_CHECK_BUILD": str(tmp_path / "build"), "GPU_CHECK_BUDGET_S": "300"}
    proc = subprocess.run(["bash", str(root / "bench" / "gpu_check.sh")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    log = (out / "gpu_check.log").read_text()
    assert log == proc.stdout
    for step in ("install wheels: ok", "install dcdm: ok", "versions: ok", "gpu benchmarks: ok",
                 "report: ok"):
        assert step in log
    if shutil.which("nvcc") and shutil.which("cmake"):
        assert "build fatbins: ok" in log
        assert (tmp_path / "build" / "cuda" / "stencil.fatbin").is_file()
    assert "no CUDA device" in log and "GPU check: OK" in log
    # dcdm imports through the package map written into the site folder
    assert (tmp_path / "site" / "_dcdm" / "sitecustomize.py").is_file()
    report = (out / "REPORT.md").read_text()
    assert "## GPU" in report and "**No GPU results in these inputs**" in report
    assert "## Solvers: time to solution and iterations" in report  # the committed CPU run
    assert "**No GPU results" in (out / "GPU_SECTION.md").read_text()
