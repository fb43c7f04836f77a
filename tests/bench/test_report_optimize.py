"""The report's optimization section (bench/report_optimize.py) on synthetic records."""


def test_optimize_section(bench_record, report_of):
    def run(name, nit, inner, success, values=None, gammas=None):
        return bench_record("test_optimize.py", "optimize",
                            f"optimize-semilinear3d-16-b0.1-{name}", 0.25, method=name,
                            problem="semilinear", dim=3, n=16, b_scale=0.1, iterations=nit,
                            inner_iterations=inner, success=success, grad_norm=1e-9,
                            values=values, gammas=gammas)

    text, info = report_of([run("gns+mic0", 9, 48, True, [0.0, -1.0, -1.5, -1.5],
                                [1.0, 2.0, 4.0]),
                            run("scipy-newton-cg", 15, 186, False)])
    section = text[text.index("## Optimization: GNS with inner solves by dcdm"):]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows[0].split("|")[1:6] == [" `gns+mic0` ", " 9 ", " 48 ", " 1.0e-09 ", " True "]
    assert rows[1].split("|")[1].strip() == "`scipy-newton-cg`"
    assert all(line.count("|") == 7 for line in rows)  # no stray pipes in the cells
    assert "](report/optimize.png)" in section
    assert any(p.name == "optimize.png" for p in info["figures"])
