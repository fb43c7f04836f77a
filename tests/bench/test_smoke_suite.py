"""The benchmark suites themselves, at their smallest sizes, so that they cannot rot.

Runs ``pytest bench --bench-smoke`` (3-D 32^3, 2-D 256^2, one round per case, kernels at
32^3 and 256^2, a 2-step pipeline) in a subprocess with benchmarks enabled, then the
report generator on its JSON. Speed is not checked: only that every case runs, converges,
and records the common schema. The subprocess runs on one thread: on a 2-core machine that
other jobs also load, two OpenMP threads waiting on each other made the suite 10x slower
(65 s against 6 s at 32^3 and 128^2, measured), and the parallel code paths run all the same.
"""

import json
import os
import subprocess
import sys

import pytest

from bench import report
from bench.results import load

ONE_THREAD = {name: "1" for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
SCHEMA = ("key", "kind", "method", "preconditioner", "problem", "dim", "n", "unknowns", "dtype",
          "device", "iterations", "reason", "residual", "rel_residual", "setup_s", "solve_s",
          "versions")


@pytest.mark.slow
def test_smoke_sized_suite_runs_and_reports(tmp_path, root):
    out = tmp_path / "smoke.json"
    cmd = [sys.executable, "-m", "pytest", "bench", "--bench-smoke", "--benchmark-enable",
           f"--benchmark-json={out}", "-p", "no:cacheprovider", "-q", "-x"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900,
                          env=os.environ | ONE_THREAD)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["dcdm"]["options"]["smoke"] is True
    assert {b["name"] for b in data["benchmarks"]} >= {
        "test_cg_dcdm[float64]", "test_cg_scipy", "test_copy[3d-32-float64]",
        "test_matvec_fluid[2d-256-float32]", "test_mg_float32[32]"}
    assert data["dcdm"]["suite_wall_s"] > 0
    assert set(data["dcdm"]["load_average"]) == {"start", "end"}
    benches = data["benchmarks"]
    kinds = {b["extra_info"]["kind"] for b in benches}
    assert {"kernel", "solver"} <= kinds
    for b in benches:
        missing = [k for k in SCHEMA if k not in b["extra_info"]]
        assert not missing, (b["name"], missing)
        assert b["stats"]["median"] > 0
    solves = [b["extra_info"] for b in benches if b["name"].startswith("test_solve[")]
    assert {(s["problem"], s["dim"], s["n"]) for s in solves} == {
        (problem, dim, n) for problem in ("smoke", "poisson", "baffles", "twophase", "cutcell")
        for dim, n in ((3, 32), (2, 256))}
    labels = {s["label"] for s in solves}
    assert {"cg+mg", "cg+mic0", "cg+ic0", "cg+amg", "cg+rbgs", "cg+jacobi", "cg", "fcg+mg",
            "scipy-cg", "pyamg-sa", "scipy-cg+pyamg-sa", "cg+mg-flags"} <= labels
    for s in solves:
        assert s["reason"].startswith("CONVERGED") or s["method"] == "dcdm", s
        assert s["rel_residual"] <= 1.0001e-6 or s["method"] == "dcdm", s
    # DCDM and the pipeline either ran or say why not
    skipped = " ".join(s["reason"] for s in data["dcdm"]["skipped"])
    if "dcdm-robust" not in labels:
        assert "DCDM weights" in skipped
    if "pipeline" not in kinds:
        assert "smoke simulation" in skipped

    md = tmp_path / "REPORT.md"
    info = report.write_report(load([out]), md)
    text = md.read_text()
    assert "## Solvers: time to solution and iterations" in text
    assert "## Kernels: bandwidth" in text
    assert (tmp_path / "report" / "kernels.png").exists()
    assert info["regressions"] == 0


def test_cuda_cases_skip_cleanly_without_a_gpu(tmp_path, root):
    from bench.conftest import cuda_unavailable

    if cuda_unavailable() is None:
        pytest.skip("a CUDA device is present: the GPU cases would run")
    cmd = [sys.executable, "-m", "pytest", "bench", "--bench-smoke", "--bench-device=cuda",
           "-k", "not test_cg_scipy", "-p", "no:cacheprovider", "-q", "-rs"]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300,
                          env=os.environ | ONE_THREAD)
    assert proc.returncode == 0, proc.stdout[-3000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert "skipped" in summary and "passed" not in summary and "failed" not in summary
    assert "no CUDA device" in proc.stdout
