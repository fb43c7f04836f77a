"""The scaling report's differentiable-solve section (``bench/test_differentiable.py``'s records).

``sparse_solve`` forward vs backward (time, CG iterations, their ratio) per grid size and number
of right-hand sides; the hard-constraint layer's forward and forward + backward per total number
of sampled points, one global solve (K = 1) vs four experts (K = 4). Imports run one way:
``tables`` <- ``report_differentiable`` <- ``report``.
"""

from __future__ import annotations

from pathlib import Path

from .results import Results, group_by
from .tables import format_number, format_time, markdown_table

__all__ = ["differentiable_section"]


def differentiable_section(res: Results, figdir: Path, rel: str) -> tuple[list[str], list[Path]]:
    recs = [r for r in res.select(kind="differentiable") if r.get("median")]
    if not recs:
        return [], []
    lines = ["## Differentiable solves and hard-constraint layers", ""]
    solves = [r for r in recs if r.get("method") == "sparse_solve"]
    if solves:
        lines += ["`dcdm.training.sparse_solve` on the 3-D smoke tank (grid operator, `M=\"mg\"` "
                  "built once in forward and reused by the adjoint solve, rtol 1e-8, a random "
                  "incoming gradient). Forward: multigrid set-up + one CG per column; backward: "
                  "one adjoint CG per column. Median of 3 rounds.", ""]
        table = []
        for (n, k), rows in group_by(solves, lambda r: (r.get("n"), r.get("columns"))).items():
            by = {r.get("phase"): r for r in rows}
            fwd, bwd = by.get("forward"), by.get("backward")
            ratio = (f"{bwd['median'] / fwd['median']:.2f}x" if fwd and bwd else "-")
            table.append([f"{n}^3", str(k),
                          format_time(fwd and fwd["median"]), format_number(fwd and
                                                                            fwd["iterations"]),
                          format_time(bwd and bwd["median"]), format_number(bwd and
                                                                            bwd["iterations"]),
                          ratio])
        its = "CG iterations (all columns)"
        lines += markdown_table(["grid", "right-hand sides", "forward", its, "backward", its,
                                 "backward / forward"], table)
        lines.append("")
    layers = [r for r in recs if r.get("problem") == "diffusion-sorption"]
    if layers:
        lines += ["The diffusion-sorption hard-constraint layer (51 x 256 grid, untrained FNO "
                  "with 16 basis functions, batch 4): total sampled points split equally among "
                  "K experts; median of 3 rounds.", ""]
        table = []
        for m, rows in group_by(layers, lambda r: r.get("points")).items():
            by = {(r.get("experts"), r.get("phase")): r["median"] for r in rows}
            row = [str(m)]
            for phase in ("forward", "forward+backward"):
                one, moe = by.get((1, phase)), by.get((4, phase))
                row += [format_time(one), format_time(moe),
                        f"{one / moe:.2f}x" if one and moe else "-"]
            table.append(row)
        lines += markdown_table(["points", "forward K=1", "forward K=4", "speed-up",
                                 "fwd+bwd K=1", "fwd+bwd K=4", "speed-up"], table)
        lines.append("")
    return lines, []
