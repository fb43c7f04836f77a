"""Spectra that explain this package (issue 13, points 6 and 7); write-up in docs/SPECTRA.md.

A. Preconditioned operators ``M^-1 A`` on one smoke tank (2-D, optionally 3-D), for ``M`` in
   none, jacobi, ic0, mic0, amg, mg: Lanczos extremes and kappa, the free kappa estimate of a
   CG solve, SLQ densities, predicted vs actual CG iterations.
B. The shipped 2-D DCDM network linearised: the spectrum of ``J A`` (``J = df/dr``) against
   ``M^-1 A``; non-linearity and non-symmetry of ``f`` (:mod:`bench.spectra_dcdm`).
C. The Hessian of the DCDM training loss at initialisation and after training
   (:mod:`bench.spectra_dcdm`).
D. Sagun et al. (2017) on a small tanh MLP and Gaussian blobs: exact Hessian spectra against
   width and number of classes.

Usage::

    python -m bench.spectra --out docs/spectra            # every study, default sizes
    python -m bench.spectra --out /tmp/s --only a d --n 32

Writes ``spectra.json`` (every number) and one PNG per study into ``--out``. One torch and
one BLAS thread (the development machine has 2 cores and is shared).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

import dcdm
from dcdm import spectrum
from dcdm.problems import rhs, scenes

from . import spectra_dcdm as net_studies

log = logging.getLogger("bench.spectra")

PRECONDITIONERS = (None, "jacobi", "ic0", "mic0", "amg", "mg")


def _name(M) -> str:
    return "none" if M is None else M


# -- A: preconditioned operators ------------------------------------------------------------
class _CountMatvecs:
    """Count products with ``A`` (``matvec`` and ``matvec_fluid``: instance attributes shadow
    the methods while active)."""

    NAMES = ("matvec", "matvec_fluid")

    def __init__(self, A):
        self.A, self.count = A, 0

    def __enter__(self):
        for name in self.NAMES:
            inner = getattr(self.A, name, None)
            if inner is not None:
                setattr(self.A, name, self._counted(inner))
        return self

    def _counted(self, inner):
        def counted(x, out=None):
            self.count += 1
            return inner(x, out=out)
        return counted

    def __exit__(self, *exc):
        for name in self.NAMES:
            self.A.__dict__.pop(name, None)


def study_a(shape, obstacles: int, seed: int = 0, scene_seed: int = 1001, rtol: float = 1e-6,
            slq_steps: int = 40, slq_probes: int = 4, ext_maxiter: int = 1000,
            ext_rtol: float = 1e-8) -> tuple[dict, dict]:
    """Study A on ``scenes.smoke(shape, obstacles, scene_seed)``: ``(numbers, densities)``."""
    grid = scenes.smoke(shape, obstacles=obstacles, seed=scene_seed)
    A = grid.laplacian()
    b = rhs.random(grid, seed=seed)
    out = {"grid": list(shape), "obstacles": obstacles, "scene_seed": scene_seed,
           "n_fluid": int(grid.n_fluid), "rtol": rtol, "rhs": "rhs.random", "rows": {}}
    densities = {}
    for M in PRECONDITIONERS:
        t0 = time.perf_counter()
        P = net_studies.build_preconditioner(M, A, seed)
        with _CountMatvecs(A) as count:
            ext = spectrum.extreme_eigenvalues(A, P, seed=seed, rtol=ext_rtol,
                                               maxiter=min(ext_maxiter, grid.n_fluid),
                                               reorthogonalize="full")
        res = dcdm.cg(A, b, M=P, rtol=rtol, maxiter=20 * grid.n_fluid)
        dens = spectrum.slq(A, P, steps=min(slq_steps, grid.n_fluid), probes=slq_probes,
                            seed=seed)
        with_b = spectrum.predict_iterations(A, b, P, rtol=rtol, seed=seed)
        free = spectrum.predict_iterations(A, None, P, rtol=rtol, seed=seed)
        densities[_name(M)] = dens
        out["rows"][_name(M)] = {
            "lowest": ext.lowest, "highest": ext.highest, "kappa": ext.condition_number,
            "extremes_matvecs": count.count,
            "extremes_capped": getattr(ext, "steps", count.count) >= min(ext_maxiter,
                                                                        grid.n_fluid),
            "kappa_from_cg": spectrum.condition_number(res), "kappa_from_cg_matvecs": 0,
            "cg_iterations": int(res.iterations), "cg_converged": bool(res.converged),
            "predicted_with_b": with_b.iterations, "predicted_with_b_extrapolated":
            with_b.extrapolated, "predicted_random": free.iterations,
            "predicted_random_extrapolated": free.extrapolated,
            "sqrt_kappa_bound": math.ceil(0.5 * math.sqrt(ext.condition_number)
                                          * math.log(2 / rtol)),
            "slq_extremes": list(dens.extremes), "slq_measure": dens.measure,
            "seconds": time.perf_counter() - t0}
        log.info("A %s M=%s: kappa %.4g (free %.4g), CG %d its, predicted %s / %s", shape,
                 _name(M), ext.condition_number, out["rows"][_name(M)]["kappa_from_cg"],
                 res.iterations, with_b.iterations, free.iterations)
    return out, densities


def plot_a(densities: dict, res: dict, path) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (name, dens) in zip(axes.ravel(), densities.items(), strict=True):
        row = res["rows"][name]
        dens.plot(ax=ax, label=f"{dens.measure} measure")
        ax.set_title(f"M = {name}: kappa {row['kappa']:.3g}, CG {row['cg_iterations']} its",
                     fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"SLQ densities of M^-1 A, smoke tank {'x'.join(map(str, res['grid']))} "
                 f"({res['n_fluid']} unknowns)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- D: Sagun et al. on an MLP --------------------------------------------------------------
def blobs(n: int, d: int, k: int, seed: int, spread: float = 1.5, std: float = 1.0):
    """``n`` points of ``k`` Gaussian blobs in ``d`` dimensions (centres uniform in
    ``[-spread, spread]^d``, standard deviation ``std``), float64 tensors ``(X, y)``."""
    rng = np.random.default_rng([seed, k])
    centres = rng.uniform(-spread, spread, (k, d))
    y = rng.integers(0, k, n)
    X = centres[y] + std * rng.standard_normal((n, d))
    return torch.from_numpy(X), torch.from_numpy(y)


def mlp(d: int, width: int, k: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(d, width), torch.nn.Tanh(),
                               torch.nn.Linear(width, k)).double()


def train(model, X, y, steps: int, lr: float) -> dict:
    """Full-batch Adam on the mean cross-entropy; the final loss, gradient norm, accuracy."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(X), y)
    loss.backward()
    grad = torch.cat([p.grad.flatten() for p in model.parameters()])
    with torch.no_grad():
        acc = (model(X).argmax(1) == y).double().mean()
    return {"loss": float(loss.detach()), "grad_norm": float(grad.norm()),
            "train_accuracy": float(acc)}


