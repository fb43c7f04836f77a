"""Turn pytest-benchmark JSON into ``bench/REPORT.md`` with PNG plots (``bench/report/``).

Usage (from the repository root)::

    python -m bench.report RESULTS.json [MORE.json ...] [--baseline OLD.json]
                           [--out bench/REPORT.md] [--wall-time SECONDS] [--threshold 0.10]

Several files are merged (a CPU run and a GPU run, say; a later file wins on a
repeated case). The report has a header (date, machine, CPU, versions, suite wall
time), per problem a method x size table of median time to solution and iterations,
growth exponents fitted on log-log axes with their plots, the iterations of every method
per scene and size beside MG-PCG's ratios to AMG-PCG (``bench/report_scenes.py``: issue
16's targets), the smoke pipeline's time per step, kernel bandwidth as a fraction of the
copy bandwidth (these from the CPU records), a GPU section (``bench/report_gpu.py``: card,
bandwidth, times beside the CPU's, issue 7's targets; or a plain statement that there are
no GPU results), and the run's ratios. ``--only-gpu`` writes the header and the GPU
section alone. With ``--baseline`` it adds a before/after table that flags regressions
(more than ``--threshold`` slower, more iterations, or no longer converging) and
improvements; ``--fail-on-regression`` makes that an exit status of 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections import defaultdict
from pathlib import Path

from . import plots
from .report_differentiable import differentiable_section
from .report_floor import floor_section
from .report_gpu import gpu_section
from .report_optimize import optimize_section
from .report_scenes import scenes_section
from .report_spectrum import spectrum_section
from .results import Results, fit_exponent, group_by, label_of, load, on_gpu, problem_title
from .tables import (
    code_list,
    format_exponent,
    format_number,
    format_time,
    markdown_table,
    time_cell,
)

__all__ = ["compare", "main", "write_report"]


# -- header ----------------------------------------------------------------------------------

def _header(res: Results, wall_time: float | None) -> list[str]:
    first = res.meta[0] if res.meta else {}
    mi = first.get("machine_info") or {}
    cpu = mi.get("cpu") or {}
    dcdm_meta = first.get("dcdm") or {}
    versions = dcdm_meta.get("versions") or next(
        (r["versions"] for r in res.records if isinstance(r.get("versions"), dict)), {})
    lines = ["# dcdm scaling report", "",
             f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} by "
             f"`python -m bench.report` from {code_list(res.paths)}.", ""]
    rows = []
    for m in res.meta:
        rows.append(["run", f"{m.get('datetime') or '?'} (`{Path(m['path']).name}`)"])
    rows.append(["machine", f"{mi.get('node', '?')}: {mi.get('system', '')} "
                 f"{mi.get('release', '')} {mi.get('machine', '')}".strip()])
    rows.append(["CPU", f"{cpu.get('brand_raw', mi.get('processor') or '?')}, "
                 f"{cpu.get('count', os.cpu_count())} logical cores, "
                 f"{cpu.get('hz_advertised_friendly', '?')}"])
    if dcdm_meta.get("memory_gib"):
        rows.append(["memory", f"{dcdm_meta['memory_gib']:.0f} GiB"])
    devices = sorted({str(r.get("device")) for r in res.records if r.get("device")})
    gpus = [g.get("name") if isinstance(g, dict) else str(g)
            for g in ((m.get("dcdm") or {}).get("gpu") for m in res.meta) if g]
    if devices:
        rows.append(["devices", ", ".join(devices) + (f" ({', '.join(dict.fromkeys(gpus))})"
                                                      if gpus else "")])
    if versions:
        rows.append(["versions", ", ".join(f"{k} {v}" for k, v in versions.items())])
    commit = first.get("commit_info") or {}
    if commit.get("id"):
        rows.append(["commit", f"`{commit['id'][:10]}`" + (" (uncommitted changes)"
                                                           if commit.get("dirty") else "")])
    wall = wall_time if wall_time is not None else res.suite_wall_s
    if wall is not None:
        rows.append(["suite wall time", f"{wall / 60:.1f} min ({wall:.0f} s)"])
    load = dcdm_meta.get("load_average") or {}
    if load.get("start") is not None:
        rows.append(["load average (1 min)", f"{load['start']:.2f} at the start, "
                     f"{load.get('end') or 0:.2f} at the end ({cpu.get('count', '?')} cores: "
                     "more than a fraction of one means other jobs shared the machine)"])
    opts = dcdm_meta.get("options") or {}
    if opts:
        rows.append(["suite options", ", ".join(f"{k}={v}" for k, v in opts.items())])
    lines += markdown_table(["", ""], rows)
    if len({str(r.get("versions")) for r in res.records if r.get("versions")}) > 1:
        lines += ["**Note:** the merged files were measured with different library versions.", ""]
    lines += ["Times are medians over the rounds of each case (1 round for the slow cases, up to "
              "5 for the fast); time to solution includes the preconditioner set-up. The "
              "machine may be shared: compare numbers within one run.", ""]
    return lines


# -- solvers ---------------------------------------------------------------------------------

def _solver_groups(res: Results) -> dict[tuple[str, int], list[dict]]:
    recs = [r for r in res.select(kind="solver", case="to-tolerance")
            if r.get("problem") and r.get("dim") and r.get("median") is not None
            and not on_gpu(r)]
    return group_by(recs, lambda r: (r["problem"], int(r["dim"])), order=lambda k: (-k[1], k[0]))


def _summary_section(res: Results) -> list[str]:
    """The answer first: per problem, the fastest converged method at the largest size."""
    rows = []
    for (problem, dim), recs in _solver_groups(res).items():
        n = max(int(r["n"]) for r in recs)
        ok = sorted((r for r in recs if int(r["n"]) == n
                     and str(r.get("reason") or "").startswith("CONVERGED")),
                    key=lambda r: r["median"])
        if not ok:
            continue
        best = ok[0]
        row = [problem_title(problem, dim), f"{n}^{dim}", f"`{label_of(best)}`", time_cell(best)]
        if len(ok) > 1:
            row += [f"`{label_of(ok[1])}`", f"{ok[1]['median'] / best['median']:.1f}x"]
        else:
            row += ["-", "-"]
        rows.append(row)
    if not rows:
        return []
    return ["## Summary", "", *markdown_table(["problem", "largest size", "fastest",
                                               "time (iterations)", "runner-up",
                                               "runner-up is slower by"], rows)]


def _solver_section(res: Results, figdir: Path, rel: str) -> tuple[list[str], list[Path]]:
    groups = _solver_groups(res)
    if not groups:
        return [], []
    lines = ["## Solvers: time to solution and iterations", "",
             "Each cell: median time to solution (set-up + solve) and, in brackets, iterations "
             "to the tolerance on the true residual `||b - A x|| <= rtol ||b||`. **Bold**: the "
             "fastest at that size; `-`: not run (see *Not run* below). Growth exponents `p` "
             "are least-squares slopes of log(value) against log(N) over the sizes run.", ""]
    files = []
    for (problem, dim), recs in groups.items():
        title = problem_title(problem, dim)
        ns = sorted({int(r["n"]) for r in recs})
        labels = list(dict.fromkeys(label_of(r) for r in recs))
        cells = {(label_of(r), int(r["n"])): r for r in recs}
        best = {n: min((r for r in recs if int(r["n"]) == n), key=lambda r: r["median"])
                for n in ns}
        rows = []
        for lab in labels:
            row = [f"`{lab}`"]
            for n in ns:
                r = cells.get((lab, n))
                text = "-" if r is None else time_cell(r)
                row.append(f"**{text}**" if r is best[n] else text)
            rows.append(row)
        rtol = recs[0].get("rtol")
        lines += [f"### {title}", "", f"rtol {rtol}, {recs[0].get('dtype')}, "
                  f"device {recs[0].get('device')}.", ""]
        lines += markdown_table(["method"] + [f"{n}^{dim} (N = {n**dim:,})" for n in ns], rows)
        fits, it_series, t_series = [], {}, {}
        for lab in labels:
            pts = sorted((r for r in recs if label_of(r) == lab), key=lambda r: r["unknowns"])
            x = [r["unknowns"] for r in pts]
            its = [r.get("iterations") for r in pts]
            ts = [r["median"] for r in pts]
            p_it, p_t = fit_exponent(x, its), fit_exponent(x, ts)
            fits.append([f"`{lab}`", f"{len(pts)}", format_exponent(p_it), format_exponent(p_t)])
            if all(v is not None for v in its):
                it_series[lab] = (x, its, p_it)
            t_series[lab] = (x, ts, p_t)
        if len(ns) < 2:  # one size: nothing grows
            continue
        lines += ["Growth with the number of unknowns N:", ""]
        lines += markdown_table(["method", "sizes", "iterations ~ N^p", "time ~ N^p"], fits)
        slug = f"{problem}{dim}d"
        f_it = plots.scaling(it_series, figdir / f"{slug}-iterations.png",
                             title=f"{title}: iterations", ylabel="iterations to rtol")
        f_t = plots.scaling(t_series, figdir / f"{slug}-time.png",
                            title=f"{title}: time to solution", ylabel="seconds (set-up + solve)")
        files += [f_it, f_t]
        lines += [f"![iterations vs unknowns]({rel}/{f_it.name})",
                  f"![time vs unknowns]({rel}/{f_t.name})", ""]
    return lines, files


def _other_solver_section(res: Results) -> list[str]:
    lines = []
    fixed = [r for r in res.select(kind="solver", case="fixed-iterations") if not on_gpu(r)]
    if fixed:
        rows = []
        for r in fixed:
            its = r.get("iterations") or 1
            rows.append([f"`{label_of(r)}`", f"{r.get('problem')} {r.get('n')}^{r.get('dim')}",
                         str(r.get("dtype")), format_number(its), format_time(r.get("median")),
                         format_time(r["median"] / its if r.get("median") else None)])
        lines += ["## CG time per iteration", "",
                  "A fixed number of iterations (rtol = 0), no preconditioner: the cost of one "
                  "iteration of the matrix-free loop against scipy's `cg` on the CSR matrix.", ""]
        lines += markdown_table(["method", "problem", "dtype", "iterations", "median",
                                 "per iteration"], rows)
    f32 = [r for r in res.select(kind="solver", case="float32") if not on_gpu(r)]
    if f32:
        rows = [[f"`{label_of(r)}`", f"{r.get('problem')} {r.get('n')}^{r.get('dim')}",
                 str(r.get("rtol")), format_time(r.get("median")),
                 format_number(r.get("iterations")), str(r.get("reason"))] for r in f32]
        lines += ["## Single precision", ""]
        lines += markdown_table(["method", "problem", "rtol", "median", "iterations", "reason"],
                                rows)
    return lines


# -- pipeline --------------------------------------------------------------------------------

def _pipeline_section(res: Results, figdir: Path, rel: str) -> tuple[list[str], list[Path]]:
    recs = [r for r in res.select(kind="pipeline") if r.get("median") is not None]
    if not recs:
        return [], []
    lines = ["## Smoke simulation: pressure solve per time step", "",
             "The `dcdm demo` scene (a plume past a moving sphere): every step assembles the "
             "pressure system on the new flags, builds the preconditioner and solves "
             "(warm-started). *Step* is the whole simulation step (advection, forces, "
             "projection); *pressure* is set-up + solve.", ""]
    rows, panels = [], defaultdict(dict)
    for r in sorted(recs, key=lambda r: (-int(r["dim"]), int(r["n"]))):
        steps = int(r.get("steps") or 1)
        step_t = r["median"] / steps
        pressure = r.get("pressure_s") or []
        mean_p = sum(pressure) / len(pressure) if pressure else None
        its = r.get("step_iterations") or []
        rows.append([f"`{label_of(r)}`", f"{r['n']}^{r['dim']}", str(steps),
                     format_time(step_t), format_time(mean_p),
                     f"{100 * mean_p / step_t:.0f}%" if mean_p and step_t else "-",
                     format_number(r.get("iterations")), format_number(max(its) if its else None),
                     str(r.get("reason"))])
        if pressure:
            panels[f"{r['n']}^{r['dim']} ({r['dim']}-D)"][label_of(r)] = pressure
    lines += markdown_table(["method", "grid", "steps", "time / step", "pressure / step", "share",
                             "mean iterations", "max iterations", "last reason"], rows)
    files = []
    if panels:
        f = plots.pipeline_steps(dict(panels), figdir / "pipeline.png")
        files.append(f)
        lines += [f"![pressure solve per step]({rel}/{f.name})", ""]
    return lines, files


# -- kernels ---------------------------------------------------------------------------------

def _kernel_section(res: Results, figdir: Path, rel: str) -> tuple[list[str], list[Path]]:
    recs = [r for r in res.select(kind="kernel") if r.get("GB/s") and not on_gpu(r)]
    if not recs:
        return [], []
    copies = {(r.get("dim"), r.get("n"), r.get("dtype"), r.get("device")): r["GB/s"]
              for r in recs if r.get("method") == "copy"}
    rows, groups, fractions = [], [], defaultdict(dict)
    for r in sorted(recs, key=lambda r: (-int(r["dim"]), str(r["dtype"]), str(r["method"]))):
        gkey = (r.get("dim"), r.get("n"), r.get("dtype"), r.get("device"))
        frac = r["GB/s"] / copies[gkey] if gkey in copies else None
        group = f"{r['n']}^{r['dim']} {r['dtype']}"
        rows.append([f"`{r['method']}`", group, format_time(r["median"]), f"{r['GB/s']:.1f}",
                     "-" if frac is None else f"{frac:.2f}"])
        if r.get("method") != "copy":
            if group not in groups:
                groups.append(group)
            fractions[r["method"]][group] = frac
    lines = ["## Kernels: bandwidth", "",
             "Bandwidth = bytes moved / median time; the reference is `np.copyto` of the same "
             "array in the same run (target for the solvers' mat-vec `matvec_fluid`: 0.7).", ""]
    lines += markdown_table(["kernel", "size", "median", "GB/s", "/ copy"], rows)
    f = plots.bandwidth(groups, {k: [v.get(g) for g in groups] for k, v in fractions.items()},
                        figdir / "kernels.png")
    lines += [f"![kernel bandwidth]({rel}/{f.name})", ""]
    return lines, [f]


# -- ratios, skipped -------------------------------------------------------------------------

def _ratio_section(res: Results) -> list[str]:
    ratios = [r for m in res.meta for r in (m.get("dcdm") or {}).get("ratios", [])]
    if not ratios:
        return []
    lines = ["## Ratios (medians of the same run)", ""]
    return lines + markdown_table(["ratio", "value", "meaning"],
                                  [[r["label"], f"{r['value']:.3f}", r["meaning"]] for r in ratios])


def _skipped_section(res: Results) -> list[str]:
    by_reason: dict[str, list[str]] = defaultdict(list)
    for m in res.meta:
        for s in (m.get("dcdm") or {}).get("skipped", []):
            reason = str(s["reason"]).removeprefix("Skipped: ")
            by_reason[reason].append(s["test"].split("::")[-1])
    if not by_reason:
        return []
    rows = [[reason, str(len(tests)), code_list(tests, 4)] for reason, tests in by_reason.items()]
    return ["## Not run", "", *markdown_table(["reason", "cases", "e.g."], rows)]


# -- comparison ------------------------------------------------------------------------------

def compare(before: Results, after: Results, threshold: float = 0.10) -> tuple[list[str], int]:
    """Markdown comparing two runs case by case; returns ``(lines, regressions)``.

    A case regresses when its median grows by more than ``threshold`` (relative), when it
    takes more iterations, or when it converged before and does not now; it improves when
    its median drops by more than ``threshold`` or it takes fewer iterations.
    """
    old, new = before.by_key(), after.by_key()
    rows, regressions, improvements = [], 0, 0
    for key in [k for k in new if k in old]:
        a, b = old[key], new[key]
        if not a.get("median") or not b.get("median"):
            continue
        change = b["median"] / a["median"] - 1.0
        ia, ib = a.get("iterations"), b.get("iterations")
        worse, better = [], []
        if change > threshold:
            worse.append(f"{100 * change:.0f}% slower")
        elif change < -threshold:
            better.append(f"{-100 * change:.0f}% faster")
        if ia is not None and ib is not None and (a.get("case") != "fixed-iterations"):
            if ib > ia * 1.02 and ib - ia >= 0.5:
                worse.append("more iterations")
            elif ib < ia / 1.02 and ia - ib >= 0.5:
                better.append("fewer iterations")
        ra, rb = str(a.get("reason") or ""), str(b.get("reason") or "")
        if ra.startswith("CONVERGED") and rb and not rb.startswith("CONVERGED"):
            worse.append(f"no longer converges ({rb})")
        verdict = ("**REGRESSION**: " + ", ".join(worse)) if worse else (
            ("improved: " + ", ".join(better)) if better else "same")
        regressions += bool(worse)
        improvements += bool(better) and not worse
        rows.append((0 if worse else 1 if better else 2, [
            f"`{key}`", format_time(a["median"]), format_time(b["median"]),
            f"{100 * change:+.1f}%",
            "-" if ia is None and ib is None else f"{format_number(ia)} -> {format_number(ib)}",
            verdict]))
    rows.sort(key=lambda t: t[0])
    lines = ["## Before / after", "",
             f"Baseline {code_list(before.paths)} against {code_list(after.paths)}: "
             f"{len(rows)} cases in both, **{regressions} regressions**, {improvements} "
             f"improvements (threshold {100 * threshold:.0f}% on the median; any change of "
             "iterations counts).", ""]
    lines += markdown_table(["case", "before", "after", "change", "iterations", "verdict"],
                            [r for _, r in rows])
    for title, keys in (("Only in the baseline", [k for k in old if k not in new]),
                        ("New in this run", [k for k in new if k not in old])):
        if keys:
            lines += [f"{title} ({len(keys)}): {code_list(keys, 20)}", ""]
    return lines, regressions


# -- the whole report ------------------------------------------------------------------------

def _remove_stale(figdir: Path, figures: list[Path]) -> None:
    """Delete figures of an earlier report that this one did not redraw."""
    keep = {p.name for p in figures}
    patterns = ("*-iterations.png", "*-time.png", "pipeline.png", "kernels.png", "spectra.png",
                "optimize.png")
    for pattern in patterns if figdir.is_dir() else ():
        for path in figdir.glob(pattern):
            if path.name not in keep:
                path.unlink()


def write_report(res: Results, out: Path, *, baseline: Results | None = None,
                 wall_time: float | None = None, threshold: float = 0.10,
                 only_gpu: bool = False) -> dict:
    """Write ``out`` (Markdown) and its PNG figures in ``out.parent / "report"``
    (``only_gpu``: the header and the GPU section, no figures).

    Returns ``{"report": path, "figures": [paths], "regressions": count}``.
    """
    out = Path(out)
    if only_gpu:
        out.parent.mkdir(parents=True, exist_ok=True)
        text = "\n".join(_header(res, wall_time) + gpu_section(res)).rstrip() + "\n"
        out.write_text(text)
        return {"report": out, "figures": [], "regressions": 0}
    figdir = out.parent / "report"
    rel = os.path.relpath(figdir, out.parent)
    lines = _header(res, wall_time)
    compare_lines, regressions = [], 0
    if baseline is not None:
        compare_lines, regressions = compare(baseline, res, threshold)
    more, figures = _solver_section(res, figdir, rel)
    lines += _summary_section(res) + more + scenes_section(res)
    for section in (floor_section, _pipeline_section, _kernel_section, spectrum_section,
                    optimize_section, differentiable_section):
        more, files = section(res, figdir, rel)
        lines += more
        figures += files
    lines += _other_solver_section(res)
    lines += gpu_section(res)
    lines += _ratio_section(res)
    lines += _skipped_section(res)
    lines += compare_lines
    if res.replaced:
        lines += [f"{len(res.replaced)} cases appeared in more than one input file; the last "
                  "file's numbers are shown.", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")
    _remove_stale(figdir, figures)
    return {"report": out, "figures": figures, "regressions": regressions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", help="pytest-benchmark JSON file(s) to report")
    parser.add_argument("--baseline", action="append", default=None, metavar="OLD.json",
                        help="earlier JSON to compare against (repeatable: merged)")
    parser.add_argument("--out", default="bench/REPORT.md", help="Markdown file to write")
    parser.add_argument("--wall-time", type=float, default=None, metavar="SECONDS",
                        help="the suite's wall time (default: as recorded in the JSON)")
    parser.add_argument("--threshold", type=float, default=0.10,
                        help="relative slow-down that counts as a regression (default 0.10)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit with status 1 when the comparison finds a regression")
    parser.add_argument("--only-gpu", action="store_true",
                        help="write only the header and the GPU section (no figures)")
    args = parser.parse_args(argv)
    if args.threshold < 0:
        parser.error(f"--threshold must be >= 0, got {args.threshold}")
    try:
        res = load(args.results)
        base = load(args.baseline) if args.baseline else None
    except (OSError, ValueError) as err:
        parser.error(str(err))
    info = write_report(res, Path(args.out), baseline=base, wall_time=args.wall_time,
                        threshold=args.threshold, only_gpu=args.only_gpu)
    print(f"wrote {info['report']} and {len(info['figures'])} figures in "
          f"{Path(args.out).parent / 'report'}")
    if base is not None:
        print(f"{info['regressions']} regressions against the baseline")
    return 1 if (args.fail_on_regression and info["regressions"]) else 0


if __name__ == "__main__":
    sys.exit(main())
