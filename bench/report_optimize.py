"""The scaling report's optimization section (``bench/test_optimize.py``'s records).

Per semilinear Poisson problem (size, size of ``b``): outer and inner iterations, the final
gradient norm and the wall time of GNS with each inner preconditioner and of scipy's Newton
methods; a figure of ``f - f*`` and ``gamma_k`` per outer iteration of the GNS runs (``f*``
the lowest final value of all runs). Imports run one way: ``tables``, ``plots`` <-
``report_optimize`` <- ``report``.
"""

from __future__ import annotations

from pathlib import Path

from . import plots
from .results import Results, group_by
from .tables import format_number, format_time, markdown_table

__all__ = ["optimize_section"]


def optimize_section(res: Results, figdir: Path, rel: str) -> tuple[list[str], list[Path]]:
    recs = [r for r in res.select(kind="optimize") if r.get("iterations") is not None]
    if not recs:
        return [], []
    groups = group_by(recs, lambda r: (r.get("n"), r.get("b_scale")))
    lines = ["## Optimization: GNS with inner solves by dcdm", "",
             "`bench/test_optimize.py`: the semilinear Poisson energy `1/2 u'Au + sum u^4/4 - b'u` "
             "on the 3-D smoke tank to `||g|| <= 1e-8`; GNS's inner CG with no preconditioner, "
             "MIC0 or AMG (built once per outer iteration on the assembled `H + lam I`), the "
             "geometric MG built once per outer iteration on the matrix-free "
             "`A + diag(3u^2) + lam I` (`gns+mg`: it follows the operator) or once on `A` alone "
             "(`gns+mg-on-A`), the shipped network in flexible CG (`gns+neural`, trained on "
             "`A`), beside scipy's Newton-CG and trust-krylov with the same `hessp` (inner = "
             "Hessian products). One round each; wall time includes assembling the Hessians "
             "and every preconditioner set-up.", ""]
    lines += _winners(groups)
    panels = {}
    for (n, scale), rows in groups.items():
        rows.sort(key=lambda r: r.get("method") or "")
        table = [[f"`{r.get('method')}`", format_number(r.get("iterations")),
                  format_number(r.get("inner_iterations")), f"{r.get('grad_norm', 0):.1e}",
                  str(r.get("success")), format_time(r.get("median"))] for r in rows]
        lines += [f"### {n}^3, b of size {scale:g}", ""]
        lines += markdown_table(["method", "outer iterations", "inner iterations",
                                 "final norm of g", "success", "time"], table)
        finals = [r["values"][-1] for r in rows if r.get("values")]
        if finals:
            fstar = min(finals)
            panels[f"{n}^3, b ~ {scale:g}"] = {
                r["method"]: ([max(v - fstar, 1e-16) for v in r["values"]], r.get("gammas") or [])
                for r in rows if r.get("values")}
    figures = []
    if panels:
        path = plots.optimization(panels, figdir / "optimize.png")
        figures.append(path)
        lines += [f"![f - f* and gamma per iteration]({rel}/{path.name})", ""]
    return lines, figures


def _winners(groups: dict[tuple, list[dict]]) -> list[str]:
    """Which inner solve wins where: per problem, the fastest run that met the tolerance and
    the time of each GNS inner preconditioner relative to it."""
    methods = sorted({r.get("method") for rows in groups.values() for r in rows
                      if str(r.get("method", "")).startswith("gns")})
    table = []
    for (n, scale), rows in groups.items():
        ok = {r.get("method"): r.get("median") for r in rows
              if r.get("success") and r.get("median")}
        if not ok:
            continue
        best = min(ok, key=ok.get)
        table.append([f"{n}^3, b ~ {scale:g}", f"`{best}`"]
                     + [f"{ok[m] / ok[best]:.2f}x" if m in ok else "-" for m in methods])
    if not table:
        return []
    header = ["problem", "fastest", *(f"`{m}`" for m in methods)]
    return ["Time relative to the fastest run that met the tolerance (`-`: not run, or it "
            "stopped early):", "", *markdown_table(header, table), ""]
