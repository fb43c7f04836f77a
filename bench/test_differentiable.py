"""Differentiable solves: ``sparse_solve`` forward vs backward, and the hard-constraint layers.

- ``sparse_solve`` on the 3-D smoke tank (8 obstacles, seed 0; the grid operator, ``M="mg"``,
  rtol 1e-8) at 32^3 and 64^3 (16^3 with ``--bench-smoke``), ``k = 1`` and ``k = 4``
  right-hand sides: the forward pass (multigrid set-up + CG per column) and the backward pass
  alone (the adjoint CG per column, the multigrid reused, warm-started), with the CG
  iterations of each. Issue 15's target: backward <= 1.2x forward at 64^3.
- The diffusion-sorption hard-constraint layer (51 x 256 grid, an untrained seeded FNO with
  N = 16 basis functions, batch 4): forward and forward + backward against the total number
  of sampled points (1e2, 1e3, 1e4), one global solve (K = 1, PI-HC) vs four experts
  (K = 4, PI-HC-MoE) at equal total points.
"""

from __future__ import annotations

import numpy as np
import pytest

from dcdm.problems import scenes
from dcdm.solvers import make_preconditioner

from .conftest import RATIOS, is_smoke, record
from .conftest import cpu_only as _cpu_only

torch = pytest.importorskip("torch")

RTOL = 1e-8


def pytest_generate_tests(metafunc):
    smoke = is_smoke(metafunc.config)
    if "solve_case" in metafunc.fixturenames:
        sizes = [16] if smoke else [32, 64]
        metafunc.parametrize("solve_case", [
            pytest.param((n, k, phase), id=f"sparse-solve-{n}-k{k}-{phase}")
            for n in sizes for k in (1, 4) for phase in ("forward", "backward")])
    if "layer_case" in metafunc.fixturenames:
        totals = [100] if smoke else [100, 1000, 10000]
        metafunc.parametrize("layer_case", [
            pytest.param((m, k, pass_), id=f"hard-constraint-m{m}-K{k}-{pass_}")
            for m in totals for k in (1, 4) for pass_ in ("forward", "forward+backward")])


class _Counting:
    """Counts the applications of a built preconditioner (one per CG iteration, plus one)."""

    def __init__(self, P):
        self.P, self.count = P, 0
        inner = P.apply

        def apply(r, out=None):
            self.count += 1
            return inner(r, out)

        P.apply = apply


_CACHE: dict = {}


def _tank(n: int):
    if _CACHE.get("n") != n:
        grid = scenes.smoke((n,) * 3, obstacles=8, seed=0)
        _CACHE.clear()
        _CACHE.update(n=n, grid=grid, A=grid.laplacian())
    return _CACHE["grid"], _CACHE["A"]


def test_sparse_solve(benchmark, bench_device, solve_case):
    from dcdm.training import sparse_solve

    _cpu_only(bench_device)
    n, k, phase = solve_case
    grid, A = _tank(n)
    rng = np.random.default_rng(0)
    shape = (A.shape[0],) if k == 1 else (A.shape[0], k)
    fluid = grid.fluid.reshape(-1).astype(float)
    b = torch.from_numpy(rng.standard_normal(shape) * (fluid if k == 1 else fluid[:, None]))
    g = torch.from_numpy(rng.standard_normal(shape))  # a generic incoming gradient
    sparse_solve(A, b, M="mg", rtol=RTOL)  # JIT of the kernels, untimed
    counter = {}

    def forward():
        P = make_preconditioner("mg", A)
        counter["P"] = _Counting(P)
        x = sparse_solve(A, b.clone().requires_grad_(), M=P, rtol=RTOL)
        counter["forward"] = counter["P"].count
        return x

    if phase == "forward":
        benchmark.pedantic(forward, rounds=3, iterations=1)
    else:
        def setup():
            return (forward(),), {}

        def backward(x):
            x.backward(g)
            counter["backward"] = counter["P"].count - counter["forward"]

        benchmark.pedantic(backward, setup=setup, rounds=3, iterations=1)
    applications = counter[phase]
    key = f"sparse-solve-smoke3d-{n}-k{k}-{phase}"
    record(benchmark, key, kind="differentiable", method="sparse_solve", preconditioner="mg",
           problem="smoke", dim=3, n=n, dtype="float64", iterations=applications - k,
           phase=phase, columns=k)
    if phase == "backward":
        RATIOS[f"sparse_solve backward / forward {n}^3 k={k}"] = (
            key, key.replace("backward", "forward"), 1.0, "time ratio (target <= 1.2 at 64^3)")


def test_hard_constraint_layer(benchmark, bench_device, layer_case):
    from dcdm.training.constraints.fno import FNO2d
    from dcdm.training.constraints.layer import HardConstraint, Partition
    from dcdm.training.constraints.sorption import SorptionConstraint, grid_residual

    _cpu_only(bench_device)
    total, K, pass_ = layer_case
    torch.manual_seed(0)
    nt, nx, B = 51, 256, 4
    net = FNO2d(3, 16, width=32, modes=(12, 12), layers=4)
    x = (torch.arange(nx) + 0.5) / nx
    u0 = torch.stack([0.05 + 0.1 * torch.cos(torch.pi * (i + 1) * x) ** 2 for i in range(B)])
    inputs = torch.stack([u0.float()[:, None, :].expand(B, nt, nx),
                          torch.linspace(0, 1, nt)[None, :, None].expand(B, nt, nx),
                          x[None, None, :].expand(B, nt, nx)], dim=1)
    layer = HardConstraint(SorptionConstraint(), total // K, partition=Partition((1, K)),
                           generator=torch.Generator().manual_seed(0))
    u0 = u0.double()
    out = {}

    def run():
        if pass_ == "forward":
            with torch.no_grad():
                _, info = layer(net(inputs).double(), u0)
        else:
            net.zero_grad()
            _, info = layer(net(inputs).double(), u0)
            labels = layer.partition.labels((nt, nx))  # each row from its cell's expert
            grid_residual(info["fields"], u0, labels=labels).norm(dim=1).mean().backward()
        out["converged"] = int(info["converged"].sum())

    run()  # warm-up (torch.func tracing)
    benchmark.pedantic(run, rounds=3, iterations=1)
    key = f"hard-constraint-ds-m{total}-K{K}-{pass_}"
    record(benchmark, key, kind="differentiable", method=f"PI-HC K={K}", problem="diffusion-"
           "sorption", dim=2, n=nx, dtype="float64", phase=pass_, points=total, experts=K,
           lm_converged=out["converged"], lm_problems=B * K)
    if K == 4:
        RATIOS[f"hard constraint {pass_} K=1 / K=4, {total} points"] = (
            key.replace("K4", "K1"), key, 1.0, "MoE speed-up (> 1: MoE faster)")