def dense_hessian(model, X, y) -> np.ndarray:
    """The exact Hessian of the mean cross-entropy in all parameters (reverse over reverse)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    sizes = [p.numel() for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss(v):
        params = {n: c.view(s) for n, c, s in zip(names, v.split(sizes), shapes, strict=True)}
        out = torch.func.functional_call(model, params, (X,))
        return torch.nn.functional.cross_entropy(out, y)

    return torch.func.jacrev(torch.func.jacrev(loss))(flat).detach().numpy()


def hessian_summary(ev: np.ndarray, k: int) -> dict:
    """Bulk fraction, top ``k+3`` and the largest ratio of consecutive top ``2k`` (descending
    ``ev``)."""
    lmax = ev[0]
    top = ev[: 2 * k + 1]
    pos = top[1:] > 0
    ratios = np.where(pos, top[:-1] / np.where(pos, top[1:], 1.0), np.inf)
    i = int(np.argmax(ratios))
    return {"lambda_max": float(lmax), "lambda_min": float(ev[-1]),
            "bulk_fraction": float(np.mean(np.abs(ev) < 1e-3 * lmax)),
            "negative_fraction": float(np.mean(ev < -1e-3 * lmax)),
            "top": ev[: k + 3].tolist(), "largest_gap_after": i + 1,
            "largest_gap_ratio": float(ratios[i]), "gap_ratios": ratios.tolist(),
            "above_tenth_of_max": int(np.sum(ev > 0.1 * lmax))}


def study_d(widths=(10, 20, 40, 80), ks=(2, 5, 10), n: int = 1000, d: int = 10,
            steps: int = 2000, lr: float = 1e-2, seed: int = 0,
            lanczos_check: bool = True) -> tuple[dict, dict]:
    """Study D: every (width, k) pair; ``(numbers, eigenvalues)``."""
    out = {"n": n, "d": d, "steps": steps, "lr": lr, "optimizer": "full-batch Adam",
           "loss": "mean cross-entropy", "activation": "tanh", "runs": {}}
    spectra = {}
    for k in ks:
        X, y = blobs(n, d, k, seed)
        for width in widths:
            t0 = time.perf_counter()
            model = mlp(d, width, k, seed)
            info = train(model, X, y, steps, lr)
            ev = np.linalg.eigvalsh(dense_hessian(model, X, y))[::-1]
            key = f"w{width}-k{k}"
            row = {"width": width, "k": k, "parameters": int(ev.size), **info,
                   **hessian_summary(ev, k),
                   # softmax is invariant to adding one vector to every row of the last
                   # layer (weights and bias): width + 1 exact zero directions
                   "softmax_null_fraction": (width + 1) / ev.size}
            if lanczos_check:
                top = spectrum_top(model, X, y, k + 3, seed)
                row["lanczos_top"] = top.values.tolist()
                row["lanczos_vs_dense_rel_err"] = float(
                    np.max(np.abs(top.values - ev[: k + 3]) / abs(ev[0])))
                row["lanczos_hvps"] = int(top.n_products)
            row["seconds"] = time.perf_counter() - t0
            out["runs"][key], spectra[key] = row, ev
            log.info("D %s: P %d loss %.3g |g| %.2g bulk %.3f top %s gap %.2f after %d", key,
                     ev.size, info["loss"], info["grad_norm"], row["bulk_fraction"],
                     np.array2string(ev[:3], precision=3), row["largest_gap_ratio"],
                     row["largest_gap_after"])
    out["variation"] = variation(out["runs"], widths, ks)
    return out, spectra


def spectrum_top(model, X, y, k: int, seed: int):
    """Top ``k`` by the package's Lanczos (:func:`dcdm.spectrum.hessian_eigenvalues`)."""
    try:
        from dcdm.spectrum import hessian_eigenvalues
    except ImportError:  # pragma: no cover - not exported yet
        from dcdm.solvers.spectrum.hessian import hessian_eigenvalues
    return hessian_eigenvalues(model, torch.nn.functional.cross_entropy, X, y, k=k, seed=seed,
                               tol=1e-10)


