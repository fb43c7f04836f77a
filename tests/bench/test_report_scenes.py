"""The report's *Iterations per scene* section (bench/report_scenes.py) on synthetic records."""

import pytest

# (problem, dim, n, label) -> (median seconds, iterations, reason)
RUNS = {
    ("twophase", 3, 32, "cg+mg"): (0.010, 9, "CONVERGED_RTOL"),
    ("twophase", 3, 32, "cg+amg"): (0.080, 8, "CONVERGED_RTOL"),
    ("twophase", 3, 32, "cg"): (0.500, 4000, "MAX_ITERATIONS"),  # a failed run
    ("twophase", 3, 64, "cg+mg"): (0.100, 20, "CONVERGED_RTOL"),
    ("twophase", 3, 64, "cg+amg"): (0.300, 10, "CONVERGED_RTOL"),
    ("twophase", 3, 64, "cg"): (2.000, 900, "CONVERGED_RTOL"),
    ("baffles", 3, 32, "cg+mg"): (0.010, 7, "CONVERGED_RTOL"),
    ("baffles", 3, 32, "cg+amg"): (0.050, 7, "CONVERGED_RTOL"),
    ("baffles", 3, 32, "cg+mg-flags"): (0.030, 40, "CONVERGED_RTOL"),  # baffles only
    ("baffles", 3, 32, "cg"): (0.200, 300, "CONVERGED_RTOL"),
    ("cutcell", 2, 256, "cg+mg"): (0.020, 11, "CONVERGED_RTOL"),  # no AMG on this row
    ("cutcell", 2, 256, "cg"): (0.400, 700, "CONVERGED_RTOL"),
    ("cutcell", 2, 512, "cg+mg"): (0.080, 12, "CONVERGED_RTOL"),
    ("cutcell", 2, 512, "cg+amg"): (0.800, 11, "CONVERGED_RTOL"),
}


@pytest.fixture
def records(bench_record):
    out = []
    for (problem, dim, n, label), (median, its, reason) in RUNS.items():
        method, _, pre = label.partition("+")
        key = f"solve-{problem}{dim}d-{n}-{label}"
        out.append(bench_record("test_solvers.py", "solver", key, median, problem=problem,
                                dim=dim, n=n, unknowns=n**dim, label=label, method=method,
                                preconditioner=pre or "none", iterations=its, reason=reason,
                                case="to-tolerance", rtol=1e-6, dtype="float64"))
    return out


