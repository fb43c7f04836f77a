"""Hard vs soft incompressibility for a CNN on smoke scenes (issue 15, item 5).

The task: from the pre-projection velocity ``u*`` of a 2-D smoke step (and the cell flags),
predict the step's projected, divergence-free velocity ``u``. Data: 2-D ``rising_smoke``
scenes at ``n = 32`` (a static slab and a sphere that sweeps through the plume, so the flags
change every step), seeded inflow noise, open top and closed box; held-out scenes use other
seeds and snapshots two steps later (flag grids unseen in training). ``u*`` is recovered
from the step's own pressure, to rounding (``u + (dt/rho) grad p`` on FLUID faces, the
solid's velocity on SOLID faces, OPEN faces zeroed).

The same small CNN (dilated 3x3 convolutions, seeded initialisation, Adam) is trained

- **hard**: network -> :class:`~dcdm.training.constraints.projection.ProjectionLayer` (CG with
  geometric multigrid through :func:`dcdm.training.sparse_solve`) -> MSE to the target;
- **soft**: network -> MSE + ``lambda * mean_FLUID((h div u)^2)`` for a few ``lambda``.

Both get the solid's velocity on SOLID faces (a plain assignment): the comparison is about
the divergence only. Losses and metrics use the FLUID faces (OPEN faces touch no FLUID
cell). Reported on the held-out scenes: relative L2 error, max and RMS divergence on FLUID
cells, seconds per training step (forward + backward + Adam step, median) and the CG
iterations of the projection (forward and adjoint).

Usage::

    python -m bench.projection_example [--steps 400] [--out docs/projection]

writes ``results.json`` and ``projection.png`` to ``--out`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from dcdm.problems import CellType
from dcdm.problems.smoke.scene import rising_smoke
from dcdm.problems.smoke.simulation import Simulation
from dcdm.problems.smoke.state import (
    FLUID_FACE,
    OPEN_FACE,
    SOLID_FACE,
    classify_faces,
    subtract_gradient,
)
from dcdm.training.constraints.projection import ProjectionLayer, divergence

log = logging.getLogger("bench.projection_example")

N = 32
TRAIN_SCENES = [(s, True) for s in range(6)] + [(6, False), (7, False)]  # (seed, open top)
TEST_SCENES = [(100, True), (101, True), (102, False)]
WARMUP, EVERY, SNAPSHOTS = 20, 4, 12
#: the held-out snapshots are taken 2 steps later: the sphere is elsewhere, new flag grids
TEST_OFFSET = 2
RTOL = 1e-10


# -- data ------------------------------------------------------------------------------------
def snapshots(seed: int, open_top: bool, offset: int = 0) -> list[dict]:
    """``SNAPSHOTS`` steps of one scene: flags, ``u*``, solid velocity and target ``u``."""
    sim = Simulation(rising_smoke(N, ndim=2, seed=seed, open_top=open_top, rtol=RTOL))
    sim.run(WARMUP - EVERY + offset)
    out = []
    for _ in range(SNAPSHOTS):
        sim.run(EVERY)
        s, rec, h = sim.state, sim.records[-1], sim.config.spacing
        faces = classify_faces(s.flags)
        target = [u.copy() for u in s.velocity]
        u_star = copy.deepcopy(target)
        subtract_gradient(u_star, s.pressure, faces, -rec.dt / (sim.config.rho * h))
        solid = [np.where(f == SOLID_FACE, u, 0.0) for f, u in zip(faces, target, strict=True)]
        for f, u in zip(faces, u_star, strict=True):
            u[f == OPEN_FACE] = 0.0
        out.append(dict(flags=s.flags.copy(), u_star=u_star, solid=solid, target=target,
                        fluid_faces=[f == FLUID_FACE for f in faces],
                        solid_faces=[f == SOLID_FACE for f in faces]))
    return out


def batch(samples: list[dict]) -> dict:
    """Stack samples into float64 tensors: velocities as component lists ``(B, faces)``."""
    def comps(key):
        return [torch.tensor(np.stack([s[key][a] for s in samples])) for a in range(2)]

    flags = np.stack([s["flags"] for s in samples])
    fluid = torch.from_numpy(flags == CellType.FLUID)
    channels = torch.stack([
        _canvas(comps("u_star")[0]), _canvas(comps("u_star")[1]),
        _canvas(fluid.double()), _canvas(torch.from_numpy(flags == CellType.SOLID).double()),
    ], dim=1)
    return dict(flags=flags, x=channels, u_star=comps("u_star"), solid=comps("solid"),
                target=comps("target"), fluid=fluid, fluid_faces=comps("fluid_faces"),
                solid_faces=comps("solid_faces"))


def _canvas(t: torch.Tensor) -> torch.Tensor:
    """A ``(B, n0 + a, n1 + b)`` field zero-padded to ``(B, n0 + 1, n1 + 1)``."""
    return torch.nn.functional.pad(t, (0, N + 1 - t.shape[2], 0, N + 1 - t.shape[1]))


# -- model -----------------------------------------------------------------------------------
def make_net(channels: int, seed: int) -> torch.nn.Module:
    """Dilated 3x3 CNN (dilations 1, 2, 4, 8, 1: receptive field 33x33 cells), float64."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Conv2d(4, channels, 3, padding=1), torch.nn.GELU()]
    for d in (2, 4, 8, 1):
        layers += [torch.nn.Conv2d(channels, channels, 3, padding=d, dilation=d), torch.nn.GELU()]
    layers.append(torch.nn.Conv2d(channels, 2, 1))
    return torch.nn.Sequential(*layers).double()


