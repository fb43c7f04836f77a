"""The pressure projection as a differentiable layer: :class:`ProjectionLayer`.

A network that predicts a velocity on the MAC grid of the smoke solver
(:mod:`dcdm.problems.smoke.state`) can be made to output divergence-free fields by a
hard constraint: its output ``u*`` goes through the same projection the simulation makes
every step (:mod:`dcdm.problems.smoke.projection`),

    A p = b,   A = Grid(flags, spacing=h).laplacian(),   b = -(rho / dt) div(u*) on FLUID cells,
    u = u* - (dt / rho) grad p  on FLUID faces,   the solid's velocity on SOLID faces,

with the solve done by :func:`dcdm.training.sparse_solve` (CG with the package's geometric
multigrid by default), so the loss differentiates through it by one adjoint CG solve per
right-hand side. OPEN faces (between AIR cells, the wall beside one) touch no FLUID cell and
pass through unchanged (the simulation extrapolates them for advection). The divergence left
on FLUID cells is ``-(dt / rho)`` times the solver's residual: ``||div u||_2 <= rtol
||div u*||_2`` per scene. On a closed region (FLUID cells reaching no AIR) ``x = A^+ b``:
a net flux of the solid velocities into it, which no pressure can remove, stays as its
mean divergence (a rigid motion has none).

Velocities are lists of components, component ``a`` of shape ``(B, *face_shape(cells, a))``
(or no batch axis). Scenes with equal flags share one solve (columns of ``b``); the others
are solved group by group. Each flag grid's operator and built preconditioner are cached,
so a training loop over a fixed set of scenes builds each multigrid hierarchy once. The code
is written for 2 or 3 axes (tested on 2-D grids and one small 3-D grid); a 3-D model needs
a 3-D network with a third face component, and its cost is not benchmarked here.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dcdm.problems import CellType, Grid
from dcdm.problems.smoke.state import FLUID_FACE, SOLID_FACE, classify_faces, face_shape
from dcdm.solvers import PRECONDITIONERS, Preconditioner, make_preconditioner
from dcdm.solvers.inputs import check_tolerances

from ..differentiable import sparse_solve

__all__ = ["ProjectionLayer", "divergence", "gradient", "project_velocity"]

log = logging.getLogger(__name__)

_FLOATS = (torch.float32, torch.float64)


def divergence(velocity: Sequence[torch.Tensor], spacing: float) -> torch.Tensor:
    """Cell-centred divergence ``sum_a (u_a[i+1] - u_a[i]) / h`` of MAC velocities (every cell).

    The torch twin of :func:`dcdm.problems.smoke.state.divergence`, batched and differentiable.

    Parameters
    ----------
    velocity : sequence of torch.Tensor
        One component per axis (2 or 3); component ``a`` has shape
        ``(*batch, *face_shape(cells, a))``, the same leading batch axes for all.
    spacing : float
        Cell size ``h``.

    Returns
    -------
    torch.Tensor
        ``(*batch, *cells)``.

    Examples
    --------
    >>> import torch
    >>> u = [torch.zeros(5, 4), torch.arange(25.0).reshape(5, 5)[:4]]   # grid (4, 4)
    >>> divergence(u, spacing=0.5)[0].tolist()
    [2.0, 2.0, 2.0, 2.0]
    """
    comps = _components(velocity, "velocity")
    lead = comps[0].dim() - len(comps)
    return sum(torch.diff(u, dim=lead + a) for a, u in enumerate(comps)) / _positive(
        spacing, "spacing")


def gradient(pressure: torch.Tensor, spacing: float, *, ndim: int | None = None
             ) -> list[torch.Tensor]:
    """Face gradient ``(p[i] - p[i-1]) / h`` on every face, ``p = 0`` beyond the domain.

    The gradient that :func:`dcdm.problems.smoke.state.subtract_gradient` subtracts (there
    scaled by ``dt / rho`` and applied on FLUID faces only).

    Parameters
    ----------
    pressure : torch.Tensor
        ``(*batch, *cells)``.
    spacing : float
        Cell size ``h``.
    ndim : int, optional
        Number of spatial axes (the last ones); default: all of ``pressure``'s axes.

    Returns
    -------
    list of torch.Tensor
        Component ``a`` of shape ``(*batch, *face_shape(cells, a))``.

    Examples
    --------
    >>> import torch
    >>> p = torch.tensor([[1.0, 3.0]])                  # cells (1, 2), no batch axis
    >>> [g.tolist() for g in gradient(p, spacing=1.0)]
    [[[1.0, 3.0], [-1.0, -3.0]], [[1.0, 2.0, -3.0]]]
    """
    if not isinstance(pressure, torch.Tensor):
        raise TypeError(f"pressure must be a torch.Tensor, got {type(pressure).__name__}")
    ndim = pressure.dim() if ndim is None else ndim
    if not isinstance(ndim, int) or not 1 <= ndim <= pressure.dim():
        raise ValueError(f"ndim must be an integer in [1, {pressure.dim()}] (pressure has shape "
                         f"{tuple(pressure.shape)}), got {ndim!r}")
    h = _positive(spacing, "spacing")
    lead = pressure.dim() - ndim
    out = []
    for a in range(ndim):
        zero = torch.zeros_like(pressure.narrow(lead + a, 0, 1))
        out.append(torch.diff(torch.cat([zero, pressure, zero], dim=lead + a), dim=lead + a) / h)
    return out


class _Counted(Preconditioner):
    """A built preconditioner that counts its applications: CG applies it once per
    iteration, so the count is the iterations of the forward and the adjoint solves."""

    def __init__(self, inner: Preconditioner, owner: ProjectionLayer):
        super().__init__()
        self.inner, self.owner, self.name = inner, owner, inner.name
        self.is_linear, self.is_spd = inner.is_linear, inner.is_spd
        self.preserves_support, self.cpu_only = inner.preserves_support, inner.cpu_only

    def apply(self, r, out=None):
        self.owner.iterations += 1
        return self.inner.apply(r, out)


@dataclass
class _System:
    """What one distinct flag grid needs: its operator, preconditioner and masks."""

    grid: Grid
    op: Any
    P: Preconditioner | None  # None: no FLUID cell, nothing to solve
    fluid: np.ndarray  # cells
    fluid_faces: list[np.ndarray]
    solid_faces: list[np.ndarray]


class ProjectionLayer(torch.nn.Module):
    """Project MAC velocities onto divergence-free fields, differentiably (a hard constraint).

    Parameters
    ----------
    spacing : float
        Cell size ``h`` (domain units).
    dt, rho : float
        Time step and density of the smoke convention: ``b = -(rho / dt) div u*``,
        ``u = u* - (dt / rho) grad p``; they scale the pressure only, not the velocity.
    boundary : CellType
        Beyond the domain: ``SOLID`` (closed walls) or ``AIR``.
    M : str or None
        Preconditioner name (linear SPD: ``"mg"``, ``"ic0"``, ``"jacobi"``, ``"none"``, ...),
        built once per distinct flag grid and reused by the adjoint solve.
    rtol, atol, maxiter
        Stopping rule of every forward and adjoint solve (see :func:`sparse_solve`).
    cache_size : int
        How many distinct flag grids keep their operator and preconditioner.
    **options
        Options of the preconditioner ``M`` (e.g. ``nu`` for ``"mg"``).

    Attributes
    ----------
    solves : int
        Right-hand sides solved in forward passes since the last :meth:`reset_counts`.
    iterations : int
        CG iterations (preconditioner applications) of the forward and adjoint solves since
        the last :meth:`reset_counts`; the adjoint ones are counted during ``backward``.

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from dcdm.problems import CellType
    >>> from dcdm.training.constraints.projection import ProjectionLayer, divergence
    >>> flags = np.zeros((8, 8), dtype=np.int8)
    >>> flags[:, -1] = CellType.AIR                                  # an open top
    >>> g = torch.Generator().manual_seed(0)
    >>> u = [torch.randn(2, 9, 8, dtype=torch.float64, generator=g, requires_grad=True),
    ...      torch.randn(2, 8, 9, dtype=torch.float64, generator=g, requires_grad=True)]
    >>> layer = ProjectionLayer(spacing=1 / 8, rtol=1e-10)
    >>> v = layer(u, flags)                                          # both scenes in one solve
    >>> div = divergence(v, 1 / 8)[:, flags == CellType.FLUID]
    >>> bool(div.abs().max() < 1e-7)
    True
    >>> sum((w ** 2).sum() for w in v).backward()                    # one adjoint solve
    >>> u[0].grad.shape, layer.solves, layer.iterations > 0
    (torch.Size([2, 9, 8]), 2, True)
    """

    def __init__(self, spacing: float, *, dt: float = 1.0, rho: float = 1.0,
                 boundary: CellType = CellType.SOLID, M: str | None = "mg",
                 rtol: float = 1e-10, atol: float = 0.0, maxiter: int | None = None,
                 cache_size: int = 64, **options: Any):
        super().__init__()
        self.spacing = _positive(spacing, "spacing")
        self.dt, self.rho = _positive(dt, "dt"), _positive(rho, "rho")
        if boundary not in (CellType.SOLID, CellType.AIR):
            raise ValueError(f"boundary must be CellType.SOLID or CellType.AIR, got {boundary!r}")
        self.boundary = CellType(boundary)
        self.rtol, self.atol, _ = check_tolerances(rtol, atol, maxiter, 1)
        self.maxiter = maxiter
        M = "none" if M is None else M
        record = PRECONDITIONERS.get(M.lower()) if isinstance(M, str) else None
        if record is None or not record.for_cg:
            raise ValueError(
                f"M must name a linear SPD preconditioner (CG and its adjoint reuse it), one of "
                f"{sorted(k for k, r in PRECONDITIONERS.items() if r.for_cg)}; got {M!r}"
            )
        self.M, self.options = M.lower(), dict(options)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"cache_size must be an integer >= 1, got {cache_size!r}")
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, _System] = OrderedDict()
        self.reset_counts()

    def reset_counts(self) -> None:
        """Set :attr:`solves` and :attr:`iterations` to zero."""
        self.solves = self.iterations = 0

    def extra_repr(self) -> str:
        return (f"spacing={self.spacing}, dt={self.dt}, rho={self.rho}, "
                f"boundary={self.boundary.name}, M={self.M!r}, rtol={self.rtol}")

    def _system(self, flags: np.ndarray) -> _System:
        """The cached (or new) operator, preconditioner and face masks of one flag grid."""
        key = (flags.shape, flags.tobytes())
        sys = self._cache.get(key)
        if sys is not None:
            self._cache.move_to_end(key)
            return sys
        grid = Grid(flags, spacing=self.spacing, boundary=self.boundary)
        op, P = grid.laplacian(), None
        if grid.n_fluid:
            P = _Counted(make_preconditioner(self.M, op, **self.options), self).build(op)
        faces = classify_faces(grid.flags, self.boundary)
        sys = _System(grid, op, P, grid.fluid, [c == FLUID_FACE for c in faces],
                      [c == SOLID_FACE for c in faces])
        log.debug("projection: new system for a grid of shape %s (%d FLUID cells)",
                  grid.shape, grid.n_fluid)
        self._cache[key] = sys
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return sys

    def forward(self, velocity: Sequence[torch.Tensor], flags,
                solid_velocity: Sequence[torch.Tensor] | None = None, *,
                return_pressure: bool = False):
        """Project ``velocity`` (never modified) on the grids of ``flags``.

        Parameters
        ----------
        velocity : sequence of torch.Tensor
            Components ``(B, *face_shape(cells, a))`` (or without the batch axis), float32 or
            float64, finite, all of one dtype and device.
        flags : array_like of int
            :class:`~dcdm.problems.CellType` codes, ``cells`` (shared by the batch) or
            ``(B, *cells)``; a NumPy array, a torch tensor or a list of arrays.
        solid_velocity : sequence of torch.Tensor, optional
            The solid's normal velocity, shaped like ``velocity`` (only its SOLID faces are
            read); default zero (static walls).
        return_pressure : bool
            Also return ``p`` (``(B, *cells)``, 0 off FLUID cells).

        Returns
        -------
        list of torch.Tensor, or (list of torch.Tensor, torch.Tensor)
            The projected components (shaped like ``velocity``) [and the pressure].
        """
        comps = _components(velocity, "velocity", finite=True)
        ndim, flags = len(comps), _flags_array(flags)
        batched, B, cells = _layout(comps, flags)
        comps = comps if batched else [u.unsqueeze(0) for u in comps]
        solid = [0.0] * ndim if solid_velocity is None else _solid(solid_velocity, comps,
                                                                   batched)
        scene_flags = [flags] * B if flags.ndim == ndim else list(flags)
        systems, groups = [], OrderedDict()
        for i, f in enumerate(scene_flags):
            systems.append(self._system(np.ascontiguousarray(f)))
            groups.setdefault(id(systems[-1]), []).append(i)
        device = comps[0].device

        def stacked(get):
            return torch.from_numpy(np.stack([get(s) for s in systems])).to(device)

        fluid = stacked(lambda s: s.fluid)
        fluid_faces = [stacked(lambda s, a=a: s.fluid_faces[a]) for a in range(ndim)]
        solid_faces = [stacked(lambda s, a=a: s.solid_faces[a]) for a in range(ndim)]
        u_star = [torch.where(solid_faces[a], solid[a], comps[a]) for a in range(ndim)]
        scale = self.rho / self.dt
        b = torch.where(fluid, divergence(u_star, self.spacing) * -scale, 0.0).reshape(B, -1)
        columns = list(torch.zeros_like(b))
        for members in groups.values():
            sys = systems[members[0]]
            if sys.P is None:  # no FLUID cell: no unknown
                continue
            x = sparse_solve(sys.op, b[members].T, M=sys.P, rtol=self.rtol, atol=self.atol,
                             maxiter=self.maxiter)
            self.solves += len(members)
            for j, i in enumerate(members):
                columns[i] = x[:, j]
        p = torch.where(fluid, torch.stack(columns).reshape(B, *cells), 0.0)
        grad = gradient(p, self.spacing, ndim=ndim)
        out = [torch.where(fluid_faces[a], u_star[a] - (1.0 / scale) * grad[a], u_star[a])
               for a in range(ndim)]
        if not batched:
            out, p = [w.squeeze(0) for w in out], p.squeeze(0)
        return (out, p) if return_pressure else out


def project_velocity(velocity: Sequence[torch.Tensor], flags, *, spacing: float,
                     solid_velocity: Sequence[torch.Tensor] | None = None,
                     return_pressure: bool = False, **kwargs: Any):
    """``ProjectionLayer(spacing, **kwargs)(velocity, flags, solid_velocity)`` once (no cache
    kept between calls: use the layer in a training loop).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from dcdm.training.constraints.projection import divergence, project_velocity
    >>> flags = np.zeros((6, 6), dtype=np.int8)                  # a closed box (singular A)
    >>> u = [torch.ones(7, 6, dtype=torch.float64), torch.zeros(6, 7, dtype=torch.float64)]
    >>> v = project_velocity(u, flags, spacing=1.0)              # walls stop the flow
    >>> float(divergence(v, 1.0).abs().max()) < 1e-9, float(v[0][3].abs().max()) < 1e-9
    (True, True)
    """
    layer = ProjectionLayer(spacing, **kwargs)
    return layer(velocity, flags, solid_velocity, return_pressure=return_pressure)



# -- input checks ---------------------------------------------------------------------------
def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return float(value)


def _components(velocity, name: str, finite: bool = False) -> list[torch.Tensor]:
    if isinstance(velocity, torch.Tensor) or not isinstance(velocity, Sequence):
        raise TypeError(
            f"{name} must be a list of torch tensors, one per axis (MAC faces have a different "
            f"shape per axis), got {type(velocity).__name__}")
    comps = list(velocity)
    if len(comps) not in (2, 3):
        raise ValueError(f"{name} must have 2 or 3 components (one per axis), got {len(comps)}")
    for a, u in enumerate(comps):
        if not isinstance(u, torch.Tensor):
            raise TypeError(f"{name} component {a} must be a torch.Tensor, got "
                            f"{type(u).__name__}")
        if u.dtype not in _FLOATS:
            raise TypeError(f"{name} component {a} must be float32 or float64, got {u.dtype}")
        if u.dtype != comps[0].dtype or u.device != comps[0].device:
            raise TypeError(
                f"{name} components must share one dtype and device: component {a} is "
                f"{u.dtype} on {u.device}, component 0 {comps[0].dtype} on {comps[0].device}")
        if u.dim() != comps[0].dim() or u.dim() < len(comps):
            raise ValueError(
                f"{name} components must all have {len(comps)} spatial axes after the same "
                f"batch axes; shapes {[tuple(c.shape) for c in comps]}")
        if finite and not bool(torch.isfinite(u.detach()).all()):
            raise ValueError(f"{name} component {a} contains NaN or Inf entries")
    return comps


def _flags_array(flags) -> np.ndarray:
    if isinstance(flags, torch.Tensor):
        flags = flags.detach().cpu().numpy()
    arr = np.asarray(flags)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"flags must hold integer CellType codes, got dtype {arr.dtype}")
    return arr.astype(np.int8, copy=False)


def _layout(comps: list[torch.Tensor], flags: np.ndarray) -> tuple[bool, int, tuple[int, ...]]:
    """``(batched, B, cells)``, checking ``velocity`` against ``flags``."""
    ndim = len(comps)
    if flags.ndim not in (ndim, ndim + 1):
        raise ValueError(
            f"flags must have shape cells ({ndim} axes) or (B, *cells), got shape {flags.shape} "
            f"for a {ndim}-component velocity")
    cells = tuple(flags.shape[-ndim:])
    batched = comps[0].dim() > ndim  # more than one batch axis fails the shape check
    B = comps[0].shape[0] if batched else 1
    for a, u in enumerate(comps):
        expect = (B,) * batched + face_shape(cells, a)
        if tuple(u.shape) != expect:
            raise ValueError(
                f"velocity component {a} has shape {tuple(u.shape)} but flags of shape "
                f"{flags.shape} need {expect} (component a has one more face than cells along "
                f"axis a)")
    if flags.ndim == ndim + 1 and (not batched or flags.shape[0] != B):
        raise ValueError(f"flags hold {flags.shape[0]} scenes but velocity has "
                         f"{f'batch size {B}' if batched else 'no batch axis'}; pass one flag "
                         "grid per scene or one shared grid")
    return batched, B, cells


def _solid(solid_velocity, comps: list[torch.Tensor], batched: bool) -> list[torch.Tensor]:
    solid = _components(solid_velocity, "solid_velocity", finite=True)
    solid = solid if batched else [s.unsqueeze(0) for s in solid]
    if len(solid) != len(comps):
        raise ValueError(f"solid_velocity has {len(solid)} components but velocity has "
                         f"{len(comps)}")
    for a, (s, u) in enumerate(zip(solid, comps, strict=True)):
        if s.shape != u.shape or s.dtype != u.dtype or s.device != u.device:
            raise ValueError(
                f"solid_velocity must match velocity's shapes, dtype and device; component {a} "
                f"is {tuple(s.shape)} {s.dtype} on {s.device}, velocity's {tuple(u.shape)} "
                f"{u.dtype} on {u.device}")
    return solid
