"""The report's spectrum section (bench/report_spectrum.py) on synthetic records."""


def test_spectrum_section(bench_record, report_of):
    def bench(key, median, **info):
        return bench_record("test_spectrum.py", "spectrum", key, median, **info)

    def row(M, kappa, predicted, actual, converged=True, extrapolated=False):
        return bench(f"spectrum-smoke3d-16-{M}", 0.5, method="cg", preconditioner=M,
                     problem="smoke", dim=3, n=16, iterations=actual, lowest=1.0 / kappa,
                     highest=1.0, kappa=kappa, extremes_converged=converged,
                     kappa_from_solve=kappa, predicted=predicted, predicted_generic=predicted,
                     extrapolated=extrapolated, density_grid=[-2.0, -1.0, 0.0],
                     density=[0.1, 1.0, 0.5])

    text, info = report_of([
        row("mg", 1.5, 6, 6), row("jacobi", 4000.0, 300, 210, converged=False,
                                  extrapolated=True),
        bench("slq-mg-smoke3d-16", 0.22, method="slq", preconditioner="mg", problem="smoke",
              dim=3, n=16, slq_steps=30, slq_probes=4, bare_loop_s=0.2)])
    section = text[text.index("## Spectra of the preconditioned operators"):]
    table = section[section.index("### Smoke tank 16^3"):]
    lines = [line for line in table.splitlines() if line.startswith("| `")]
    assert [line.split("|")[1].strip() for line in lines] == ["`jacobi`", "`mg`"]  # by cost
    assert "| 4000~ |" in lines[0] and "| 300* |" in lines[0]
    assert "overhead 1.10x (target <= 1.1x)" in section
    assert "](report/spectra.png)" in section
    assert any(p.name == "spectra.png" for p in info["figures"])
