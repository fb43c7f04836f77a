"""The scaling report's spectrum section (``bench/test_spectrum.py``'s records).

Per smoke tank, one row per linear preconditioner: the extremes and ``kappa`` of
``M^-1 A`` (Lanczos), the free estimate read off the CG solve, predicted (from ``b`` and
from random right-hand sides) vs actual CG iterations, and the time the spectrum took;
beside it a figure of the SLQ densities over ``log10(lambda / lambda_max)``, one panel per
tank. Imports run one way: ``tables``, ``plots`` <- ``report_spectrum`` <- ``report``.
"""

from __future__ import annotations

from pathlib import Path

from . import plots
from .results import Results, group_by, on_gpu
from .tables import format_number, format_time, markdown_table

__all__ = ["spectrum_section"]

ORDER = ("none", "jacobi", "ic0", "mic0", "amg", "mg")


def _rank(r: dict) -> int:
    m = r.get("preconditioner")
    return ORDER.index(m) if m in ORDER else len(ORDER)


def spectrum_section(res: Results, figdir: Path, rel: str) -> tuple[list[str], list[Path]]:
    recs = [r for r in res.select(kind="spectrum") if r.get("kappa") is not None
            and not on_gpu(r)]
    overhead = [r for r in res.select(kind="spectrum") if r.get("bare_loop_s") is not None]
    hessian = [r for r in res.select(kind="spectrum") if r.get("hvps") is not None
               or r.get("hvp_saved_bytes") is not None]
    if not recs and not overhead and not hessian:
        return [], []
    groups = group_by(recs, lambda r: (r.get("dim"), r.get("n")), order=lambda k: (-k[0], k[1]))
    lines = ["## Spectra of the preconditioned operators", "",
             "`dcdm.spectrum.survey` on the smoke tanks (`bench/test_spectrum.py`): extremes "
             "and kappa of M^-1 A by Lanczos; `kappa (cg)` read off the CG solve's own "
             "coefficients (no extra mat-vec); CG iterations to rtol 1e-6 predicted from the "
             "spectral measure of b (and of random right-hand sides) against the actual "
             "count; `*`: beyond the Lanczos steps taken, extrapolated; `~`: Lanczos extremes "
             "not converged (kappa a lower bound). The time is the "
             "spectrum's (extremes, SLQ, both predictions), not the solve's.", ""]
    panels = {}
    for (dim, n), rows in groups.items():
        rows.sort(key=_rank)
        table = []
        for r in rows:
            pred = r.get("predicted")
            star = "*" if r.get("extrapolated") else ""
            table.append([f"`{r.get('preconditioner')}`", format_number(r.get("lowest")),
                          format_number(r.get("highest")),
                          format_number(r.get("kappa"))
                          + ("" if r.get("extremes_converged", True) else "~"),
                          format_number(r.get("kappa_from_solve")),
                          "-" if pred is None else f"{pred}{star}",
                          format_number(r.get("predicted_generic")),
                          format_number(r.get("iterations")), format_time(r.get("median"))])
        lines += [f"### Smoke tank {n}^{dim}", ""]
        lines += markdown_table(["M", "lowest", "highest", "kappa", "kappa (cg)", "predicted",
                                 "predicted (random b)", "actual", "spectrum time"], table)
        panels[f"smoke {n}^{dim}"] = {
            f"{r.get('preconditioner')} (kappa {r['kappa']:.3g})":
                (r.get("density_grid") or [], r.get("density") or []) for r in rows}
    figures = []
    if panels:
        path = plots.densities(panels, figdir / "spectra.png")
        figures.append(path)
        lines += [f"![SLQ densities]({rel}/{path.name})", ""]
    for r in overhead:
        slq, bare = r.get("median"), r.get("bare_loop_s")
        if slq and bare:
            lines += [f"SLQ of MG-preconditioned {r.get('n')}^3 ({r.get('slq_probes')} probes x "
                      f"{r.get('slq_steps')} steps): {format_time(slq)} against "
                      f"{format_time(bare)} for the bare loop of the same mat-vecs and "
                      f"V-cycles: overhead {slq / bare:.2f}x (target <= 1.1x).", ""]
    for r in hessian:
        if r.get("hvps") is not None:
            lines += [f"Top-20 Hessian eigenvalues of a {r.get('parameters'):,}-parameter MLP "
                      f"(`bench/test_hessian.py`): {r['hvps']} Hessian-vector products "
                      f"(target <= 60), {format_time(r.get('median'))}, converged: "
                      f"{r.get('converged')}.", ""]
        else:
            lines += [f"Memory autograd saves for one Hessian-vector product: "
                      f"{r['hvp_saved_bytes'] / 2**20:.1f} MiB against "
                      f"{r['grad_saved_bytes'] / 2**20:.1f} MiB for a gradient: "
                      f"{r['hvp_saved_bytes'] / r['grad_saved_bytes']:.2f}x (target <= 3x).", ""]
    return lines, figures
