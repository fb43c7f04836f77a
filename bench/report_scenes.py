"""The report's *Iterations per scene* section: where each solver degrades (issue 16).

One table per dimension, a row per problem and size, a column per method with its iteration
count to the tolerance, then MG-PCG (``cg+mg``) against AMG-PCG (``cg+amg``): the ratio of
their iterations (issue 16's target: at most 1.5) and AMG's time to solution over MG's
(target: at least 5). A method that did not run on a row shows ``—``, one that did not
converge ``✗ (reason)``. Only the CPU records of the to-tolerance solver cases count.
"""

from __future__ import annotations

from .results import Results, group_by, label_of, on_gpu
from .tables import format_number, markdown_table

__all__ = ["ITERATION_TARGET", "SPEED_TARGET", "iteration_cell", "scenes_section"]

MG, AMG = "cg+mg", "cg+amg"
ITERATION_TARGET = 1.5  # MG-PCG's iterations / AMG-PCG's, at most
SPEED_TARGET = 5.0  # AMG-PCG's time to solution / MG-PCG's, at least
NOT_RUN = "—"


def converged(r: dict | None) -> bool:
    return r is not None and str(r.get("reason") or "").startswith("CONVERGED")


def iteration_cell(r: dict | None) -> str:
    """The iterations of one run; ``—`` if it did not run, ``✗ (reason)`` if it failed.

    Examples
    --------
    >>> iteration_cell({"iterations": 12, "reason": "CONVERGED_RTOL"})
    '12'
    >>> iteration_cell({"iterations": 4000, "reason": "MAX_ITERATIONS"})
    '✗ (MAX_ITERATIONS)'
    >>> iteration_cell(None)
    '—'
    """
    if r is None:
        return NOT_RUN
    if not converged(r):
        return f"✗ ({r.get('reason') or 'no reason recorded'})"
    return format_number(r.get("iterations"))


def _ratio_cell(value: float | None, meets: bool) -> str:
    if value is None:
        return NOT_RUN
    text = f"{value:.2f}"
    return text if meets else f"**{text}**"


def _ratios(mg: dict | None, amg: dict | None) -> tuple[float | None, float | None]:
    """``(MG iterations / AMG iterations, AMG time / MG time)``; ``None`` where one of the
    two did not run or did not converge."""
    if not (converged(mg) and converged(amg)):
        return None, None
    its = None
    if mg.get("iterations") is not None and amg.get("iterations"):
        its = mg["iterations"] / amg["iterations"]
    speed = amg["median"] / mg["median"] if mg.get("median") and amg.get("median") else None
    return its, speed


def scenes_section(res: Results) -> list[str]:
    """Markdown of the section (empty without solver records)."""
    recs = [r for r in res.select(kind="solver", case="to-tolerance")
            if r.get("problem") and r.get("dim") and r.get("n") and not on_gpu(r)]
    if not recs:
        return []
    lines = ["## Iterations per scene", "",
             "Iterations to the tolerance of every method on every problem and size, so that "
             "one reads down a column where a solver degrades. `—`: not run (see *Not run*); "
             "`✗ (reason)`: did not converge. The last two columns put MG-PCG (`cg+mg`) beside "
             f"AMG-PCG (`cg+amg`): *MG / AMG iterations* (issue 16's target: at most "
             f"{ITERATION_TARGET:g}) and *AMG / MG time*, AMG's time to solution over MG's, "
             f"set-up included (target: at least {SPEED_TARGET:g}); **bold**: the target is "
             "missed.", ""]
    for dim, dim_recs in group_by(recs, lambda r: int(r["dim"]), order=lambda d: -d).items():
        # MG and AMG first, the others as they came (the suite's order of methods)
        labels = sorted(dict.fromkeys(label_of(r) for r in dim_recs),
                        key=lambda lab: (MG, AMG).index(lab) if lab in (MG, AMG) else 2)
        cells = {(r["problem"], int(r["n"]), label_of(r)): r for r in dim_recs}
        rows, met_its, met_speed, compared = [], 0, 0, 0
        for problem, n in sorted({(str(r["problem"]), int(r["n"])) for r in dim_recs}):
            its, speed = _ratios(cells.get((problem, n, MG)), cells.get((problem, n, AMG)))
            ok_its = its is not None and its <= ITERATION_TARGET
            ok_speed = speed is not None and speed >= SPEED_TARGET
            if its is not None or speed is not None:
                compared += 1
                met_its += ok_its
                met_speed += ok_speed
            rows.append([problem, f"{n}^{dim}",
                         *(iteration_cell(cells.get((problem, n, lab))) for lab in labels),
                         _ratio_cell(its, ok_its), _ratio_cell(speed, ok_speed)])
        lines += [f"### {dim}-D", ""]
        lines += markdown_table(["problem", "size", *(f"`{lab}`" for lab in labels),
                                 "MG / AMG iterations", "AMG / MG time"], rows)
        if compared:
            lines += [f"MG-PCG meets the iteration target on {met_its} of {compared} rows and "
                      f"the speed target on {met_speed} of {compared}.", ""]
        else:
            lines += ["No row has converged runs of both `cg+mg` and `cg+amg`: no ratios.", ""]
    return lines
