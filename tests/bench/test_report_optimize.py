"""The report's optimization section (bench/report_optimize.py) on synthetic records."""

import json

from bench import report
from bench.results import load


def _bench(run, nit, inner, success, values=None, gammas=None):
    key = f"optimize-semilinear3d-16-b0.1-{run}"
    return {"name": key, "fullname": f"bench/test_optimize.py::{key}",
            "stats": {"median": 0.25, "min": 0.25, "max": 0.25, "mean": 0.25, "stddev": 0.0,
                      "rounds": 1},
            "extra_info": {"key": key, "kind": "optimize", "device": "cpu", "method": run,
                           "problem": "semilinear", "dim": 3, "n": 16, "b_scale": 0.1,
                           "iterations": nit, "inner_iterations": inner, "success": success,
                           "grad_norm": 1e-9, "values": values, "gammas": gammas}}


def test_optimize_section(tmp_path):
    data = {"machine_info": {}, "datetime": "2026-12-03T00:00:00", "benchmarks": [
        _bench("gns+mic0", 9, 48, True, [0.0, -1.0, -1.5, -1.5], [1.0, 2.0, 4.0]),
        _bench("scipy-newton-cg", 15, 186, False)]}
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    out = tmp_path / "REPORT.md"
    info = report.write_report(load([path]), out)
    text = out.read_text()
    section = text[text.index("## Optimization: GNS with inner solves by dcdm"):]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows[0].split("|")[1:6] == [" `gns+mic0` ", " 9 ", " 48 ", " 1.0e-09 ", " True "]
    assert rows[1].split("|")[1].strip() == "`scipy-newton-cg`"
    assert all(line.count("|") == 7 for line in rows)  # no stray pipes in the cells
    assert "](report/optimize.png)" in section
    assert any(p.name == "optimize.png" for p in info["figures"])
