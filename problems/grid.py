"""Cell-flag grids and the pressure Poisson operator on them.

Vector layout
-------------
A grid of shape ``(n0, n1)`` or ``(n0, n1, n2)`` has one unknown slot per cell;
vectors are the C-order ravel of grid-shaped arrays (``v.reshape(grid.shape)``
gives the field back, ``field.ravel()`` the vector), so ``len(v) ==
grid.size``. Axis 1 is "up" (gravity along ``-axis 1``), so the top of the
domain is ``flags[:, -1]`` in 2-D and ``flags[:, -1, :]`` in 3-D.

Only FLUID cells are unknowns. The row of a non-FLUID (SOLID or AIR) cell is
the identity and decoupled from the rest, so the assembled matrix stays
symmetric positive (semi-)definite; give right-hand sides that are zero there
and the solution is zero there too (:meth:`Grid.mask` zeroes a field's
non-FLUID cells).

Stencil (defined once, in :mod:`dcdm.kernels.stencil`, for the kernels and ``to_csr``)
--------------------------------------------------------------------------------------
For a FLUID cell ``c`` with face neighbours ``n``::

    (L x)_c = (d_c x_c - sum_{n FLUID} x_n) / h**2,   d_c = #{n : n not SOLID}

SOLID cells and a SOLID domain boundary are zero-flux (Neumann) walls; AIR
cells (and an AIR domain boundary, ``boundary=CellType.AIR``) are Dirichlet
``p = 0``. A connected FLUID region that touches no AIR face makes the
operator singular, with the constant on that region in its null space.

Face weights (:mod:`dcdm.problems.faces`: layout, checks, density and cut-cell weights) make
it ``-div(w grad p) / h**2``: each face's term above is multiplied by its weight ``w >= 0``
(0 closes the face), SOLID and AIR keep their rules; ``face_weights=None`` is ``w = 1``.
"""

from __future__ import annotations

import functools
from enum import IntEnum

import numpy as np

from dcdm.kernels import arrays, codes, stencil
from dcdm.solvers.nullspace import ConstantNullSpace

from . import faces as _faces
from .laplacian import GridLaplacian, ShiftedGridLaplacian

__all__ = ["CellType", "Grid", "GridLaplacian", "ShiftedGridLaplacian"]


class CellType(IntEnum):
    """Cell codes of a flag grid."""

    FLUID = codes.FLUID
    """An unknown pressure."""
    SOLID = codes.SOLID
    """A wall: zero normal flux (Neumann)."""
    AIR = codes.AIR
    """Free surface / open boundary: Dirichlet ``p = 0``."""


