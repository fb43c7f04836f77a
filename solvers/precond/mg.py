"""Geometric multigrid on the flag grid: one symmetric V-cycle per application.

McAdams, Sifakis & Teran, "A parallel multigrid Poisson solver for fluids
simulation on large grids", SCA 2010. Matrix-free and built from the flags
alone, so set-up takes milliseconds and suits domains that change every step.

Hierarchy
    Each level halves every axis of length > 1 (odd lengths round up: the last
    coarse cell has one child). A coarse cell is AIR if any child is AIR, else
    FLUID if any child is FLUID, else SOLID; the domain boundary keeps its type.
    The operator is re-discretised on every level with that level's spacing
    (``h_l = 2**l h``); a Galerkin-like scaling is much worse here (perf-notes).
    Coarsening stops when the grid has at most ``max_coarse`` cells or an axis
    would drop below 2 cells; the coarsest level is solved exactly (dense
    Cholesky over its FLUID cells, a pseudo-inverse if that level is singular).
Transfers
    Piecewise constant: prolongation ``P`` copies a coarse value to its FLUID
    children, restriction is ``R = P^T / 2**d`` (the children's mean), so the
    coarse-grid correction ``P A_c^{-1} R`` is symmetric.
Smoothing
    ``nu`` red-black Gauss-Seidel sweeps before (red, black) and after (black,
    red) the coarse correction: the post-smoother is the adjoint of the
    pre-smoother, so the V-cycle is a symmetric positive (semi-)definite linear
    map and plain CG stays valid. (Red-black Gauss-Seidel beat damped Jacobi by
    1-3 iterations in the calibration sketch of perf-notes, so Jacobi is not offered.)

A 2-D grid runs as an ``n0 x n1 x 1`` grid whose third axis is walled off.

Shifted operators
    On a :class:`~dcdm.problems.ShiftedGridLaplacian` ``alpha L + diag(D)`` (Newton
    systems of PDE energies, implicit diffusion) every level carries ``alpha`` in its
    scale and a diagonal ``D_l``: ``D_0 = D``, ``D_{l+1} = R D_l P`` (the mean over the
    children), so the smoother, the residual and the coarse solve all see the operator
    the V-cycle preconditions; a closed region is singular only where ``D`` vanishes.

Devices
    The set-up runs on the host (NumPy). Applied to a torch tensor or CuPy array, the
    hierarchy (stencil codes, boundary bands, work vectors) is copied to that array's
    device once, the V-cycle runs there with the dispatched kernels (CUDA where
    available, else the generic array-API ones), and the coarsest level's solve is a
    float64 mat-vec with its precomputed dense (pseudo-)inverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from dcdm import kernels
from dcdm.kernels import arrays, codes, stencil

from .base import Preconditioner, check_array, require_grid

__all__ = ["GeometricMG", "coarsen_flags"]


def coarsen_flags(flags: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Coarsen a flag array by ``factors`` (1 or 2 per axis) with the AIR > FLUID > SOLID rule.

    Examples
    --------
    >>> import numpy as np
    >>> f = np.array([[0, 1, 1], [1, 1, 2]], dtype=np.int8)
    >>> coarsen_flags(f, (2, 2)).tolist()
    [[0, 2]]
    """
    coarse_shape = tuple(-(-n // f) for n, f in zip(flags.shape, factors, strict=True))
    padded = np.full(tuple(f * n for f, n in zip(factors, coarse_shape, strict=True)),
                     codes.SOLID, dtype=np.int8)
    padded[tuple(slice(0, n) for n in flags.shape)] = flags
    split = []
    for n, f in zip(coarse_shape, factors, strict=True):
        split += [n, f]
    blocks = padded.reshape(split)
    axes = tuple(range(1, 2 * flags.ndim, 2))
    any_air = (blocks == codes.AIR).any(axis=axes)
    any_fluid = (blocks == codes.FLUID).any(axis=axes)
    out = np.full(coarse_shape, codes.SOLID, dtype=np.int8)
    out[any_fluid] = codes.FLUID
    out[any_air] = codes.AIR
    return out


def grid3(grid) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(flags, code)`` of a grid as 3-D arrays (a 2-D grid as ``n0 x n1 x 1``) and whether
    it is 2-D. The code is the grid's cached :attr:`~dcdm.problems.Grid.stencil_code` (the
    one its operator's mat-vec uses): in 2-D the walled-off third axis adds nothing to it."""
    two_d = grid.ndim == 2
    flags = grid.flags[:, :, None] if two_d else grid.flags
    return flags, grid.stencil_code.reshape(flags.shape), two_d


def _padded3(flags3: np.ndarray, boundary: int, two_d: bool) -> np.ndarray:
    fp = np.pad(flags3, 1, constant_values=boundary)
    if two_d:  # the third axis of a 2-D grid is walled off: no flux, no extra diagonal
        fp[:, :, 0] = codes.SOLID
        fp[:, :, -1] = codes.SOLID
    return fp


def _band(flags3: np.ndarray, code: np.ndarray, boundary: int) -> tuple[tuple, tuple]:
    """FLUID cells next to a SOLID or AIR cell (domain walls do not count), split by
    colour: ``(red (i, j, k), black (i, j, k))``."""
    pad = codes.AIR if boundary == codes.AIR else codes.FLUID
    fp = np.pad(flags3, 1, constant_values=pad)
    near = np.zeros(flags3.shape, dtype=bool)
    for axis in range(3):
        for lo in (0, 2):
            s = [slice(1, -1)] * 3
            s[axis] = slice(lo, lo + flags3.shape[axis])
            near |= fp[tuple(s)] != codes.FLUID
    cells = np.nonzero(near & (code > 0))
    colour = (cells[0] + cells[1] + cells[2]) % 2
    return (tuple(np.ascontiguousarray(c[colour == 0]) for c in cells),
            tuple(np.ascontiguousarray(c[colour == 1]) for c in cells))


def _block_mean(d: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """The mean of ``d`` over each coarse cell's ``prod(factors)`` children (missing
    children of odd sizes count as 0): ``R D P`` for a diagonal ``D`` with this module's
    transfers."""
    coarse = tuple(-(-n // f) for n, f in zip(d.shape, factors, strict=True))
    padded = np.zeros(tuple(f * n for f, n in zip(factors, coarse, strict=True)))
    padded[tuple(slice(0, n) for n in d.shape)] = d
    split = [m for n, f in zip(coarse, factors, strict=True) for m in (n, f)]
    return padded.reshape(split).mean(axis=tuple(range(1, 2 * d.ndim, 2)))


@dataclass
class _Level:
    flags: np.ndarray  # 3-D int8
    code: np.ndarray  # 3-D int8 stencil code
    scale: float
    band: tuple | None = None  # (red cells, black cells) for boundary smoothing
    factors: tuple[int, int, int] | None = None  # coarsening factors to the next level
    x: np.ndarray | None = None
    b: np.ndarray | None = None
    work: np.ndarray | None = None
    shift: np.ndarray | None = None  # the diagonal term in stencil units (D / scale), or None
    shift_host: np.ndarray | None = None  # float64 original; ``shift`` follows the work dtype


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

    def __init__(self, nu: int = 2, max_coarse: int = 1000, boundary_sweeps: int = 1):
        super().__init__()
        if (isinstance(boundary_sweeps, bool) or not isinstance(boundary_sweeps, int)
                or boundary_sweeps < 0):
            raise ValueError(f"boundary_sweeps must be an integer >= 0, got {boundary_sweeps!r}")
        self.boundary_sweeps = boundary_sweeps
        if isinstance(nu, bool) or not isinstance(nu, int) or nu < 1:
            raise ValueError(f"nu must be an integer >= 1, got {nu!r}")
        if isinstance(max_coarse, bool) or not isinstance(max_coarse, int) or max_coarse < 1:
            raise ValueError(f"max_coarse must be an integer >= 1, got {max_coarse!r}")
        self.nu = nu
        self.max_coarse = max_coarse
        self.levels: list[_Level] = []

    # -- set-up -------------------------------------------------------------
    def _build(self, A) -> None:
        grid = require_grid(A, "M='mg'", "; for an assembled matrix use M='amg'")
        self._k = kernels.mg_backend()
        self.dtype = np.dtype(A.dtype)
        self.shape = grid.shape
        flags, code, two_d = grid3(grid)
        boundary = int(grid.boundary)
        # alpha L + diag(D) (a ShiftedGridLaplacian): every level gets alpha and R D P
        scale = float(getattr(A, "scale", 1.0 / grid.spacing**2))
        shift = getattr(A, "shift", None)
        shift = None if shift is None or not np.any(shift) else shift.reshape(flags.shape)
        coarsenable = tuple(n > 1 for n in flags.shape)
        levels = []
        while True:
            level = _Level(flags, code, scale)
            if shift is not None:
                level.shift_host = np.ascontiguousarray(shift / scale)
            if self.boundary_sweeps:
                level.band = _band(flags, level.code, boundary)
            levels.append(level)
            n_axes = [n for n, c in zip(flags.shape, coarsenable, strict=True) if c]
            if flags.size <= self.max_coarse or min(n_axes) < 4:
                break
            factors = tuple(2 if c else 1 for c in coarsenable)
            coarse = coarsen_flags(flags, factors)
            if not (coarse == codes.FLUID).any():
                break
            level.factors = factors
            flags = coarse
            code = stencil.stencil_code(_padded3(flags, boundary, two_d))
            scale /= 4.0
            if shift is not None:
                # R D P; half of it (the 2x over-correction of re-discretised A_c) was
                # worse: 7 vs 5 iterations at 32^3, D ~ Exp(1) per cell
                shift = np.where(code >= 0, _block_mean(shift, factors), 0)
        self.levels = levels
        self._off = np.flatnonzero(levels[0].code.reshape(-1) < 0)
        self._weight = 1.0 / 2 ** sum(coarsenable)
        self._work_dtype = None  # host work arrays: allocated by the first NumPy apply
        self._device = arrays.DeviceCache()
        self._build_coarse_solver(levels[-1], boundary, two_d)

    def _alloc(self, dtype) -> None:
        self._work_dtype = np.dtype(dtype)
        for lev in self.levels:
            lev.x = np.zeros(lev.flags.shape, dtype=dtype)
            lev.b = np.zeros(lev.flags.shape, dtype=dtype)
            lev.work = np.zeros(lev.flags.shape, dtype=dtype)
            if lev.shift_host is not None:
                lev.shift = lev.shift_host.astype(dtype)

    def _build_coarse_solver(self, lev: _Level, boundary: int, two_d: bool) -> None:
        flags2 = lev.flags[:, :, 0] if two_d else lev.flags
        fp = stencil.pad_flags(flags2, boundary)
        C = stencil.assemble_csr(fp, 1.0, np.float64) * lev.scale
        diag = np.maximum(lev.code, 0).astype(np.float64)
        if lev.shift_host is not None:
            diag = diag + lev.shift_host
            C = C + sp.diags_array(lev.scale * lev.shift_host.reshape(-1))
        self._coarse_idx = np.flatnonzero((lev.code.reshape(-1) >= 0) & (diag.reshape(-1) > 0))
        dense = C[self._coarse_idx][:, self._coarse_idx].toarray()
        self._coarse_kind = "cholesky"
        self._coarse_rhs = np.zeros(self._coarse_idx.size)
        self._coarse_sol = np.zeros(self._coarse_idx.size)
        labels, _, open_region = stencil.fluid_regions(fp)
        if lev.shift_host is not None:  # a region with a positive shift is not singular
            flat = labels.reshape(-1)
            hit = np.unique(flat[(flat > 0) & (lev.shift_host.reshape(-1) > 0)])
            open_region = open_region.copy()
            open_region[hit] = True
        if not open_region[1:].all():  # a closed (all-Neumann) region: singular coarse matrix
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
        if self._work_dtype is None or r.dtype != self._work_dtype:
            self._alloc(r.dtype)
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
        moved there once (:class:`_DeviceHierarchy`), so nothing crosses per application."""
        h = self._device.get(r, lambda: _DeviceHierarchy(self, r))
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

    def _smooth(self, lev: _Level, k, order: tuple[int, int]) -> None:
        """Pre-smoothing for ``order == (0, 1)``; its adjoint for ``(1, 0)``."""
        pre = order == (0, 1)
        if not pre:
            self._band_sweeps(lev, k, order)
        for _ in range(self.nu):
            for color in order:
                k.rbgs_sweep(lev.code, lev.x, lev.b, lev.scale, color, shift=lev.shift)
        if pre:
            self._band_sweeps(lev, k, order)

    def _band_sweeps(self, lev: _Level, k, order: tuple[int, int]) -> None:
        if lev.band is None:
            return
        for _ in range(self.boundary_sweeps):
            for color in order:
                k.rbgs_cells(lev.code, lev.x, lev.b, lev.scale, lev.band[color],
                             shift=lev.shift)

    def _coarse_host(self, lev: _Level) -> None:
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

    def _vcycle(self, levels: list[_Level], k, coarse, l: int) -> None:
        lev = levels[l]
        if l == len(levels) - 1:
            coarse(lev)
            return
        self._smooth(lev, k, (0, 1))
        nxt = levels[l + 1]
        k.residual_restrict(lev.code, lev.x, lev.b, lev.scale, nxt.code, nxt.b,
                            lev.factors, self._weight, work=lev.work, shift=lev.shift)
        nxt.x[...] = 0
        self._vcycle(levels, k, coarse, l + 1)
        k.prolong_add(nxt.x, lev.code, lev.x, lev.factors)
        self._smooth(lev, k, (1, 0))

    @property
    def stats(self) -> dict[str, Any]:
        s = super().stats
        cells = [int(lev.flags.size) for lev in self.levels]
        s.update(
            mg_levels=len(self.levels),
            mg_shapes=[tuple(int(n) for n in lev.flags.shape) for lev in self.levels],
            mg_grid_complexity=sum(cells) / cells[0],
            mg_coarse_unknowns=int(self._coarse_idx.size),
            mg_coarse_solver=self._coarse_kind,
            mg_smoother=f"red-black Gauss-Seidel, {self.nu} + {self.nu} sweeps",
            mg_boundary_sweeps=self.boundary_sweeps,
            mg_shifted=self.levels[0].shift_host is not None,
            mg_memory_bytes=int(sum(3 * lev.flags.size * self.dtype.itemsize + lev.code.nbytes
                                    for lev in self.levels)),
        )
        return s


class _DeviceHierarchy:
    """A :class:`GeometricMG` hierarchy in one array namespace, device and dtype.

    Built on the first application to such an array: each level's stencil code, band
    cells and work vectors, the top level's FLUID mask and the coarsest level's dense
    (pseudo-)inverse are copied there once. The coarse solve becomes a mat-vec with that
    inverse (a gather, a matmul, a scatter), so a V-cycle never leaves the device.
    """

    def __init__(self, mg: GeometricMG, like):
        from array_api_compat import array_namespace, device

        xp = array_namespace(like)
        dev = device(like)
        self.xp = xp
        self.k = kernels.mg_backend(like)

        def move(a, dt=None):
            return arrays.asarray_like(a, like, dt)

        def zeros(shape):
            return xp.zeros(shape, dtype=like.dtype, device=dev)

        self.levels = []
        for lev in mg.levels:
            band = None
            if lev.band is not None:
                band = tuple(tuple(move(c, np.int64) for c in cells) for cells in lev.band)
            shift = (None if lev.shift_host is None
                     else xp.astype(move(lev.shift_host), like.dtype))
            self.levels.append(_Level(lev.flags, move(lev.code), lev.scale, band, lev.factors,
                                      zeros(lev.flags.shape), zeros(lev.flags.shape),
                                      zeros(lev.flags.shape), shift))
        self.top_fluid = move(mg.levels[0].code >= 0)
        self.coarse_idx = move(mg._coarse_idx.astype(np.int64))
        # in float64 whatever the working precision, as the host's Cholesky solve
        self.coarse_inv = move(mg.coarse_inverse(), np.float64)
        self.dtype = like.dtype

    def coarse(self, lev: _Level) -> None:
        xp = self.xp
        xf = xp.reshape(lev.x, (-1,))
        rhs = xp.astype(xp.take(xp.reshape(lev.b, (-1,)), self.coarse_idx), xp.float64)
        xf[self.coarse_idx] = xp.astype(xp.matmul(self.coarse_inv, rhs), self.dtype)

