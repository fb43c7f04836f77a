"""The GPU section of ``bench/REPORT.md`` (issue 7), from the records with ``device == "cuda"``.

It shows the card and its software (from the ``"dcdm"`` ``gpu`` metadata of the run that
measured it), the fluid mat-vec's bandwidth as a fraction of a device-to-device copy of the
same bytes, the times to rtol 1e-6 on the smoke tank beside the CPU numbers of the same
scene (when a CPU run is merged in), and the issue's targets with a verdict each:

- mat-vec bandwidth at 256^3 >= 0.8 of the copy;
- DCDM on the GPU >= 20x faster than MIC0-PCG on the CPU at 128^3;
- DCDM on the GPU within 1.0x of MG-PCG on the GPU at 256^3.

Without GPU records it says so plainly (and why, if the run that tried recorded skips).
"""

from __future__ import annotations

from collections import defaultdict

from .results import Results, label_of, on_gpu
from .tables import format_time, markdown_table, time_cell

__all__ = ["TARGETS", "gpu_section"]

#: (what, threshold, direction): the issue's targets
TARGETS = {
    "bandwidth": ("fluid mat-vec / device copy bandwidth at 256^3", 0.8, ">="),
    "dcdm_vs_mic0": ("DCDM GPU speed-up over MIC0-PCG CPU at 128^3", 20.0, ">="),
    "dcdm_vs_mg": ("DCDM GPU time / MG-PCG GPU time at 256^3", 1.0, "<="),
}
MIC0_N, MG_N = 128, 256


def _gpu_meta(res: Results) -> tuple[dict | None, dict | None]:
    """(gpu info, file meta) of the first input file that recorded a GPU."""
    for m in res.meta:
        gpu = (m.get("dcdm") or {}).get("gpu")
        if gpu:
            return (gpu if isinstance(gpu, dict) else {"name": str(gpu)}), m
    return None, None


def _skips(res: Results) -> list[str]:
    """Skip reasons of GPU cases (``test_gpu.py`` or a ``--bench-device cuda`` run)."""
    out = []
    for m in res.meta:
        dm = m.get("dcdm") or {}
        cuda_run = (dm.get("options") or {}).get("device") == "cuda"
        for s in dm.get("skipped", []):
            if cuda_run or "test_gpu.py" in s["test"]:
                out.append(str(s["reason"]).removeprefix("Skipped: "))
    return list(dict.fromkeys(out))


def _median_ratio(a: dict | None, b: dict | None) -> float | None:
    """``a``'s median over ``b``'s (how many times faster ``b`` is); ``None`` unless both
    records exist and ``b``'s median is non-zero."""
    return a["median"] / b["median"] if (a and b and b["median"]) else None


def _verdict(value: float | None, target: str, why_missing: str = "") -> str:
    _, threshold, direction = TARGETS[target]
    if value is None:
        return f"not measured{': ' + why_missing if why_missing else ''}"
    ok = value >= threshold if direction == ">=" else value <= threshold
    return f"{value:.2f} (target {direction} {threshold:g}): " + ("met" if ok else "**not met**")


# -- card ------------------------------------------------------------------------------------

def _card_rows(gpu: dict, meta: dict) -> list[list[str]]:
    torch = gpu.get("torch")
    if torch:
        torch += f" (CUDA {gpu.get('torch_cuda') or '?'}, cuDNN {gpu.get('cudnn') or '?'})"
    kernels = gpu.get("kernels") or {}
    origins = sorted({str(o).split(":")[0] for o in kernels.values()})
    rows = [["card", f"{gpu.get('name', '?')} (compute capability "
                     f"{gpu.get('compute_capability', '?')}, {gpu.get('memory_gib', '?')} GiB)"],
            ["NVIDIA driver", str(gpu.get("driver") or "?")],
            ["CUDA", f"runtime {gpu.get('cuda_runtime', '?')}, driver API "
                     f"{gpu.get('cuda_driver_api', '?')}"],
            ["CuPy", str(gpu.get("cupy") or "?")],
            ["torch", torch or "not used"],
            ["dcdm CUDA kernels", (", ".join(origins) if origins else "not loaded")
             + f" (loader {gpu.get('loader', 'auto')})"],
            ["host", _host(meta)],
            ["run", f"{meta.get('datetime') or '?'} (`{meta['path'].rsplit('/', 1)[-1]}`)"]]
    return rows