class Grid:
    """A 2-D or 3-D grid of cell flags.

    Parameters
    ----------
    flags : array_like of int, 2-D or 3-D
        :class:`CellType` codes per cell. Copied; the grid is immutable.
    spacing : float, default 1.0
        Cell size ``h``; the operator is scaled by ``1 / h**2``.
    boundary : CellType, default ``CellType.SOLID``
        What lies outside the domain: SOLID (closed walls) or AIR
        (Dirichlet on the whole boundary, the classic Poisson cube).
    face_weights : tuple of ndim arrays, optional
        Per-axis face weights ``W_a``, shaped like the grid but one longer along axis
        ``a`` (every face, both domain-boundary faces included), finite and ``>= 0``:
        the operator becomes ``-div(w grad p) / h**2`` (see :mod:`dcdm.problems.faces`).
        Copied. ``None`` (default): ``w = 1``, the plain operator, on the fastest kernels.

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.problems import CellType, Grid
    >>> flags = np.zeros((8, 8), dtype=np.int8)
    >>> flags[:, -1] = CellType.AIR
    >>> g = Grid(flags)
    >>> g.n_fluid, g.is_singular
    (56, False)
    """

    def __init__(self, flags, spacing: float = 1.0, boundary: CellType = CellType.SOLID,
                 face_weights=None):
        arr = np.asarray(flags)
        if arr.ndim not in (2, 3):
            raise ValueError(
                f"flags must be a 2-D or 3-D array of CellType codes, got ndim={arr.ndim} "
                f"(shape {arr.shape})"
            )
        if min(arr.shape) < 1:
            raise ValueError(f"flags must have at least one cell per axis, got shape {arr.shape}")
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
                raise TypeError(
                    f"flags must hold integer CellType codes, got dtype {arr.dtype}; "
                    "build them with e.g. np.full(shape, CellType.FLUID, dtype=np.int8)"
                )
        valid = {int(c) for c in CellType}
        bad = np.setdiff1d(np.unique(arr), sorted(valid))
        if bad.size:
            raise ValueError(
                f"flags contain unknown cell codes {bad.tolist()[:5]}; valid codes are "
                f"{ {c.name: int(c) for c in CellType} }"
            )
        spacing = float(spacing)
        if not np.isfinite(spacing) or spacing <= 0:
            raise ValueError(f"spacing must be a positive finite number, got {spacing}")
        if boundary not in (CellType.SOLID, CellType.AIR):
            raise ValueError(
                f"boundary must be CellType.SOLID or CellType.AIR, got {boundary!r}"
            )
        self._face_weights = _faces.check(face_weights, arr.shape)
        self._flags = arr.astype(np.int8, copy=True)
        self._flags.flags.writeable = False
        self.spacing = spacing
        self.boundary = CellType(boundary)

    def same_as(self, other: Grid) -> bool:
        """Whether ``other`` describes the same grid (flags, spacing, boundary, weights)."""
        if other is self:
            return True
        if not (isinstance(other, Grid) and self.spacing == other.spacing
                and self.boundary == other.boundary and np.array_equal(self._flags,
                                                                       other._flags)):
            return False
        mine, theirs = self._face_weights, other._face_weights
        if mine is None or theirs is None:
            return mine is theirs
        return all(np.array_equal(a, b) for a, b in zip(mine, theirs, strict=True))

    # -- basic properties -------------------------------------------------
    @property
    def flags(self) -> np.ndarray:
        """Read-only ``int8`` flag array."""
        return self._flags

    @property
    def shape(self) -> tuple[int, ...]:
        return self._flags.shape

    @property
    def ndim(self) -> int:
        return self._flags.ndim

    @property
    def size(self) -> int:
        return self._flags.size

    @property
    def face_weights(self) -> tuple[np.ndarray, ...] | None:
        """The read-only per-axis face weights, or None (all faces weigh 1)."""
        return self._face_weights

    @functools.cached_property
    def fluid(self) -> np.ndarray:
        """Boolean mask of FLUID cells (grid-shaped, read-only)."""
        m = self._flags == CellType.FLUID
        m.flags.writeable = False
        return m

    @property
    def n_fluid(self) -> int:
        return int(self.fluid.sum())

    @functools.cached_property
    def padded_flags(self) -> np.ndarray:
        """Flags padded by one cell of ``boundary`` on every side (the kernels' input)."""
        fp = stencil.pad_flags(self._flags, self.boundary)
        fp.flags.writeable = False
        return fp

    @functools.cached_property
    def stencil_code(self) -> np.ndarray:
        """Per-cell ``int8`` stencil code (see :func:`dcdm.kernels.stencil.stencil_code`)."""
        c = stencil.stencil_code(self.padded_flags)
        c.flags.writeable = False
        return c

    @functools.cached_property
    def _device_arrays(self) -> arrays.DeviceCache:
        return arrays.DeviceCache(with_dtype=False)

    @functools.cached_property
    def _coefficient_cache(self) -> arrays.DeviceCache:
        return arrays.DeviceCache()

    def coefficients(self, like=None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """The operator in coefficient form ``(diag, couplings)`` (stencil units; see
        :func:`dcdm.kernels.stencil.face_coefficients`), float64 NumPy arrays for
        ``like=None``, else in the namespace, device and dtype of array ``like``
        (converted once per kind and cached)."""
        if like is None:
            like = np.zeros(0)
        return self._coefficient_cache.get(like, lambda: self._coefficients_like(like))

    def _coefficients_like(self, like):
        if not isinstance(like, np.ndarray) or like.dtype != np.float64:
            diag, couplings = self.coefficients()
            dtype = arrays.host_dtype(like.dtype)  # torch.float32 -> float32
            return (arrays.asarray_like(diag, like, dtype),
                    tuple(arrays.asarray_like(k, like, dtype) for k in couplings))
        diag, couplings = stencil.face_coefficients(self.padded_flags, self._face_weights)
        for a in (diag, *couplings):
            a.flags.writeable = False
        return diag, couplings

    def kernel_arrays(self, like) -> tuple:
        """``(padded_flags, stencil_code, fluid)`` in the namespace and on the device of
        array ``like``, for kernels running on such arrays.

        Converted at the first call for each (array namespace, device) and cached, so
        the transfer happens once at the edge, never per iteration. NumPy ``like`` gets
        the grid's own read-only arrays.
        """
        if isinstance(like, np.ndarray):
            return self.padded_flags, self.stencil_code, self.fluid
        return self._device_arrays.get(like, lambda: tuple(
            arrays.asarray_like(a, like) for a in (self.padded_flags, self.stencil_code,
                                                   self.fluid)))

    def __repr__(self) -> str:
        counts = {c.name: int((self._flags == c).sum()) for c in CellType}
        weights = "" if self._face_weights is None else (
            f", face_weights in [{min(w.min() for w in self._face_weights):.3g}, "
            f"{max(w.max() for w in self._face_weights):.3g}]")
        return (
            f"Grid(shape={self.shape}, spacing={self.spacing}, boundary={self.boundary.name}, "
            f"{counts}{weights})"
        )

    # -- fields -----------------------------------------------------------
    def mask(self, field) -> np.ndarray:
        """Return a copy of ``field`` (grid-shaped or raveled) with non-FLUID cells zeroed."""
        f = np.asarray(field)
        out = np.where(self.fluid.reshape(-1) if f.ndim == 1 else self.fluid, f, 0)
        return out.astype(f.dtype if np.issubdtype(f.dtype, np.floating) else np.float64)

    # -- connectivity and null space ----------------------------------------
    @functools.cached_property
    def _regions(self) -> tuple[np.ndarray, int, np.ndarray]:
        return stencil.fluid_regions(self.padded_flags, self._face_weights)

    @property
    def n_regions(self) -> int:
        """Number of face-connected FLUID regions."""
        return self._regions[1]

    @functools.cached_property
    def nullspace(self) -> ConstantNullSpace | None:
        """The operator's null space: constants on FLUID regions that touch no AIR.

        ``None`` when every FLUID region reaches an AIR cell (the operator is SPD).
        """
        labels, _, open_region = self._regions
        closed = (labels > 0) & ~open_region[labels]
        return ConstantNullSpace.of_regions(np.where(closed, labels, -1))

    @property
    def is_singular(self) -> bool:
        """True when some FLUID region touches no AIR cell (pure Neumann)."""
        return self.nullspace is not None

    # -- the operator -----------------------------------------------------
    def laplacian(self, dtype=np.float64) -> GridLaplacian:
        """The matrix-free pressure operator on this grid (see the module docstring)."""
        return GridLaplacian(self, dtype)
