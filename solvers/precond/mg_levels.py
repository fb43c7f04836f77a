"""The levels of the geometric multigrid (:mod:`dcdm.solvers.precond.mg`): the per-level
record, and the copy of a hierarchy in another array namespace or on another device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dcdm import kernels
from dcdm.kernels import arrays

__all__ = ["DeviceHierarchy", "Level"]


@dataclass
class Level:
    shape: tuple[int, int, int]
    scale: float
    code: np.ndarray | None = None  # 3-D int8 stencil code (a flag level), else None
    diag_host: np.ndarray | None = None  # coefficient form, float64 (a coefficient level)
    couplings_host: tuple | None = None
    band: tuple | None = None  # (red cells, black cells) for boundary smoothing
    factors: tuple[int, int, int] | None = None  # coarsening factors to the next level
    x: np.ndarray | None = None
    b: np.ndarray | None = None
    work: np.ndarray | None = None
    shift: np.ndarray | None = None  # the diagonal term in stencil units (D / scale), or None
    shift_host: np.ndarray | None = None  # float64 original; ``shift`` follows the work dtype
    diag: Any = None  # the coefficient form in the work dtype (and on the work device)
    couplings: tuple | None = None

    @property
    def mask(self):
        """What the transfers test with ``>= 0`` for an active cell."""
        return self.code if self.code is not None else self.diag


class DeviceHierarchy:
    """A :class:`~dcdm.solvers.precond.mg.GeometricMG` hierarchy in one array namespace,
    device and dtype.

    Built on the first application to such an array: each level's stencil code, band
    cells and work vectors, the top level's FLUID mask and the coarsest level's dense
    (pseudo-)inverse are copied there once. The coarse solve becomes a mat-vec with that
    inverse (a gather, a matmul, a scatter), so a V-cycle never leaves the device.
    """

    def __init__(self, mg, like):
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
            dev_lev = Level(lev.shape, lev.scale, band=band, factors=lev.factors,
                             x=zeros(lev.shape), b=zeros(lev.shape), work=zeros(lev.shape),
                             shift=shift)
            if lev.code is not None:
                dev_lev.code = move(lev.code)
            else:
                dev_lev.diag = move(lev.diag_host, arrays.host_dtype(like.dtype))
                dev_lev.couplings = tuple(move(c, arrays.host_dtype(like.dtype))
                                         for c in lev.couplings_host)
            self.levels.append(dev_lev)
        top = mg.levels[0]
        self.top_fluid = move((top.code if top.code is not None else top.diag_host) >= 0)
        self.coarse_idx = move(mg._coarse_idx.astype(np.int64))
        # in float64 whatever the working precision, as the host's Cholesky solve
        self.coarse_inv = move(mg.coarse_inverse(), np.float64)
        self.dtype = like.dtype

    def coarse(self, lev: Level) -> None:
        xp = self.xp
        xf = xp.reshape(lev.x, (-1,))
        rhs = xp.astype(xp.take(xp.reshape(lev.b, (-1,)), self.coarse_idx), xp.float64)
        xf[self.coarse_idx] = xp.astype(xp.matmul(self.coarse_inv, rhs), self.dtype)
