"""The scaling-report generator (bench/report.py) on the committed JSON fixture."""

import json
import re
import subprocess
import sys

import pytest

from bench import report
from bench.results import fit_exponent, load

PNG = b"\x89PNG\r\n\x1a\n"
FIGURES = {"smoke3d-iterations.png", "smoke3d-time.png", "poisson3d-iterations.png",
           "poisson3d-time.png", "smoke2d-iterations.png", "smoke2d-time.png",
           "poisson2d-iterations.png", "poisson2d-time.png", "pipeline.png", "kernels.png"}


@pytest.fixture(scope="module")
def written(tmp_path_factory, fixture_json):
    out = tmp_path_factory.mktemp("report") / "REPORT.md"
    info = report.write_report(load([fixture_json]), out, wall_time=754.0)
    return out, info


def _section(text: str, title: str) -> str:
    """From the heading ``title`` to the next heading of the same or a higher level."""
    start = text.index(title)
    level = title.split(" ")[0]
    ends = [text.find(f"\n{h} ", start + 1) for h in ("#", "##", "###")[: len(level)]]
    ends = [e for e in ends if e > 0]
    return text[start:min(ends) if ends else None]


def test_writes_every_figure_as_png(written):
    out, info = written
    figdir = out.parent / "report"
    assert {p.name for p in figdir.iterdir()} == FIGURES
    assert {p.name for p in info["figures"]} == FIGURES
    for png in figdir.iterdir():
        data = png.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, png.name
    text = out.read_text()
    for name in FIGURES:  # every figure is linked, relative to the report
        assert f"](report/{name})" in text


def test_header(written):
    text = written[0].read_text()
    assert text.startswith("# dcdm scaling report")
    assert "| CPU | AMD EPYC, 2 logical cores" in text
    assert re.search(r"\| versions \| python 3\.\d+\.\d+, dcdm \S+, numpy \S+, scipy", text)
    assert "| suite wall time | 12.6 min (754 s) |" in text
    assert "| run | 2026-" in text
    assert re.search(r"\| load average \(1 min\) \| [\d.]+ at the start, [\d.]+ at the end", text)


def test_solver_tables_hold_time_and_iterations(written):
    text = written[0].read_text()
    smoke3 = _section(text, "### Smoke tank, 8 obstacles (3-D)")
    header = "| method | 16^3 (N = 4,096) | 24^3 (N = 13,824) | 32^3 (N = 32,768) |"
    assert header in smoke3
    row = next(line for line in smoke3.splitlines() if line.startswith("| `cg+mg` |"))
    cells = row.strip("|").split("|")[1:]
    assert len(cells) == 3
    for cell in cells:  # "12.3 ms (6)", possibly bold as the fastest
        assert re.fullmatch(r"\s*\**\d+(\.\d+)? (ms|s|us) \(6\)\**\s*", cell), cell
    # the 2-D tables have their own sizes; every problem of the fixture has a table
    for title in ("Dirichlet Poisson cube (3-D)", "Smoke tank, 8 obstacles (2-D)",
                  "Dirichlet Poisson square (2-D)"):
        assert f"### {title}" in text
    assert "| method | 64^2 (N = 4,096) | 128^2 (N = 16,384) |" in text


def test_summary_names_the_fastest_method_at_the_largest_size(written):
    summary = _section(written[0].read_text(), "## Summary")
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "^" in line]
    assert len(rows) == 4
    assert any(row.startswith("| Smoke tank, 8 obstacles (3-D) | 32^3 | `") for row in rows)
    assert all(re.search(r"\| [\d.]+x \|$", row) for row in rows)


def test_growth_exponents_table(written):
    smoke3 = _section(written[0].read_text(), "### Smoke tank, 8 obstacles (3-D)")
    rows = {line.split("|")[1].strip(): line.split("|")[2:-1]
            for line in smoke3.split("Growth with")[1].splitlines() if line.startswith("| `")}
    assert set(rows) == {"`cg+mg`", "`cg+mic0`", "`cg`", "`fcg+mg`", "`scipy-cg`",
                         "`pyamg-sa`"}
    sizes, p_iter, _p_time = (c.strip() for c in rows["`cg`"])
    assert sizes == "3"
    # unpreconditioned CG on a 3-D Laplacian: iterations ~ N^(1/3)
    assert 0.25 < float(p_iter) < 0.4
    assert rows["`cg+mg`"][1].strip() == "0.00"  # multigrid: flat


def test_pipeline_kernels_and_per_iteration_sections(written):
    text = written[0].read_text()
    pipe = _section(text, "## Smoke simulation")
    assert re.search(r"\| `cg\+mg` \| 32\^3 \| 2 \| [\d.]+ m?s \| [\d.]+ m?s \| \d+% \|", pipe)
    kern = _section(text, "## Kernels: bandwidth")
    rows = [line for line in kern.splitlines() if line.startswith("| `copy`")]
    assert rows and all(line.rstrip().endswith("| 1.00 |") for line in rows)
    assert "| `matvec_fluid` | 32^3 float64 |" in kern
    per_it = _section(text, "## CG time per iteration")
    assert "| `scipy.cg` | smoke 32^3 | float64 | 100 |" in per_it
    assert "## Ratios" in text and "## Not run" in text and "DCDM weights" in text


def _doctored(tmp_path, fixture_json):
    """A baseline in which one case was twice as fast, one took fewer iterations, and one was
    twice as slow as in the fixture."""
    data = json.loads(fixture_json.read_text())
    by_key = {b["extra_info"]["key"]: b for b in data["benchmarks"]}
    by_key["solve-smoke3d-32-cg+mic0"]["stats"]["median"] /= 2
    by_key["solve-poisson3d-24-cg"]["extra_info"]["iterations"] -= 5
    by_key["solve-smoke2d-128-cg+mg"]["stats"]["median"] *= 2
    del by_key["copy-3d-32-float32"]
    data["benchmarks"] = list(by_key.values())
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data))
    return path


