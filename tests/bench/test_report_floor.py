"""The report's multigrid-floor section (bench/report_floor.py) on synthetic records."""


def test_floor_section_in_matvec_units(bench_record, report_of):
    def bench(key, phase, median, **info):
        base = dict(method=phase, preconditioner="mg", problem="smoke", dim=3, n=128)
        base.update(info)
        return bench_record("test_floor.py", "floor", key, median, rounds=5, **base)

    n = 128**3
    text, _ = report_of([
        bench("c", "copy", 0.001, bytes=16 * n),
        bench("m", "matvec", 0.002, bytes=17 * n),
        bench("v", "vcycle", 0.030),
        bench("v32", "vcycle-f32", 0.020),
        bench("s", "setup", 0.040),
        bench("x", "solve", 0.500, iterations=8),
        # a second tank without a mat-vec record: no row (nothing to divide by)
        bench("y", "solve", 0.500, iterations=9, problem="baffles")])
    section = text[text.index("## Multigrid at the floor"):]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines()
            if line.startswith("| ")]
    assert len(rows) == 2  # the header and the smoke tank
    row = rows[1]
    assert row[0] == "smoke 128^3"
    assert row[2] == f"{16 * n / 0.001 / 1e9:.1f}" and row[3] == f"{17 * n / 0.002 / 1e9:.1f}"
    assert row[4:7] == ["15.0", "10.0", "20.0"]
    assert row[7] == "250.0 (8)" and row[8] == "- (-)"
    assert "<= 60 mat-vecs" in section
