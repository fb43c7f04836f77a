"""Training right-hand sides: Ritz-vector mixtures, random fields and solver residuals.

Three sources, per training scene (a smoke tank with random obstacles):

``ritz``
    The paper's data (official ``datasetcreate.py``): ``m`` steps of Lanczos with
    full re-orthogonalisation (:func:`dcdm.solvers.spectrum.lanczos.lanczos`, re-exported
    here) on the FLUID-supported operator, started from
    ``A @ randn`` (in the range of ``A``), Ritz pairs from the tridiagonal
    matrix; each sample is ``sum_j c_j v_j`` with ``c_j ~ 9 N(0,1)`` for the
    lowest ``m/2 + theta`` Ritz values and ``c_j ~ N(0,1)`` for the rest,
    normalised to unit length. Ritz values below ``1e-8 * max`` (a null space)
    are dropped.
``random`` / ``smooth``
    White noise and low-frequency cosine fields (:mod:`dcdm.problems.rhs`).
``residual``
    What the solver meets: residuals ``b - A x_k`` of a few CG and MG-PCG
    iterations (``x_k`` from the solvers' ``callback``) on random and smooth
    ``b``, normalised.

The calibration in ``reference/dcdm.md`` found nets trained on Ritz data only
stall; random fields and residuals are the default bulk of the mix.

The energy loss (:mod:`dcdm.training.loss`) also needs every sample's solution
``e = A^{-1} b``: :func:`solve_samples` computes them with MG-PCG to rtol 1e-8.

Memory (float64 Lanczos basis of one scene at a time + the float32 samples and,
for the energy loss, their solutions)::

    bytes ~= m * n_fluid * 8 + samples * n * 4 * (2 if solutions else 1)

with ``n`` the grid's cells. :func:`check_memory` refuses (``ValueError``) above
``max_bytes`` (8 GiB by default) before anything is allocated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dcdm.kernels.optional import maybe, require
from dcdm.problems import Grid, rhs, scenes
from dcdm.solvers.spectrum.lanczos import DEFAULT_MAX_BYTES, LanczosBasis, lanczos

from .config import DataMix

if TYPE_CHECKING:  # torch is imported lazily (only build_dataset needs it)
    import torch

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DataMix",
    "Dataset",
    "LanczosBasis",
    "SceneSplit",
    "build_dataset",
    "check_memory",
    "estimate_bytes",
    "lanczos",
    "make_scenes",
    "random_rhs",
    "ritz_rhs",
    "solve_residuals",
    "solve_samples",
]


def estimate_bytes(n: int, m: int, samples: int, n_fluid: int | None = None,
                   solutions: bool = False) -> int:
    """``m * n_fluid * 8 + samples * n * 4 * (2 if solutions else 1)``: peak bytes of
    :func:`build_dataset`."""
    per_sample = int(n) * 4 * (2 if solutions else 1)
    return int(m) * int(n if n_fluid is None else n_fluid) * 8 + int(samples) * per_sample


def check_memory(n: int, m: int, samples: int, max_bytes: int = DEFAULT_MAX_BYTES,
                 n_fluid: int | None = None, solutions: bool = False) -> int:
    """Return :func:`estimate_bytes`; ``ValueError`` if it exceeds ``max_bytes``.

    Examples
    --------
    >>> check_memory(64 * 64, 400, 1000)
    29491200
    >>> check_memory(128**3, 10_000, 20_000)
    Traceback (most recent call last):
    ...
    ValueError: training data would need 312.5 GiB (m * n * 8 + samples * n * 4 ...
    """
    need = estimate_bytes(n, m, samples, n_fluid, solutions)
    if need > max_bytes:
        sol = " * 2" if solutions else ""
        raise ValueError(
            f"training data would need {need / 2**30:.1f} GiB (m * n * 8 + samples * n * 4{sol} "
            f"with m={m}, n={n}, samples={samples}), above max_bytes = {max_bytes / 2**30:.1f} "
            "GiB; lower the Lanczos steps m, the sample counts or the grid size"
        )
    return need


# -- Ritz vectors (the Lanczos basis comes from dcdm.solvers.spectrum.lanczos) -----------------
def ritz_rhs(basis: LanczosBasis, count: int, theta: int, rng: np.random.Generator,
             dtype=np.float32, chunk: int = 256) -> np.ndarray:
    """``count`` unit-norm mixtures of Ritz vectors with the paper's theta weighting.

    Returns full-length vectors ``(count, n)`` (zero off the support).
    """
    vals, W = basis.ritz()
    keep = vals > 1e-8 * max(float(vals.max()), 1e-300)
    W = W[:, keep]
    mk = W.shape[1]
    cut = min(mk // 2 + int(theta), mk)
    out = np.zeros((count, basis.support.size), dtype=dtype)
    for s in range(0, count, chunk):
        c = rng.standard_normal((min(chunk, count - s), mk))
        c[:, :cut] *= 9.0
        # b = sum_j c_j (W^T Q)_j = (c W^T) Q: never forms the m x n Ritz vectors
        b = (c @ W.T) @ basis.Q
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        out[s:s + len(b), basis.support] = b
    return out


# -- other sources ------------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    nrm = np.linalg.norm(v)
    return v / nrm if nrm > 0 else v


def random_rhs(grid: Grid, count: int, rng: np.random.Generator, kind: str = "random",
               dtype=np.float32) -> np.ndarray:
    """``count`` unit-norm white-noise (``kind="random"``) or smooth fields ``(count, n)``."""
    out = np.zeros((count, grid.size), dtype=dtype)
    for i in range(count):
        seed = int(rng.integers(2**63))
        if kind == "random":
            v = rhs.random(grid, seed=seed)
        elif kind == "smooth":
            v = rhs.smooth(grid, seed=seed, modes=int(rng.integers(2, 9)))
        else:
            raise ValueError(f"kind must be 'random' or 'smooth', got {kind!r}")
        out[i] = _unit(v)
    return out


def solve_residuals(grid: Grid, count: int, rng: np.random.Generator,
                    methods: Sequence[str] = ("cg", "mg"),
                    iterations: Sequence[int] | None = None, dtype=np.float32) -> np.ndarray:
    """``count`` unit-norm residuals of CG (``"cg"``) and MG-PCG (``"mg"``) solves.

    Each solve starts from a random or a smooth ``b`` (alternating) and keeps the
    residuals ``b - A x_k`` after the iterations in ``iterations`` (default
    ``1, 2, 4, 8, ...`` up to about ``n**(1/ndim) * 2`` for CG, ``1, 2, 3`` for MG-PCG).
    """
    from dcdm.solvers import cg

    A = grid.laplacian()
    side = round(grid.size ** (1.0 / grid.ndim))
    default = {"cg": tuple(2**k for k in range(int(math.log2(max(2 * side, 2))) + 1)),
               "mg": (1, 2, 3)}
    for m in methods:
        if m not in default:
            raise ValueError(f"residual methods must be 'cg' or 'mg', got {m!r}")
    out = np.zeros((count, grid.size), dtype=dtype)
    quotas = [count // len(methods) + (k < count % len(methods)) for k in range(len(methods))]
    i = 0
    for method, quota in zip(methods, quotas, strict=True):
        its = sorted(set(iterations or default[method]))
        got = solve = 0
        while got < quota:
            kind = "random" if solve % 2 == 0 else "smooth"
            b = random_rhs(grid, 1, rng, kind, dtype=np.float64)[0]
            kept: list[np.ndarray] = []
            step = [0]

            def keep(xk, b=b, its=its, kept=kept, step=step):
                step[0] += 1
                if step[0] in its:
                    kept.append(_unit(b - A.matvec(xk)))

            cg(A, b, M="mg" if method == "mg" else None, rtol=1e-14, maxiter=its[-1],
               callback=keep)
            for r in kept[: quota - got]:
                out[i] = r
                i += 1
                got += 1
            solve += 1
            if not kept and solve > 4:
                raise ValueError(
                    f"{method} solves converge before iteration {its[0]}: no residuals to keep"
                )
    return out


def solve_samples(grid: Grid, b: np.ndarray, rtol: float = 1e-8,
                  dtype=np.float32) -> np.ndarray:
    """Solutions ``e = A^{-1} b`` of the rows of ``b`` (``(count, n)``) by MG-PCG.

    A closed region's constant null space is projected out of ``b`` by the
    solver, so ``e`` is the minimum-norm-in-that-region solution; ``e . b`` is
    ``||e||_A^2`` either way.
    """
    from dcdm.solvers import cg

    A = grid.laplacian()
    out = np.zeros(b.shape, dtype=dtype)
    for i, bi in enumerate(b):
        res = cg(A, bi.astype(np.float64), M="mg", rtol=rtol, maxiter=200)
        if not res.converged:
            raise RuntimeError(f"MG-PCG did not reach rtol={rtol} on training sample {i} "
                               f"({res.reason}); cannot form the energy-loss solution")
        out[i] = res.x
    return out


# -- scenes and the dataset ----------------------------------------------------------------
@dataclass(frozen=True)
class SceneSplit:
    """Training and validation scenes (disjoint seeds, distinct flags)."""

    train: tuple[Grid, ...]
    validation: tuple[Grid, ...]
    train_seeds: tuple[int, ...]
    validation_seeds: tuple[int, ...]


def make_scenes(shape: Sequence[int], n_train: int, n_validation: int,
                obstacles: tuple[int, int] = (2, 10), seed: int = 0) -> SceneSplit:
    """Seeded smoke tanks: ``n_train`` for training, ``n_validation`` held out.

    Scene seeds are drawn without replacement, so no validation scene shares a
    seed with a training scene; a validation scene whose flags equal a training
    scene's (possible with few obstacles) is redrawn.

    Examples
    --------
    >>> s = make_scenes((16, 16), 3, 2, seed=1)
    >>> len(s.train), len(s.validation), set(s.train_seeds) & set(s.validation_seeds)
    (3, 2, set())
    """
    lo, hi = (int(v) for v in obstacles)
    if not 0 <= lo <= hi:
        raise ValueError(f"obstacles must be (min, max) with 0 <= min <= max, got {obstacles}")
    rng = np.random.default_rng([int(seed), 0x5CE9E])
    seeds = rng.choice(2**31, size=n_train + n_validation + 64, replace=False)
    train, val, tseeds, vseeds = [], [], [], []
    for s in seeds[:n_train]:
        train.append(scenes.smoke(shape, obstacles=int(rng.integers(lo, hi + 1)), seed=int(s)))
        tseeds.append(int(s))
    seen = {g.flags.tobytes() for g in train}
    for s in seeds[n_train:]:
        if len(val) == n_validation:
            break
        g = scenes.smoke(shape, obstacles=int(rng.integers(lo, hi + 1)), seed=int(s))
        if g.flags.tobytes() in seen:
            continue
        seen.add(g.flags.tobytes())
        val.append(g)
        vseeds.append(int(s))
    return SceneSplit(tuple(train), tuple(val), tuple(tseeds), tuple(vseeds))


KINDS = ("ritz", "random", "smooth", "residual")


@dataclass
class Dataset:
    """In-memory training data: ``b[i]`` (float32 ``(N, 1, *grid)`` tensor, unit norm,
    zero off FLUID) belongs to scene ``scene[i]``; ``flags[s]`` are the scenes' flags;
    ``e[i] = A^{-1} b[i]`` when the solutions were computed (energy loss), else None."""

    b: torch.Tensor
    scene: torch.Tensor
    kind: torch.Tensor
    flags: np.ndarray
    kinds: tuple[str, ...] = field(default=KINDS)
    e: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.b.shape[0])

    @property
    def grids(self) -> list[Grid]:
        return [Grid(f) for f in self.flags]


def build_dataset(grids: Sequence[Grid], mix: DataMix, seed: int = 0,
                  max_bytes: int = DEFAULT_MAX_BYTES, progress: bool = False,
                  solutions: bool = False) -> Dataset:
    """Generate ``mix`` samples on every grid (same shape) into a :class:`Dataset`.

    With ``solutions=True`` every sample's ``e = A^{-1} b`` is computed too
    (:func:`solve_samples`; needed by the energy loss). The memory formula is
    checked for the whole set first (see the module docstring).
    """
    torch = require("torch", "build_dataset")
    tqdm = maybe("tqdm.auto") if progress else None  # the progress bar is a nicety

    grids = list(grids)
    if not grids or len({g.shape for g in grids}) != 1:
        raise ValueError("build_dataset needs at least one grid, all of the same shape")
    n = grids[0].size
    m = mix.lanczos_m if mix.ritz else 0
    total = mix.per_scene * len(grids)
    check_memory(n, m, total, max_bytes, n_fluid=max(g.n_fluid for g in grids),
                 solutions=solutions)
    rng = np.random.default_rng([int(seed), 0xDA7A])
    b = np.zeros((total, n), dtype=np.float32)
    e = np.zeros((total, n), dtype=np.float32) if solutions else None
    scene = np.zeros(total, dtype=np.int64)
    kind = np.zeros(total, dtype=np.int64)
    i = 0
    for s, g in enumerate(grids if tqdm is None else tqdm.tqdm(grids, desc="training data")):
        parts = []
        if mix.ritz:
            basis = lanczos(g.laplacian(), m, seed=int(rng.integers(2**63)), max_bytes=max_bytes)
            parts.append(("ritz", ritz_rhs(basis, mix.ritz, mix.theta, rng)))
            del basis
        if mix.random:
            parts.append(("random", random_rhs(g, mix.random, rng, "random")))
        if mix.smooth:
            parts.append(("smooth", random_rhs(g, mix.smooth, rng, "smooth")))
        if mix.residual:
            parts.append(("residual", solve_residuals(g, mix.residual, rng,
                                                      mix.residual_methods)))
        for name, arr in parts:
            if e is not None:
                e[i:i + len(arr)] = solve_samples(g, arr)
            b[i:i + len(arr)] = arr
            scene[i:i + len(arr)] = s
            kind[i:i + len(arr)] = KINDS.index(name)
            i += len(arr)
    shape = grids[0].shape
    return Dataset(torch.from_numpy(b).view(total, 1, *shape), torch.from_numpy(scene),
                   torch.from_numpy(kind), np.stack([g.flags for g in grids]),
                   e=None if e is None else torch.from_numpy(e).view(total, 1, *shape))