def test_compare_flags_regressions_and_improvements(tmp_path, fixture_json):
    baseline = _doctored(tmp_path, fixture_json)
    lines, regressions = report.compare(load([baseline]), load([fixture_json]))
    text = "\n".join(lines)
    assert regressions == 2
    row = next(line for line in lines if "`solve-smoke3d-32-cg+mic0`" in line)
    assert "+100.0%" in row and "**REGRESSION**: 100% slower" in row
    row = next(line for line in lines if "`solve-poisson3d-24-cg`" in line)
    assert "**REGRESSION**: more iterations" in row
    row = next(line for line in lines if "`solve-smoke2d-128-cg+mg`" in line)
    assert "improved: 50% faster" in row
    assert "**2 regressions**, 1 improvements" in text
    assert "New in this run (1): `copy-3d-32-float32`" in text
    # regressions are listed first
    verdicts = [line.split("|")[-2] for line in lines if line.startswith("| `")]
    assert "REGRESSION" in verdicts[0] and "REGRESSION" in verdicts[1]


def test_cli_compare_mode_and_exit_status(tmp_path, fixture_json, root):
    baseline = _doctored(tmp_path, fixture_json)
    out = tmp_path / "cmp" / "REPORT.md"
    args = [str(fixture_json), "--baseline", str(baseline), "--out", str(out)]
    assert report.main(args) == 0
    assert report.main([*args, "--fail-on-regression"]) == 1
    text = out.read_text()
    assert "## Before / after" in text and "**REGRESSION**" in text
    assert (out.parent / "report" / "smoke3d-time.png").exists()
    # the documented command line, from the repository root
    proc = subprocess.run([sys.executable, "-m", "bench.report", str(fixture_json), "--out",
                           str(tmp_path / "cli" / "REPORT.md")], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and (tmp_path / "cli" / "report" / "kernels.png").exists()


def test_cli_rejects_a_file_that_is_not_benchmark_json(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"results": []}))
    with pytest.raises(SystemExit) as exc:
        report.main([str(bad), "--out", str(tmp_path / "R.md")])
    assert exc.value.code == 2
    assert "not a pytest-benchmark JSON file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report.main([str(bad), "--threshold", "-1"])
    assert "--threshold must be >= 0" in capsys.readouterr().err


def test_fit_exponent():
    assert fit_exponent([1e3, 1e4, 1e5], [5.0, 50.0, 500.0]) == pytest.approx(1.0)
    assert fit_exponent([8, 64, 512], [6, 6, 6]) == pytest.approx(0.0, abs=1e-12)
    assert fit_exponent([10, 100], [1.0, 0.0]) is None  # one usable point
    assert fit_exponent([10, 10], [1.0, 2.0]) is None


def test_merging_files_later_wins(tmp_path, fixture_json):
    data = json.loads(fixture_json.read_text())
    data["benchmarks"] = data["benchmarks"][:3]
    data["benchmarks"][0]["stats"]["median"] = 123.0
    second = tmp_path / "second.json"
    second.write_text(json.dumps(data))
    res = load([fixture_json, second])
    assert len(res.records) == len(json.loads(fixture_json.read_text())["benchmarks"])
    assert res.by_key()[data["benchmarks"][0]["extra_info"]["key"]]["median"] == 123.0
    assert len(res.replaced) == 3


@pytest.mark.parametrize("name", ["results", "tables", "report_scenes"])
def test_doctests(name):
    import doctest
    import importlib

    module = importlib.import_module(f"bench.{name}")
    outcome = doctest.testmod(module)
    assert outcome.attempted > 0 and outcome.failed == 0


def test_report_modules_import_one_way(root):
    """tables <- report_gpu, report_scenes <- report: no module of the report imports one
    above it."""
    import ast

    order = ["results", "tables", "plots", "report_gpu", "report_scenes", "report_floor",
             "report"]
    for i, name in enumerate(order):
        tree = ast.parse((root / "bench" / f"{name}.py").read_text())
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    and node.level == 1 and node.module is None for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                     and node.level == 1 and node.module}
        assert not imported & set(order[i:]), (name, sorted(imported & set(order[i:])))


def test_stale_figures_are_removed(tmp_path, fixture_json):
    figdir = tmp_path / "report"
    figdir.mkdir()
    (figdir / "old3d-time.png").write_bytes(PNG)
    (figdir / "notes.txt").write_text("kept")
    report.write_report(load([fixture_json]), tmp_path / "REPORT.md")
    assert not (figdir / "old3d-time.png").exists()
    assert (figdir / "notes.txt").exists() and (figdir / "kernels.png").exists()


def test_files_from_older_suites_still_load_and_compare(tmp_path, fixture_json):
    old = {"machine_info": {}, "benchmarks": [
        {"name": "test_pcg[smoke64-mg]", "fullname": "bench/test_precond.py::test_pcg[smoke64-mg]",
         "extra_info": {"iterations": 7, "problem": "smoke", "n": 64},
         "stats": {"median": 0.066, "mean": 0.07, "rounds": 3}}]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    res = load([path])
    assert res.records[0]["kind"] == "other"
    assert res.records[0]["key"] == "bench/test_precond.py::test_pcg[smoke64-mg]"
    info = report.write_report(res, tmp_path / "R.md", baseline=load([fixture_json]))
    assert info["figures"] == [] and info["regressions"] == 0
    assert "# dcdm scaling report" in (tmp_path / "R.md").read_text()