def predict(net, b: dict, layer: ProjectionLayer | None, clock: list | None = None
            ) -> list[torch.Tensor]:
    """Network output on the faces, the solid's velocity on SOLID faces, projected if hard
    (the projection's forward seconds appended to ``clock``)."""
    y = net(b["x"])
    u = [y[:, 0, :, :N], y[:, 1, :N, :]]
    if layer is not None:
        t0 = time.perf_counter()
        out = layer(u, b["flags"], b["solid"])
        if clock is not None:
            clock.append(time.perf_counter() - t0)
        return out
    return [torch.where(m, s, w) for m, s, w in zip(b["solid_faces"], b["solid"], u, strict=True)]


def losses(u, b: dict, h: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE on FLUID faces and ``mean_FLUID((h div u)^2)``."""
    err = sum(((w - t)[m] ** 2).sum() for w, t, m in zip(u, b["target"], b["fluid_faces"],
                                                          strict=True))
    mse = err / sum(int(m.sum()) for m in b["fluid_faces"])
    pen = ((h * divergence(u, h))[b["fluid"]] ** 2).mean()
    return mse, pen


def metrics(u, b: dict, h: float) -> dict:
    """Relative L2 error on FLUID faces, max and RMS divergence on FLUID cells (1/s)."""
    with torch.no_grad():
        num = sum(((w - t)[m] ** 2).sum() for w, t, m in zip(u, b["target"], b["fluid_faces"],
                                                              strict=True))
        den = sum((t[m] ** 2).sum() for t, m in zip(b["target"], b["fluid_faces"], strict=True))
        div = divergence(u, h)[b["fluid"]]
    return dict(rel_l2=float((num / den).sqrt()), max_div=float(div.abs().max()),
                rms_div=float(div.pow(2).mean().sqrt()))


# -- training --------------------------------------------------------------------------------
def train(name: str, lam: float | None, data: list[dict], test: dict, args) -> dict:
    """Train one model (``lam=None``: hard) and evaluate it on the held-out batch."""
    from tqdm.auto import tqdm

    h = 1.0 / N
    net = make_net(args.channels, args.seed)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    layer = ProjectionLayer(h, rtol=RTOL, cache_size=4096) if lam is None else None
    rng = np.random.default_rng(args.seed)
    history, times, proj_times, fwd_it, bwd_it, solves = [], [], [], 0, 0, 0
    for _ in tqdm(range(args.steps), desc=name, unit="step", leave=False):
        b = batch([data[i] for i in rng.choice(len(data), args.batch, replace=False)])
        t0 = time.perf_counter()
        it0 = layer.iterations if layer else 0
        u = predict(net, b, layer, proj_times)
        it1 = layer.iterations if layer else 0
        mse, pen = losses(u, b, h)
        loss = mse if lam is None else mse + lam * pen
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        times.append(time.perf_counter() - t0)
        if layer is not None:
            fwd_it, bwd_it = fwd_it + it1 - it0, bwd_it + layer.iterations - it1
            solves += args.batch
        history.append(float(mse.detach()))
    net.eval()
    with torch.no_grad():
        if layer is not None:
            layer.reset_counts()
        t0 = time.perf_counter()
        u = predict(net, test, layer)
        infer = time.perf_counter() - t0
    out = dict(name=name, constraint="hard" if lam is None else "soft", lam=lam,
               **metrics(u, test, h), step_time_median=float(np.median(times[5:])),
               step_time_mean=float(np.mean(times)),
               inference_time=infer, train_mse=history)
    if layer is not None:
        out.update(cg_forward_per_solve=fwd_it / solves, cg_adjoint_per_solve=bwd_it / solves,
                   cg_test_per_solve=layer.iterations / layer.solves,
                   projection_forward_median=float(np.median(proj_times[5:])),
                   grids_built=len(layer._cache))
    return out


def plot(results: list[dict], test: dict, path: Path, args) -> None:
    """Training curves, and the error/divergence trade-off on the held-out scenes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    color = {r["name"]: f"C{i}" for i, r in enumerate(results)}
    for r in results:
        if r.get("train_mse"):
            k = max(1, len(r["train_mse"]) // 50)
            smooth = np.convolve(r["train_mse"], np.ones(k) / k, mode="valid")
            ax0.semilogy(np.arange(len(smooth)) + k, smooth, label=r["name"],
                         color=color[r["name"]])
    ax0.set(xlabel="training step", ylabel="MSE on FLUID faces (moving mean)",
            title="training loss (data term)")
    ax0.legend()
    for r in results:
        if r["rel_l2"] < 1e-6:
            continue  # the exact projection of u* and the target itself: off the scale
        ax1.semilogx(r["rms_div"], r["rel_l2"], "o", color=color[r["name"]])
        ax1.annotate(r["name"], (r["rms_div"], r["rel_l2"]), fontsize=8, rotation=20,
                     xytext=(5, 3), textcoords="offset points")
    ax1.set_ylim(0, 1.15 * max(r["rel_l2"] for r in results))
    ax1.set_xlim(right=30)
    ax1.set(xlabel="RMS divergence on FLUID cells (1/s)", ylabel="relative L2 error",
            title=f"held-out scenes ({len(TEST_SCENES)} scenes, {test['x'].shape[0]} snapshots)")
    ax1.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--lambdas", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("docs/projection"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    train_data = [s for seed, top in TRAIN_SCENES for s in snapshots(seed, top)]
    test_samples = [s for seed, top in TEST_SCENES for s in snapshots(seed, top, TEST_OFFSET)]
    test = batch(test_samples)
    h = 1.0 / N
    log.info("data: %d training and %d held-out snapshots (%.1f s)", len(train_data),
             len(test_samples), time.perf_counter() - t_start)
    reference = [dict(name="input u* (no network)", constraint="-", lam=None,
                      **metrics(test["u_star"], test, h))]
    check = ProjectionLayer(h, rtol=RTOL)
    reference.append(dict(name="layer(u*) (no network)", constraint="hard", lam=None,
                          **metrics(check(test["u_star"], test["flags"], test["solid"]), test, h),
                          cg_test_per_solve=check.iterations / check.solves))
    reference.append(dict(name="target (simulation)", constraint="-", lam=None,
                          **metrics(test["target"], test, h)))
    runs = [train("hard", None, train_data, test, args)]
    runs += [train(f"soft lambda={lam:g}", lam, train_data, test, args) for lam in args.lambdas]
    results = reference + runs
    seen = {s["flags"].tobytes() for s in train_data}
    test_grids = {s["flags"].tobytes() for s in test_samples}
    args.out.mkdir(parents=True, exist_ok=True)
    meta = dict(machine=f"{_cpu()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
                        "thread(s)",
                torch=torch.__version__, n=N, train_snapshots=len(train_data),
                test_snapshots=len(test_samples), train_scenes=TRAIN_SCENES,
                test_scenes=TEST_SCENES, test_offset=TEST_OFFSET, rtol=RTOL,
                distinct_train_grids=len(seen), distinct_test_grids=len(test_grids),
                test_grids_seen_in_training=len(test_grids & seen),
                parameters=sum(p.numel() for p in make_net(args.channels, 0).parameters()),
                args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                total_time=time.perf_counter() - t_start)
    (args.out / "results.json").write_text(json.dumps(dict(meta=meta, results=results),
                                                      indent=1))
    plot(results, test, args.out / "projection.png", args)
    print(table(results))
    log.info("total %.1f s", meta["total_time"])
    return dict(meta=meta, results=results)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(results: list[dict]) -> str:
    """The Markdown table of the write-up."""
    rows = ["| model | rel. L2 error | max div (1/s) | RMS div (1/s) | s / train step | "
            "CG its / solve (fwd, adjoint) |", "|---|---|---|---|---|---|"]
    for r in results:
        step = f"{r['step_time_median']:.3f}" if "step_time_median" in r else "-"
        cg = "-"
        if "cg_forward_per_solve" in r:
            cg = f"{r['cg_forward_per_solve']:.1f}, {r['cg_adjoint_per_solve']:.1f}"
        elif "cg_test_per_solve" in r:
            cg = f"{r['cg_test_per_solve']:.1f}, -"
        rows.append(f"| {r['name']} | {r['rel_l2']:.3g} | {r['max_div']:.3g} | "
                    f"{r['rms_div']:.3g} | {step} | {cg} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
