"""Geometric multigrid on the flag grid: one symmetric V-cycle per application.

McAdams, Sifakis & Teran, "A parallel multigrid Poisson solver for fluids
simulation on large grids", SCA 2010. Matrix-free and built from the flags
alone, so set-up takes milliseconds and suits domains that change every step.

Hierarchy
    Each level halves every axis of length > 1 (odd lengths round up: the last
    coarse cell has one child), until a level has at most ``max_coarse`` cells or an
    axis would drop below 2 cells; the coarsest level is solved exactly (dense
    Cholesky over its unknowns, a pseudo-inverse if that level is singular). The coarse
    operators follow ``coarsening`` (:mod:`~dcdm.solvers.precond.coarsening`): by default
    ``A_c = P^T A P / 2`` from the fine coefficients (Galerkin with over-correction), so
    thin walls, face weights and coefficient jumps survive to every level; or the flag
    rule of McAdams et al., re-discretised with spacing ``2**l h`` (fast to build, blind
    to walls thinner than a block and to face weights).
Transfers
    Piecewise constant: prolongation ``P`` copies a coarse value to its active
    children, restriction is ``R = P^T`` (the children's sum; with the flag rule
    ``P^T / 2**d``, the mean, to match its re-discretised scale), so the coarse-grid
    correction ``P A_c^{-1} R`` is symmetric.
Smoothing
    ``nu`` red-black Gauss-Seidel sweeps before (red, black) and after (black,
    red) the coarse correction: the post-smoother is the adjoint of the
    pre-smoother, so the V-cycle is a symmetric positive (semi-)definite linear
    map and plain CG stays valid. (Red-black Gauss-Seidel beat damped Jacobi by
    1-3 iterations in the calibration sketch of perf-notes, so Jacobi is not offered.)

A 2-D grid runs as an ``n0 x n1 x 1`` grid whose third axis is walled off. Levels in
coefficient form (a weighted grid's finest level, every Galerkin coarse level) run the
coefficient-stencil kernels; an unweighted finest level keeps the ``int8`` stencil-code
kernels, which read the least memory.

Shifted operators
    On a :class:`~dcdm.problems.ShiftedGridLaplacian` ``alpha L + diag(D)`` (Newton
    systems of PDE energies, implicit diffusion) every level carries ``alpha`` in its
    scale and a diagonal ``D_l``: ``D_0 = D``, ``D_{l+1} = P^T D_l P`` (the mean over the
    children with the flag rule), so the smoother, the residual and the coarse solve all
    see the operator the V-cycle preconditions; a closed region is singular only where
    ``D`` vanishes.

Devices
    The set-up runs on the host (NumPy). Applied to a torch tensor or CuPy array, the
    hierarchy (stencil codes, boundary bands, work vectors) is copied to that array's
    device once, the V-cycle runs there with the dispatched kernels (CUDA where
    available, else the generic array-API ones), and the coarsest level's solve is a
    float64 mat-vec with its precomputed dense (pseudo-)inverse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from dcdm import kernels
from dcdm.kernels import arrays, codes, stencil

from .base import Preconditioner, check_array, require_grid
from .coarsening import (
    BETA,
    band,
    block_sum,
    coarsen_coefficients,
    coarsen_flags,
    coefficients3,
    drop_blocks,
    padded3,
)
from .mg_levels import DeviceHierarchy, Level

__all__ = ["GeometricMG", "coarsen_flags"]

COARSENINGS = ("galerkin", "flags")


def grid3(grid) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(flags, code)`` of a grid as 3-D arrays (a 2-D grid as ``n0 x n1 x 1``) and whether
    it is 2-D. The code is the grid's cached :attr:`~dcdm.problems.Grid.stencil_code` (the
    one its operator's mat-vec uses): in 2-D the walled-off third axis adds nothing to it."""
    two_d = grid.ndim == 2
    flags = grid.flags[:, :, None] if two_d else grid.flags
    return flags, grid.stencil_code.reshape(flags.shape), two_d