def _host(meta: dict) -> str:
    mi = meta.get("machine_info") or {}
    cpu = mi.get("cpu") or {}
    return (f"{mi.get('node', '?')}: {cpu.get('brand_raw', mi.get('processor') or '?')}, "
            f"{cpu.get('count', '?')} logical cores, Python {mi.get('python_version', '?')}")


# -- bandwidth -------------------------------------------------------------------------------

def _bandwidth(res: Results) -> tuple[list[str], dict]:
    """The bandwidth table and ``{(n, dtype): fraction}`` of the fluid mat-vec."""
    recs = [r for r in res.select(kind="kernel") if on_gpu(r) and r.get("GB/s")]
    if not recs:
        return [], {}
    groups: dict[tuple, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in recs:
        suite = "gpu" if str(r["key"]).startswith("gpu-") else "kernels"
        groups[(int(r["n"]), str(r["dtype"]), suite)][str(r["method"])].append(r)

    def per_launch(r):
        return r.get("event_s") or r.get("per_launch_s") or r["median"]

    def event_bw(r):
        return r.get("event_GBps") or r["GB/s"]

    rows, fractions = [], {}
    for (n, dtype, _suite), by_method in sorted(groups.items(), key=lambda kv: kv[0]):
        copy = (by_method.get("copy") or [None])[0]
        for method in sorted(by_method, key=lambda k: (k == "copy", k)):
            for r in by_method[method]:
                frac_e = event_bw(r) / event_bw(copy) if copy else None
                frac_w = r["GB/s"] / copy["GB/s"] if copy else None
                if method == "matvec_fluid" and frac_e is not None:
                    fractions[(n, dtype)] = frac_e
                rows.append([f"`{method}`", f"{n}^3 {dtype}", format_time(per_launch(r)),
                             f"{event_bw(r):.0f}",
                             "-" if frac_e is None else f"{frac_e:.2f}",
                             "-" if frac_w is None else f"{frac_w:.2f}"])
    lines = ["### Mat-vec bandwidth", "",
             "Bytes the kernel must move (read `x` and the int8 stencil code, write `out`) "
             "per second, against a device-to-device `cudaMemcpyAsync` of the same bytes in "
             "the same run. *Per launch* and *GB/s*: CUDA events around back-to-back "
             "launches; the last column uses the synchronised wall-clock rounds instead.", ""]
    lines += markdown_table(["kernel", "size", "per launch", "GB/s", "/ copy", "/ copy (wall)"],
                            rows)
    return lines, fractions


# -- time to solution ------------------------------------------------------------------------

def _cpu_twin(res: Results, r: dict) -> dict | None:
    """The CPU record of the same scene, method, size and dtype (to-tolerance)."""
    for c in res.select(kind="solver", case="to-tolerance", problem=r.get("problem"),
                        dim=r.get("dim"), n=r.get("n")):
        if not on_gpu(c) and label_of(c) == label_of(r) and c.get("dtype") == r.get("dtype"):
            return c
    return None


def _solves(res: Results) -> tuple[list[str], dict]:
    recs = [r for r in res.select(kind="solver", case="to-tolerance")
            if on_gpu(r) and r.get("median") is not None]
    if not recs:
        return [], {}
    index = {(r.get("problem"), int(r["dim"]), int(r["n"]), label_of(r), str(r["dtype"])): r
             for r in recs}
    rows = []
    for key in sorted(index, key=lambda k: (k[0], -k[1], k[2], k[4], k[3])):
        r = index[key]
        cpu = _cpu_twin(res, r)
        speedup = _median_ratio(cpu, r)
        rows.append([f"{key[0]} {key[2]}^{key[1]}", f"`{key[3]}`", key[4], time_cell(r),
                     format_time(r.get("setup_s")), "-" if cpu is None else time_cell(cpu),
                     "-" if speedup is None else f"{speedup:.1f}x"])
    rtol = recs[0].get("rtol")
    lines = ["### Time to solution", "",
             f"Median time to rtol {rtol} on the true residual (set-up + solve, the device "
             "synchronised at the end), iterations in brackets; the seeded smoke tank of the "
             "CPU suite. *CPU*: the same scene, method and dtype from a CPU run merged into "
             "this report (`-` when none).", ""]
    lines += markdown_table(["problem", "method", "dtype", "GPU", "GPU set-up", "CPU",
                             "CPU / GPU"], rows)
    return lines, index


def _targets(res: Results, fractions: dict, index: dict, skips: list[str]) -> list[str]:
    dcdm_why = next((s for s in skips if "DCDM" in s or "torch" in s), "no DCDM GPU record")
    rows = [[TARGETS["bandwidth"][0] + f" ({dtype})",
             _verdict(fractions.get((MG_N, dtype)), "bandwidth",
                      f"no {MG_N}^3 GPU mat-vec and copy records")]
            for dtype in ("float32", "float64")]
    mic0 = next((c for c in res.select(kind="solver", case="to-tolerance", problem="smoke",
                                       dim=3, n=MIC0_N)
                 if not on_gpu(c) and label_of(c) == "cg+mic0"
                 and c.get("dtype") in (None, "float64")), None)
    labels = sorted({k[3] for k in index if k[3].startswith("dcdm")}) or ["dcdm-robust"]
    for label in labels:
        for dtype in ("float32", "float64"):
            g = index.get(("smoke", 3, MIC0_N, label, dtype))
            d, mg = index.get(("smoke", 3, MG_N, label, dtype)), index.get(
                ("smoke", 3, MG_N, "cg+mg", dtype))
            for target, value, why in (
                    ("dcdm_vs_mic0", _median_ratio(mic0, g),
                     "no CPU MIC0-PCG 128^3 record merged in" if g and not mic0 else dcdm_why),
                    ("dcdm_vs_mg", _median_ratio(d, mg),
                     "no MG-PCG GPU 256^3 record" if d and not mg else dcdm_why)):
                rows.append([f"{TARGETS[target][0]} (`{label}`, {dtype})",
                             _verdict(value, target, why)])
    context = []
    for dtype in ("float32", "float64"):
        speedup = _median_ratio(mic0, index.get(("smoke", 3, MIC0_N, "cg+mg", dtype)))
        if speedup is not None:
            context.append(f"MG-PCG on the GPU ({dtype}) is {speedup:.1f}x "
                           "faster than MIC0-PCG on the CPU at 128^3.")
    lines = ["### Targets (issue 7)", ""]
    lines += markdown_table(["target", "measured"], rows)
    if context:
        lines += ["For scale: " + " ".join(context), ""]
    if mic0 is not None:
        lines += [f"CPU baseline: MIC0-PCG at 128^3, {mic0['median']:.2f} s "
                  f"({mic0.get('iterations')} iterations, float64), from the CPU run merged "
                  "into this report (its machine: see the header).", ""]
    return lines


def gpu_section(res: Results) -> list[str]:
    """Markdown lines of the GPU section (a plain statement when there are no GPU results)."""
    gpu, meta = _gpu_meta(res)
    skips = _skips(res)
    has_records = any(on_gpu(r) for r in res.records)
    lines = ["## GPU", ""]
    if not has_records:
        lines += ["**No GPU results in these inputs**: nothing in this report was measured on a "
                  "GPU (issue 7's mat-vec bandwidth at 256^3 and times to rtol 1e-6 at 128^3 "
                  "and 256^3 remain to be measured). `bash bench/gpu_check.sh` on a GPU "
                  "machine writes them; see `bench/NOTES.md`.", ""]
        if skips:
            lines += ["The GPU cases of these runs were skipped: "
                      + "; ".join(f"{s}" for s in skips[:5]) + ".", ""]
        return lines
    if gpu is not None:
        lines += markdown_table(["", ""], _card_rows(gpu, meta))
    else:
        lines += ["(The GPU run recorded no card metadata.)", ""]
    bw_lines, fractions = _bandwidth(res)
    solve_lines, index = _solves(res)
    lines += _targets(res, fractions, index, skips)
    lines += bw_lines + solve_lines
    if skips:
        lines += ["GPU cases not run: " + "; ".join(skips) + ".", ""]
    return lines
