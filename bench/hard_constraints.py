"""The paper's 1-D diffusion-sorption experiment at CPU scale: soft vs PI-HC vs PI-HC-MoE.

Chalapathi, Du, Krishnapriyan, ICLR 2024 (arXiv 2402.13412), Table 1 and Figure 4 (diffusion-
sorption). Everything is generated here: initial conditions and reference trajectories by the
finite-volume solver of :mod:`dcdm.training.constraints.diffusion_sorption` on ``nt x nx`` =
51 x 256; an FNO maps the initial condition (with the ``t`` and ``x`` coordinates) to

- ``soft``: ``u`` itself, trained on the residual norm (physics-informed soft constraint, PI-SC);
- ``hc``: ``N`` basis functions, combined by one Levenberg-Marquardt fit of the PDE at ``m``
  sampled points plus the initial/boundary rows (PI-HC);
- ``moe``: the same, one fit per expert over a (1 x K) partition along ``x`` (PI-HC-MoE).

All three minimise the same loss, the mean over the batch of the 2-norm of every residual row
on the whole grid (:func:`~dcdm.training.constraints.sorption.grid_residual`; no solution data,
as in the paper). The test metric is the relative L2 error against the reference trajectory.
The speed sweep times forward and forward + backward of the constrained model against the total
number of sampled points, K = 1 vs K = 4 experts at equal total points.

Usage (one command; about 35 min on 2 cores with the defaults)::

    python -m bench.hard_constraints --out docs/hard_constraints

writes ``results.json`` and the plots into ``--out``, the data set and the trained weights
(safetensors; reused by ``--resume``) into ``--cache``, and prints the Markdown tables of
``docs/HARD_CONSTRAINTS.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dcdm.training.constraints.diffusion_sorption import load_or_make_dataset
from dcdm.training.constraints.fno import FNO2d
from dcdm.training.constraints.layer import HardConstraint, Partition
from dcdm.training.constraints.sorption import SorptionConstraint, grid_residual

KINDS = ("soft", "hc", "moe", "hc-w1")


class Model(nn.Module):
    """FNO (float32) -> ``u`` (soft) or basis -> hard-constraint layer (float64)."""

    def __init__(self, kind: str, *, basis: int = 16, experts: int = 4, points: int = 1000,
                 width: int = 32, modes: tuple[int, int] = (12, 12), layers: int = 4,
                 tol: float = 1e-6, maxiter: int = 50, seed: int = 0, weight: float = 1.0):
        super().__init__()
        self.kind = kind
        if kind == "hc-w1":  # the ablation: PI-HC with the paper's unweighted rows
            kind, weight = "hc", 1.0
        self.fno = FNO2d(3, 1 if kind == "soft" else basis, width=width, modes=modes,
                         layers=layers)
        self.constraint = None
        if kind != "soft":
            k = experts if kind == "moe" else 1
            self.constraint = HardConstraint(
                SorptionConstraint(weight=weight), points, partition=Partition((1, k)), tol=tol,
                maxiter=maxiter, generator=torch.Generator().manual_seed(seed))

        self.weight = weight

    def forward(self, u0: torch.Tensor, nt: int) -> tuple[torch.Tensor, dict]:
        out = self.fno(inputs(u0, nt)).double()
        if self.constraint is None:
            return out[:, 0], {}
        return self.constraint(out, u0)


def inputs(u0: torch.Tensor, nt: int) -> torch.Tensor:
    """``(B, nx)`` initial conditions -> ``(B, 3, nt, nx)``: ``u0``, ``t / T``, ``x`` channels."""
    B, nx = u0.shape
    t = torch.linspace(0, 1, nt)[None, :, None].expand(B, nt, nx)
    x = ((torch.arange(nx) + 0.5) / nx)[None, None, :].expand(B, nt, nx)
    return torch.stack([u0.float()[:, None, :].expand(B, nt, nx), t, x], dim=1)


def residual_of(model: Model, u: torch.Tensor, info: dict, u0: torch.Tensor,
                weight: float = 1.0) -> torch.Tensor:
    """Every row on the grid; with experts, each row of its cell's expert (the paper's code)."""
    c = model.constraint
    if c is None or c.partition.experts == 1:
        return grid_residual(u, u0, weight)
    return grid_residual(info["fields"], u0, weight, c.partition.labels(tuple(u.shape[1:])))


def loss_of(model: Model, u: torch.Tensor, info: dict, u0: torch.Tensor) -> torch.Tensor:
    return residual_of(model, u, info, u0, model.weight).norm(dim=1).mean()


def relative_l2(u: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return (u - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)


def train(model: Model, u0: torch.Tensor, *, steps: int, batch: int, lr: float, seed: int,
          nt: int) -> dict:
    """Adam, staircase decay x0.5 every steps/5, gradient clipping at 1 (the paper's DS set-up)."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, steps // 5), gamma=0.5)
    losses, times, unconverged = [], [], 0
    bar = tqdm(range(steps), desc=f"train {model.kind}", leave=False)
    for _ in bar:
        idx = torch.randperm(u0.shape[0], generator=gen)[:batch]
        start = time.perf_counter()
        u, info = model(u0[idx], nt)
        loss = loss_of(model, u, info, u0[idx])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        times.append(time.perf_counter() - start)
        losses.append(float(loss.detach()))
        if "converged" in info:
            unconverged += int((~info["converged"]).sum())
        bar.set_postfix(loss=f"{losses[-1]:.3g}")
    return {"loss": losses, "step_time_median": float(np.median(times)),
            "lm_unconverged": unconverged}


@torch.no_grad()
def evaluate(model: Model, u0: torch.Tensor, ref: torch.Tensor, *, batch: int, nt: int) -> dict:
    errors, residuals, times, unconverged = [], [], [], 0
    for i in range(0, u0.shape[0], batch):
        start = time.perf_counter()
        u, info = model(u0[i:i + batch], nt)
        times.append(time.perf_counter() - start)
        errors.append(relative_l2(u, ref[i:i + batch]))
        residuals.append(residual_of(model, u, info, u0[i:i + batch]).norm(dim=1))
        if "converged" in info:
            unconverged += int((~info["converged"]).sum())
    err = torch.cat(errors).numpy()
    return {"rel_l2_mean": float(err.mean()), "rel_l2_std": float(err.std()),
            "rel_l2": err.tolist(), "residual_mean": float(torch.cat(residuals).mean()),
            "infer_time_median": float(np.median(times)), "lm_unconverged": unconverged}


def speed(model: Model, u0: torch.Tensor, totals, experts=(1, 4), *, batch: int, nt: int,
          repeats: int = 3) -> list[dict]:
    """Forward and forward + backward time of the constrained model at equal total points."""
    rows = []
    x = u0[:batch]
    kept = model.constraint.partition, model.constraint.points
    for total in totals:
        for k in experts:
            model.constraint.partition = Partition((1, k))
            model.constraint.points = max(1, total // k)
            fwd, both = [], []
            for _ in range(repeats):
                model.zero_grad()
                start = time.perf_counter()
                with torch.no_grad():
                    model(x, nt)
                fwd.append(time.perf_counter() - start)
                start = time.perf_counter()
                u, info = model(x, nt)
                loss_of(model, u, info, x).backward()
                both.append(time.perf_counter() - start)
            rows.append({"points": total, "experts": k, "forward": float(np.median(fwd)),
                         "forward_backward": float(np.median(both))})
    model.constraint.partition, model.constraint.points = kept
    return rows


def _save(model: Model, path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


def _load(model: Model, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/hard_constraints"),
                   help="results.json and the plots")
    p.add_argument("--cache", type=Path, default=Path("out/hard_constraints"),
                   help="the data set and the trained weights (tens of MB; --resume reads them)")
    p.add_argument("--train", type=int, default=256, help="training initial conditions")
    p.add_argument("--test", type=int, default=64, help="held-out initial conditions")
    p.add_argument("--nx", type=int, default=256)
    p.add_argument("--nt", type=int, default=51)
    p.add_argument("--blend", type=float, default=0.1,
                   help="initial conditions blended into the boundary values over this width")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--basis", type=int, default=16)
    p.add_argument("--experts", type=int, default=4)
    p.add_argument("--points", type=int, default=1000, help="sampled points per expert")
    p.add_argument("--sweep", type=int, nargs="*", default=[100, 300, 1000, 3000, 10000])
    p.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    p.add_argument("--weight", type=float, default=10.0,
                   help="weight of the initial/boundary rows (LM and loss) against the PDE rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="reuse trained weights in --out")
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    a.out.mkdir(parents=True, exist_ok=True)
    a.cache.mkdir(parents=True, exist_ok=True)
    data = load_or_make_dataset(a.cache / "data.npz", a.train + a.test, nx=a.nx, nt=a.nt,
                                seed=a.seed, blend=a.blend, progress=True)
    u0 = torch.from_numpy(data["u0"])
    ref = torch.from_numpy(data["u"])
    train_u0, test_u0, test_ref = u0[:a.train], u0[a.train:], ref[a.train:]
    results = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
               "machine": f"{platform.processor() or platform.machine()}, "
                          f"{torch.get_num_threads()} threads, torch {torch.__version__}",
               "models": {}}
    models = {}
    for kind in a.kinds:
        model = Model(kind, basis=a.basis, experts=a.experts, points=a.points, seed=a.seed,
                      weight=a.weight)
        weights = a.cache / f"{kind}.safetensors"
        record = {}
        if a.resume and weights.exists():
            _load(model, weights)
            old = a.out / "results.json"
            if old.exists():
                record = json.loads(old.read_text())["models"].get(kind, {}).get("train", {})
        else:
            record = train(model, train_u0, steps=a.steps, batch=a.batch, lr=a.lr,
                           seed=a.seed, nt=a.nt)
            _save(model, weights)
        results["models"][kind] = {"train": record,
                                   "test": evaluate(model, test_u0, test_ref, batch=a.batch,
                                                    nt=a.nt)}
        models[kind] = model
        print(kind, {k: v for k, v in results["models"][kind]["test"].items() if k != "rel_l2"})
    if "hc" in models and a.sweep:
        results["speed"] = speed(models["hc"], test_u0, a.sweep, (1, a.experts),
                                 batch=a.batch, nt=a.nt)
    (a.out / "results.json").write_text(json.dumps(results, indent=1))
    _plots(results, models, test_u0, test_ref, a)
    print(markdown(results))
    return results


def markdown(results: dict) -> str:
    weight = results["args"]["weight"]
    names = {"soft": f"soft constraint (PI-SC), weight {weight:g}",
             "hc": f"PI-HC, weight {weight:g}", "moe": f"PI-HC-MoE, weight {weight:g}",
             "hc-w1": "PI-HC, weight 1 (the paper's rows)"}
    lines = ["| model | relative L2 (test) | residual norm (test) | train step (median) | "
             "inference per batch (median) | LM solves not converged (train / test) |",
             "|---|---|---|---|---|---|"]
    for kind, r in results["models"].items():
        t, e = r["train"], r["test"]
        unconv = ("-" if kind == "soft" else
                  f"{t.get('lm_unconverged', '?')} / {e['lm_unconverged']}")
        step = f"{t['step_time_median']:.3f} s" if "step_time_median" in t else "-"
        lines.append(f"| {names[kind]} | {100 * e['rel_l2_mean']:.2f}% +- "
                     f"{100 * e['rel_l2_std']:.2f}% | {e['residual_mean']:.3g} | {step} | "
                     f"{e['infer_time_median']:.3f} s | {unconv} |")
    if "speed" in results:
        lines += ["", "| sampled points (total) | forward K=1 | forward K=4 | speed-up | "
                  "fwd+bwd K=1 | fwd+bwd K=4 | speed-up |", "|---|---|---|---|---|---|---|"]
        by = {(r["points"], r["experts"]): r for r in results["speed"]}
        for total in sorted({r["points"] for r in results["speed"]}):
            one, moe = by.get((total, 1)), [r for (m, k), r in by.items() if m == total and k > 1]
            if one is None or not moe:
                continue
            moe = moe[0]
            lines.append(f"| {total} | {one['forward']:.3f} s | {moe['forward']:.3f} s | "
                         f"{one['forward'] / moe['forward']:.2f}x | "
                         f"{one['forward_backward']:.3f} s | {moe['forward_backward']:.3f} s | "
                         f"{one['forward_backward'] / moe['forward_backward']:.2f}x |")
    return "\n".join(lines)


def _plots(results, models, test_u0, test_ref, a) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for kind, r in results["models"].items():
        if r["train"].get("loss"):
            ax.semilogy(r["train"]["loss"], label=kind, lw=0.8)
    ax.set(xlabel="step", ylabel="residual norm (batch mean)", title="training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out / "loss.png", dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(3.2 * (len(models) + 1), 3),
                             sharey=True)
    with torch.no_grad():
        fields = {k: m(test_u0[:1], a.nt)[0][0].numpy() for k, m in models.items()}
    panels = [("reference", test_ref[0].numpy()), *fields.items()]
    for ax, (name, f) in zip(axes, panels, strict=True):
        im = ax.imshow(f, aspect="auto", origin="lower", extent=(0, 1, 0, 500), vmin=0, vmax=1)
        ax.set(title=name, xlabel="x")
    axes[0].set_ylabel("t")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(a.out / "solutions.png", dpi=120)
    plt.close(fig)
    if "speed" in results:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for k in sorted({r["experts"] for r in results["speed"]}):
            rows = [r for r in results["speed"] if r["experts"] == k]
            ax.loglog([r["points"] for r in rows], [r["forward_backward"] for r in rows], "o-",
                      label=f"K={k} fwd+bwd")
            ax.loglog([r["points"] for r in rows], [r["forward"] for r in rows], "s--",
                      label=f"K={k} fwd")
        ax.set(xlabel="sampled points (total)", ylabel="seconds per batch")
        ax.legend()
        fig.tight_layout()
        fig.savefig(a.out / "speed.png", dpi=120)
        plt.close(fig)


if __name__ == "__main__":
    main()