class GeometricMG(Preconditioner):
    """Geometric multigrid V-cycle on a grid operator (``M="mg"``).

    Parameters
    ----------
    nu : int, default 2
        Smoothing sweeps before and after the coarse-grid correction.
    boundary_sweeps : int, default 1
        Extra Gauss-Seidel sweeps over the 1-cell band of FLUID cells next to
        obstacles and AIR, after the pre-smoothing and (mirrored) before the
        post-smoothing, where the re-discretised coarse grids are least accurate.
    max_coarse : int, default 1000
        Coarsen until a level has at most this many cells.
    coarsening : {"galerkin", "flags"}, default "galerkin"
        How coarse operators are made (:mod:`~dcdm.solvers.precond.coarsening`): from the
        fine coefficients (keeps thin walls and face weights) or the flag rule.
    nu_coarse : int, optional
        Sweeps before and after on the coarse levels (default ``nu``): they cost 1/8 of the
        finest level's each in 3-D, and more of them buy back iterations the piecewise-
        constant coarse spaces lose.
    precision : {None, "float32"}, default None
        ``"float32"``: the V-cycle runs in single precision on double-precision input (half
        the memory traffic; the preconditioner is symmetric to float32 rounding, enough for
        CG to the tolerances of a pressure solve). None: the input's precision.

    Examples
    --------
    >>> import dcdm
    >>> from dcdm.problems import gallery
    >>> A, b = gallery.smoke((32, 32, 32), obstacles=4)
    >>> res = dcdm.solve(A, b, M="mg", rtol=1e-6)
    >>> res.converged, res.iterations <= 10
    (True, True)
    """

    name = "mg"
    is_linear = True
    is_spd = True
    preserves_support = True

    def __init__(self, nu: int = 2, max_coarse: int = 1000, boundary_sweeps: int = 1,
                 coarsening: str = "galerkin", nu_coarse: int | None = None,
                 precision: str | None = None):
        super().__init__()
        if (isinstance(boundary_sweeps, bool) or not isinstance(boundary_sweeps, int)
                or boundary_sweeps < 0):
            raise ValueError(f"boundary_sweeps must be an integer >= 0, got {boundary_sweeps!r}")
        self.boundary_sweeps = boundary_sweeps
        for name, value in (("nu", nu), ("nu_coarse", nu if nu_coarse is None else nu_coarse)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if precision not in (None, "float32"):
            raise ValueError(f"precision must be None or 'float32', got {precision!r}")
        self.nu_coarse = nu if nu_coarse is None else nu_coarse
        self.precision = precision
        if isinstance(max_coarse, bool) or not isinstance(max_coarse, int) or max_coarse < 1:
            raise ValueError(f"max_coarse must be an integer >= 1, got {max_coarse!r}")
        if coarsening not in COARSENINGS:
            raise ValueError(f"coarsening must be one of {COARSENINGS}, got {coarsening!r}")
        self.nu = nu
        self.max_coarse = max_coarse
        self.coarsening = coarsening
        self.levels: list[Level] = []

    # -- set-up -------------------------------------------------------------
    def _build(self, A) -> None:
        grid = require_grid(A, "M='mg'", "; for an assembled matrix use M='amg'")
        self._k = kernels.mg_backend()
        self.dtype = np.dtype(A.dtype)
        self.shape = grid.shape
        flags, code, two_d = grid3(grid)
        boundary = int(grid.boundary)
        weighted = grid.face_weights is not None
        if weighted and self.coarsening == "flags":
            raise ValueError("coarsening='flags' cannot see face weights; the grid has "
                             "face_weights: use coarsening='galerkin' (the default)")
        # alpha L + diag(D) (a ShiftedGridLaplacian): every level gets alpha and D coarsened
        scale = float(getattr(A, "scale", 1.0 / grid.spacing**2))
        shift = getattr(A, "shift", None)
        shift = None if shift is None or not np.any(shift) else shift.reshape(flags.shape)
        galerkin = self.coarsening == "galerkin"
        shift_st = None if shift is None else shift / scale  # in stencil units
        diag = couplings = None
        if weighted:  # the fine operator in coefficient form, the shift in its diagonal
            diag, couplings = coefficients3(grid, flags.shape)
            if shift is not None:
                diag = np.where(diag >= 0, diag + shift_st, diag)
        coarsenable = tuple(n > 1 for n in flags.shape)
        level = Level(flags.shape, scale, code=None if weighted else code)
        if weighted:
            level.diag_host, level.couplings_host = diag, couplings
        levels = []
        while True:
            if shift is not None and level.code is not None:
                level.shift_host = np.ascontiguousarray(shift / scale)
            if self.boundary_sweeps and flags is not None:
                level.band = band(flags, code, boundary)
            levels.append(level)
            n_axes = [n for n, c in zip(level.shape, coarsenable, strict=True) if c]
            if int(np.prod(level.shape)) <= self.max_coarse or min(n_axes) < 4:
                break
            factors = tuple(2 if c else 1 for c in coarsenable)
            if galerkin:
                if level.code is not None:  # straight from the int8 code: no fine arrays
                    diag, couplings = self._k.galerkin_coarsen_code(level.code, factors, BETA,
                                                                    shift_st)
                else:
                    diag, couplings = coarsen_coefficients(diag, couplings, factors,
                                                           shift=shift_st)
                if flags is not None:  # the first coarsening: free-surface blocks drop out
                    diag, couplings = drop_blocks(diag, couplings, block_sum(
                        (flags == codes.AIR).astype(np.int32), factors) > 0)
                if not (diag >= 0).any():
                    break
                if shift_st is not None:
                    shift_st = block_sum(shift_st, factors)
                nxt = Level(diag.shape, scale, diag_host=diag, couplings_host=couplings)
                flags = code = None
            else:
                coarse = coarsen_flags(flags, factors)
                if not (coarse == codes.FLUID).any():
                    break
                flags = coarse
                code = stencil.stencil_code(padded3(flags, boundary, two_d))
                scale /= 4.0
                if shift is not None:
                    # R D P; half of it (the 2x over-correction of re-discretised A_c) was
                    # worse: 7 vs 5 iterations at 32^3, D ~ Exp(1) per cell
                    shift = np.where(code >= 0, block_sum(shift, factors) / 2 ** sum(
                        coarsenable), 0)
                nxt = Level(flags.shape, scale, code=code)
            level.factors = factors
            level = nxt
        self.levels = levels
        top = levels[0]
        self._off = np.flatnonzero((top.code if top.code is not None
                                    else top.diag_host).reshape(-1) < 0)
        self._weight = 1.0 if galerkin else 1.0 / 2 ** sum(coarsenable)
        self._work_dtype = None  # host work arrays: allocated by the first NumPy apply
        self._device = arrays.DeviceCache()
        last = levels[-1]
        if last.code is None:
            self._build_coarse_solver(last.diag_host, last.couplings_host, last.scale)
        else:  # a flag level: its coefficient form (and shift) for the dense matrix
            d, k = stencil.face_coefficients(padded3(flags, boundary, two_d))
            if last.shift_host is not None:
                d = np.where(d >= 0, d + last.shift_host, d)
            self._build_coarse_solver(d, k, last.scale)

    def _alloc(self, dtype) -> None:
        self._work_dtype = np.dtype(dtype)
        for lev in self.levels:
            lev.x = np.zeros(lev.shape, dtype=dtype)
            lev.b = np.zeros(lev.shape, dtype=dtype)
            lev.work = np.zeros(lev.shape, dtype=dtype)
            if lev.shift_host is not None:
                lev.shift = lev.shift_host.astype(dtype)
            if lev.diag_host is not None:
                lev.diag = lev.diag_host.astype(dtype)
                lev.couplings = tuple(c.astype(dtype) for c in lev.couplings_host)

    def _build_coarse_solver(self, diag: np.ndarray, couplings, scale: float) -> None:
        """Dense factor of the coarsest level over its cells with ``diag > 0``: Cholesky, or a
        pseudo-inverse when a connected part of it is closed (no flux out: singular)."""
        self._coarse_idx = idx = np.flatnonzero(diag.reshape(-1) > 0)
        C = stencil.assemble_coefficients(diag, couplings, scale, np.float64)[idx][:, idx]
        dense = C.toarray()
        self._coarse_kind = "cholesky"
        self._coarse_rhs = np.zeros(idx.size)
        self._coarse_sol = np.zeros(idx.size)
        if _has_closed_part(C, diag.reshape(-1)[idx] * scale):
            self._coarse_kind = "pseudo-inverse"
            self._coarse_F = np.ascontiguousarray(sla.pinvh(dense))
            return
        try:
            self._coarse_F = np.ascontiguousarray(np.tril(sla.cholesky(dense, lower=True)))
        except sla.LinAlgError:  # numerically indefinite: fall back, never fail the build
            self._coarse_kind = "pseudo-inverse"
            self._coarse_F = np.ascontiguousarray(sla.pinvh(dense))

    # -- application ----------------------------------------------------------
    def apply(self, r, out=None):
        if not isinstance(r, np.ndarray):
            check_array(r, "M='mg'")
            return self._apply_device(r, out)
        work = np.dtype(np.float32) if self.precision == "float32" else r.dtype
        if self._work_dtype is None or work != self._work_dtype:
            self._alloc(work)
        top = self.levels[0]
        top.b[...] = r.reshape(top.b.shape)
        top.b.reshape(-1)[self._off] = 0  # the V-cycle works on FLUID-supported vectors
        top.x[...] = 0
        self._vcycle(self.levels, self._k, self._coarse_host, 0)
        if out is None:
            out = np.empty_like(r)
        out[...] = top.x.reshape(r.shape)
        return out

    def _apply_device(self, r, out):
        """The V-cycle in ``r``'s namespace on its device: the hierarchy's arrays were
        moved there once (:class:`DeviceHierarchy`), so nothing crosses per application."""
        h = self._device.get(r, lambda: DeviceHierarchy(self, r))
        xp = h.xp
        top = h.levels[0]
        r3 = xp.reshape(r, top.b.shape)
        top.b[...] = xp.where(h.top_fluid, r3, xp.zeros_like(r3))
        top.x[...] = 0
        self._vcycle(h.levels, h.k, h.coarse, 0)
        if out is None:
            out = xp.empty_like(r)
        out[...] = xp.reshape(top.x, r.shape)
        return out

    def _smooth(self, lev: Level, k, order: tuple[int, int], sweeps: int) -> None:
        """Pre-smoothing for ``order == (0, 1)``; its adjoint for ``(1, 0)``."""
        pre = order == (0, 1)
        if not pre:
            self._band_sweeps(lev, k, order)
        for _ in range(sweeps):  # one pass over memory per full sweep
            if lev.code is not None:
                k.rbgs_pair(lev.code, lev.x, lev.b, lev.scale, order[0], shift=lev.shift)
            else:
                k.coef_rbgs_pair(lev.diag, lev.couplings, lev.x, lev.b, lev.scale, order[0])
        if pre:
            self._band_sweeps(lev, k, order)

    def _band_sweeps(self, lev: Level, k, order: tuple[int, int]) -> None:
        if lev.band is None:
            return
        for _ in range(self.boundary_sweeps):
            for color in order:
                if lev.code is not None:
                    k.rbgs_cells(lev.code, lev.x, lev.b, lev.scale, lev.band[color],
                                 shift=lev.shift)
                else:
                    k.coef_rbgs_cells(lev.diag, lev.couplings, lev.x, lev.b, lev.scale,
                                      lev.band[color])

    def _coarse_host(self, lev: Level) -> None:
        self._coarse_rhs[...] = lev.b.reshape(-1)[self._coarse_idx]
        self._k.coarse_solve(self._coarse_kind, self._coarse_F, self._coarse_rhs,
                             self._coarse_sol)
        lev.x.reshape(-1)[self._coarse_idx] = self._coarse_sol

    def coarse_inverse(self) -> np.ndarray:
        """The coarsest level's dense (pseudo-)inverse over its FLUID cells, float64 (what
        the device V-cycle multiplies by; the host one uses the Cholesky factor)."""
        if self._coarse_kind == "cholesky":
            inv = sla.cho_solve((self._coarse_F, True), np.eye(self._coarse_F.shape[0]))
            return 0.5 * (inv + inv.T)
        return self._coarse_F

    def _vcycle(self, levels: list[Level], k, coarse, l: int) -> None:
        lev = levels[l]
        if l == len(levels) - 1:
            coarse(lev)
            return
        sweeps = self.nu if l == 0 else self.nu_coarse
        self._smooth(lev, k, (0, 1), sweeps)
        nxt = levels[l + 1]
        if lev.code is not None:
            k.residual_restrict(lev.code, lev.x, lev.b, lev.scale, nxt.mask, nxt.b,
                                lev.factors, self._weight, work=lev.work, shift=lev.shift)
        else:
            k.coef_residual_restrict(lev.diag, lev.couplings, lev.x, lev.b, lev.scale, nxt.mask,
                                     nxt.b, lev.factors, self._weight, work=lev.work)
        nxt.x[...] = 0
        self._vcycle(levels, k, coarse, l + 1)
        k.prolong_add(nxt.x, lev.mask, lev.x, lev.factors)
        self._smooth(lev, k, (1, 0), sweeps)

    @property
    def stats(self) -> dict[str, Any]:
        s = super().stats
        cells = [int(np.prod(lev.shape)) for lev in self.levels]
        s.update(
            mg_levels=len(self.levels),
            mg_shapes=[tuple(int(n) for n in lev.shape) for lev in self.levels],
            mg_coarsening=self.coarsening,
            mg_grid_complexity=sum(cells) / cells[0],
            mg_coarse_unknowns=int(self._coarse_idx.size),
            mg_coarse_solver=self._coarse_kind,
            mg_smoother=(f"red-black Gauss-Seidel, {self.nu} + {self.nu} sweeps, "
                         f"{self.nu_coarse} + {self.nu_coarse} on coarse levels"),
            mg_precision=self.precision or str(self.dtype),
            mg_boundary_sweeps=self.boundary_sweeps,
            mg_shifted=self.levels[0].shift_host is not None,
            mg_memory_bytes=int(sum(
                int(np.prod(lev.shape)) * self.dtype.itemsize
                * (3 if lev.code is not None else 3 + 1 + len(lev.couplings_host))
                + (lev.code.nbytes if lev.code is not None else 0) for lev in self.levels)),
        )
        return s


def _has_closed_part(C: sp.csr_array, diag: np.ndarray) -> bool:
    """Whether a connected part of the SPSD matrix ``C`` (zero-row-sum rows except where
    flux leaves) carries no flux out: its rows sum to zero, so it is singular."""
    from scipy.sparse.csgraph import connected_components

    n, labels = connected_components(C, directed=False)
    excess = np.bincount(labels, weights=np.asarray(C.sum(axis=1)).reshape(-1), minlength=n)
    size = np.bincount(labels, weights=diag, minlength=n)
    return bool((excess <= 1e-9 * size).any())