def _section(text: str) -> str:
    start = text.index("## Iterations per scene")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _rows(section: str, heading: str) -> dict[tuple[str, str], list[str]]:
    """``(problem, size) -> cells`` of the table under ``heading``, keyed by column name."""
    part = section[section.index(heading):]
    part = part[:part.find("\n### ", 1)] if "\n### " in part[1:] else part
    lines = [line for line in part.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[(cells[0], cells[1])] = dict(zip(header, cells, strict=True))
    return rows


def test_a_table_per_dimension_with_a_row_per_problem_and_size(records, report_of):
    text, _ = report_of(records)
    section = _section(text)
    # near the per-problem tables: after them, before whatever section follows
    assert text.index("## Solvers: time to solution") < text.index("## Iterations per scene")
    assert section.index("### 3-D") < section.index("### 2-D")
    three = _rows(section, "### 3-D")
    assert list(three) == [("baffles", "32^3"), ("twophase", "32^3"), ("twophase", "64^3")]
    header = list(three[("baffles", "32^3")])
    assert header == ["problem", "size", "`cg+mg`", "`cg+amg`", "`cg`", "`cg+mg-flags`",
                      "MG / AMG iterations", "AMG / MG time"]
    assert three[("baffles", "32^3")]["`cg+mg-flags`"] == "40"
    assert three[("twophase", "64^3")]["`cg`"] == "900"
    two = _rows(section, "### 2-D")
    assert list(two) == [("cutcell", "256^2"), ("cutcell", "512^2")]
    # only the methods of that dimension, MG and AMG first
    assert list(two[("cutcell", "256^2")])[2:5] == ["`cg+mg`", "`cg+amg`", "`cg`"]


def test_failed_and_missing_runs_are_marked(records, report_of):
    section = _section(report_of(records)[0])
    three = _rows(section, "### 3-D")
    assert three[("twophase", "32^3")]["`cg`"] == "✗ (MAX_ITERATIONS)"
    assert three[("twophase", "32^3")]["`cg+mg-flags`"] == "—"  # not run on this scene
    two = _rows(section, "### 2-D")
    row = two[("cutcell", "256^2")]
    assert row["`cg+mg`"] == "11"
    # no AMG run on the row: no ratios, and the row is not counted against the targets
    assert row["`cg+amg`"] == row["MG / AMG iterations"] == row["AMG / MG time"] == "—"
    assert two[("cutcell", "512^2")]["`cg`"] == "—"
    assert two[("cutcell", "512^2")]["AMG / MG time"] == "10.00"
    assert "on 1 of 1 rows and the speed target on 1 of 1." in section


def test_without_amg_no_ratios(records, report_of):
    keep = [r for r in records if r["extra_info"]["label"] != "cg+amg"]
    section = _section(report_of(keep)[0])
    for heading in ("### 3-D", "### 2-D"):
        for row in _rows(section, heading).values():
            assert "`cg+amg`" not in row and row["MG / AMG iterations"] == "—"
    assert section.count("No row has converged runs of both `cg+mg` and `cg+amg`") == 2


def test_mg_against_amg_ratios_and_targets(records, report_of):
    section = _section(report_of(records)[0])
    three = _rows(section, "### 3-D")
    assert three[("twophase", "32^3")]["MG / AMG iterations"] == "1.12"  # 9 / 8: target met
    assert three[("twophase", "32^3")]["AMG / MG time"] == "8.00"  # 0.08 / 0.01: met
    assert three[("twophase", "64^3")]["MG / AMG iterations"] == "**2.00**"  # 20 / 10: missed
    assert three[("twophase", "64^3")]["AMG / MG time"] == "**3.00**"  # 0.3 / 0.1: missed
    assert three[("baffles", "32^3")]["MG / AMG iterations"] == "1.00"
    assert "on 2 of 3 rows and the speed target on 2 of 3." in section
    assert "at most 1.5" in section and "at least 5" in section


def test_a_failed_mg_or_amg_run_gives_no_ratio(records, report_of):
    for r in records:
        if r["extra_info"]["key"] == "solve-baffles3d-32-cg+amg":
            r["extra_info"]["reason"] = "STAGNATION"
    row = _rows(_section(report_of(records)[0]), "### 3-D")[("baffles", "32^3")]
    assert row["`cg+amg`"] == "✗ (STAGNATION)"
    assert row["MG / AMG iterations"] == row["AMG / MG time"] == "—"


def test_gpu_records_and_other_cases_are_left_out(records, report_of, bench_record):
    gpu = bench_record("test_gpu.py", "solver", "solve-poisson3d-32-cg+mg-float64-cuda", 0.001,
                       problem="poisson", dim=3, n=32, label="cg+mg", iterations=6,
                       reason="CONVERGED_RTOL", case="to-tolerance", dtype="float64")
    gpu["extra_info"]["device"] = "cuda"
    f32 = bench_record("test_solvers.py", "solver", "solve-smoke3d-64-cg+mg-float32-cpu", 0.01,
                       problem="smoke", dim=3, n=64, label="cg+mg", iterations=6,
                       reason="CONVERGED_RTOL", case="float32", dtype="float32")
    three = _rows(_section(report_of([*records, gpu, f32])[0]), "### 3-D")
    assert ("poisson", "32^3") not in three and ("smoke", "64^3") not in three


def test_no_solver_records_no_section(report_of, bench_record):
    kernel = bench_record("test_kernels.py", "kernel", "copy-3d-32-float64", 1e-4, dim=3, n=32,
                          method="copy", dtype="float64", bytes=1e6)
    kernel["extra_info"]["GB/s"] = 10.0
    assert "Iterations per scene" not in report_of([kernel])[0]


def test_new_scenes_have_titles():
    from bench.results import problem_title

    assert problem_title("twophase", 3) == "Two-phase tank, 8 bubbles at 1000:1 density (3-D)"
    assert problem_title("cutcell", 2).startswith("Cut-cell tank")
