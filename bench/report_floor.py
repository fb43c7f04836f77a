"""The scaling report's multigrid-floor section (``bench/test_floor.py``'s records).

Per tank and size, every median in units of the same run's fluid mat-vec, the bandwidth of
the copy and the mat-vec, and the iterations. Imports run one way: ``tables`` <-
``report_floor`` <- ``report``.
"""

from __future__ import annotations

from pathlib import Path

from .results import Results, group_by
from .tables import format_time, markdown_table

__all__ = ["floor_section"]

TARGET = 60  # issue 16: set-up + solve at 128^3 in mat-vecs


def floor_section(res: Results, figdir: Path, rel: str) -> tuple[list[str], list[Path]]:
    recs = [r for r in res.select(kind="floor") if r.get("median")]
    if not recs:
        return [], []
    lines = ["## Multigrid at the floor", "",
             "Each cost of `M=\"mg\"` in units of the same run's fluid mat-vec (the solvers' "
             "float64 mat-vec on the same grid), 3-D tanks, rtol 1e-6, medians. `f32`: "
             "`precision=\"float32\"`, the V-cycle in single precision inside float64 CG. "
             f"Issue 16's target: set-up + solve <= {TARGET} mat-vecs at 128^3. Bandwidth: "
             "bytes a kernel must move (copy: read + write 8 B; mat-vec: 17 B per cell) over "
             "its median.", ""]
    table = []
    for (problem, n), rows in group_by(recs, lambda r: (r.get("problem"), r.get("n"))).items():
        by = {r.get("method"): r for r in rows}
        mv = by.get("matvec")
        if mv is None:
            continue
        unit = mv["median"]

        def in_mv(phase, by=by, unit=unit):
            r = by.get(phase)
            return "-" if r is None else f"{r['median'] / unit:.1f}"

        def its(phase, by=by):
            r = by.get(phase)
            return "-" if r is None or r.get("iterations") is None else str(r["iterations"])

        copy = by.get("copy")
        table.append([f"{problem} {n}^3", format_time(unit),
                      _gbs(copy), _gbs(mv), in_mv("vcycle"), in_mv("vcycle-f32"),
                      in_mv("setup"), f"{in_mv('solve')} ({its('solve')})",
                      f"{in_mv('solve-f32')} ({its('solve-f32')})"])
    lines += markdown_table(["tank", "mat-vec", "copy GB/s", "mat-vec GB/s", "V-cycle",
                             "V-cycle f32", "set-up", "set-up + solve (its)",
                             "f32: set-up + solve (its)"], table)
    return lines, []


def _gbs(r) -> str:
    if r is None or not r.get("bytes"):
        return "-"
    return f"{r['bytes'] / r['median'] / 1e9:.1f}"