def variation(runs: dict, widths, ks) -> dict:
    """How much ``lambda_max``, the mean of the top 3 and the number of eigenvalues above
    ``lambda_max / 10`` move across widths (fixed k) and across k (fixed width): max/min."""
    def ratio(vals):
        vals = np.asarray(vals)
        return float(vals.max() / vals.min()) if vals.min() > 0 else math.inf

    out = {}
    for what, f in (("lambda_max", lambda r: r["lambda_max"]),
                    ("top3_mean", lambda r: float(np.mean(r["top"][:3]))),
                    ("above_tenth_of_max", lambda r: r["above_tenth_of_max"])):
        out[what] = {
            "across_width": {str(k): ratio([f(runs[f"w{w}-k{k}"]) for w in widths])
                             for k in ks},
            "across_k": {str(w): ratio([f(runs[f"w{w}-k{k}"]) for k in ks]) for w in widths}}
    return out


def plot_d(res: dict, spectra: dict, widths, ks, path) -> None:
    import matplotlib.pyplot as plt

    runs = res["runs"]
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(15, 4.2))
    for k in ks:
        ax.plot(widths, [runs[f"w{w}-k{k}"]["bulk_fraction"] for w in widths], "o-",
                label=f"k = {k}")
    ax.set(xscale="log", xlabel="hidden width", ylabel="fraction |lambda| < 1e-3 lambda_max",
           title="bulk near zero vs width")
    ax.minorticks_off()
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.legend()
    styles = dict(zip(widths, ("-", "--", "-.", ":"), strict=False))
    for ci, k in enumerate(ks):
        for w in widths:
            top = runs[f"w{w}-k{k}"]["top"]
            bx.semilogy(range(1, len(top) + 1), top, styles.get(w, "-"), marker=".",
                        color=f"C{ci}", label=f"k={k}, w={w}")
    bx.set(xlabel="index i", ylabel="lambda_i", title="top k+3 eigenvalues (colour: k, "
           "line: width)")
    bx.legend(fontsize=6, ncol=2)
    k = ks[len(ks) // 2]
    for w in widths:
        ev = spectra[f"w{w}-k{k}"]
        mag = np.maximum(np.sort(np.abs(ev))[::-1] / ev[0], 1e-18)
        cx.semilogy(np.arange(ev.size) / ev.size, mag, label=f"w = {w}")
    cx.axhline(1e-3, color="k", lw=0.5, ls=":")
    cx.set(xlabel="index / P", ylabel="|lambda| / lambda_max",
           title=f"whole spectrum, k = {k} (|lambda| descending)")
    cx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- driver ---------------------------------------------------------------------------------
def jsonable(x):
    """NumPy scalars and arrays, complex numbers ([re, im]), inf/nan (None) made JSON-safe."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in x]
    if isinstance(x, (complex, np.complexfloating)):
        return [jsonable(float(x.real)), jsonable(float(x.imag))]
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


def run(out: Path, only=("a", "b", "c", "d"), n: int = 64, n3: int = 24, n_dense: int = 32,
        n_arnoldi: int = 64, n_loss: int = 32, widths=(10, 20, 40, 80), ks=(2, 5, 10),
        mlp_steps: int = 2000, seed: int = 0, plots: bool = True) -> dict:
    """Run the chosen studies, write ``spectra.json`` (and PNGs) into ``out``; return it."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    result = {"machine": f"{platform.processor() or platform.machine()}, "
              f"{platform.system()}, CPU only (2 cores, shared), torch "
              f"{torch.__version__}, one torch and one BLAS thread", "seed": seed,
              "dcdm_version": dcdm.__version__, "seconds": {}}
    with threadpool_limits(1):
        if "a" in only:
            t0 = time.perf_counter()
            result["A"] = {}
            for shape, obstacles in (((n, n), 8), ((n3,) * 3, 4)):
                if shape[0] == 0:
                    continue
                key = "x".join(map(str, shape))
                result["A"][key], dens = study_a(shape, obstacles, seed)
                if plots:
                    plot_a(dens, result["A"][key], out / f"a-slq-{key}.png")
            result["seconds"]["A"] = time.perf_counter() - t0
        if "b" in only:
            t0 = time.perf_counter()
            result["B"] = net_studies.study_b(n_dense, n_arnoldi, seed=seed)
            if plots:
                net_studies.plot_b(result["B"], out / "b-jacobian.png")
            raw = {f"{part}/{name}": row.pop("eigenvalues")
                   for part in ("residuals", "classical")
                   for name, row in result["B"]["dense"][part].items()}
            (out / "b-eigenvalues.json").write_text(json.dumps(jsonable(raw)) + "\n")
            result["seconds"]["B"] = time.perf_counter() - t0
        if "c" in only:
            t0 = time.perf_counter()
            result["C"], dens = net_studies.study_c(n_loss, seed=seed)
            if plots:
                net_studies.plot_c(dens, result["C"], out / "c-loss-hessian.png")
            result["seconds"]["C"] = time.perf_counter() - t0
        if "d" in only:
            t0 = time.perf_counter()
            result["D"], spectra = study_d(widths, ks, steps=mlp_steps, seed=seed)
            if plots:
                plot_d(result["D"], spectra, widths, ks, out / "d-sagun.png")
            result["seconds"]["D"] = time.perf_counter() - t0
    result = jsonable(result)
    (out / "spectra.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.spectra", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("docs/spectra"), help="output folder")
    p.add_argument("--only", nargs="+", choices="abcd", default=list("abcd"),
                   help="studies to run (default all)")
    p.add_argument("--n", type=int, default=64, help="A: 2-D grid side (default 64)")
    p.add_argument("--n3", type=int, default=24, help="A: 3-D grid side, 0 skips (default 24)")
    p.add_argument("--n-dense", type=int, default=32, help="B: grid of the dense Jacobians")
    p.add_argument("--n-arnoldi", type=int, default=64, help="B: Arnoldi grid, 0 skips")
    p.add_argument("--n-loss", type=int, default=32, help="C: grid of the loss batch")
    p.add_argument("--widths", type=int, nargs="+", default=[10, 20, 40, 80], help="D")
    p.add_argument("--classes", type=int, nargs="+", default=[2, 5, 10], help="D: k")
    p.add_argument("--mlp-steps", type=int, default=2000, help="D: Adam steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%X")
    t0 = time.perf_counter()
    res = run(args.out, tuple(args.only), args.n, args.n3, args.n_dense, args.n_arnoldi,
              args.n_loss, tuple(args.widths), tuple(args.classes), args.mlp_steps, args.seed,
              not args.no_plots)
    log.info("done in %.0f s (%s); wrote %s", time.perf_counter() - t0, res["seconds"],
             args.out / "spectra.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
