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
"""

from __future__ import annotations

import functools
from enum import IntEnum

import numpy as np
import scipy.sparse as sp

from dcdm import kernels
from dcdm.kernels import arrays, codes, stencil
from dcdm.solvers.nullspace import ConstantNullSpace

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

    def __init__(self, flags, spacing: float = 1.0, boundary: CellType = CellType.SOLID):
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
        self._flags = arr.astype(np.int8, copy=True)
        self._flags.flags.writeable = False
        self.spacing = spacing
        self.boundary = CellType(boundary)

    def same_as(self, other: Grid) -> bool:
        """Whether ``other`` describes the same grid (flags, spacing and boundary)."""
        return other is self or (isinstance(other, Grid) and self.spacing == other.spacing
                                 and self.boundary == other.boundary
                                 and np.array_equal(self._flags, other._flags))

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
        return (
            f"Grid(shape={self.shape}, spacing={self.spacing}, boundary={self.boundary.name}, "
            f"{counts})"
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
        return stencil.fluid_regions(self.padded_flags)

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


class GridLaplacian:
    """Matrix-free masked 5/7-point Laplacian of a :class:`Grid`.

    Implements the operator contract: ``shape``, ``dtype``, ``matvec(x, out=None)``,
    ``diagonal()``, ``to_csr()``, ``grid`` and ``nullspace``. Vectors follow the
    grid's vector layout (C-order ravel of the grid).

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.problems import Grid
    >>> A = Grid(np.zeros((3, 3), dtype=np.int8), boundary=2).laplacian()
    >>> A.to_csr().toarray()[4, :].tolist()
    [0.0, -1.0, 0.0, -1.0, 4.0, -1.0, 0.0, -1.0, 0.0]
    """

    alpha: float = 1.0
    """The Laplacian's multiplier (see :class:`ShiftedGridLaplacian`)."""
    shift: np.ndarray | None = None
    """The diagonal term on the FLUID cells (``None``: none; see :class:`ShiftedGridLaplacian`)."""

    def __init__(self, grid: Grid, dtype=np.float64):
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        self.grid = grid
        self.dtype = dtype
        self.shape = (grid.size, grid.size)
        self.scale = self.alpha / grid.spacing**2  # the kernels' (and the multigrid's) factor

    @property
    def nullspace(self) -> ConstantNullSpace | None:
        return self.grid.nullspace

    @property
    def support(self) -> np.ndarray:
        """Boolean 1-D mask of the unknowns (FLUID cells); see :meth:`matvec_fluid`."""
        return self.grid.fluid.reshape(-1)

    def _vector(self, x):
        """``x`` as the kernels take it: an integer or boolean NumPy vector (or an
        ``np.matrix``) becomes a float one of the operator's dtype, never truncated."""
        if isinstance(x, np.ndarray) and (type(x) is not np.ndarray
                                          or x.dtype.kind not in "f"):
            return np.asarray(x).astype(self.dtype)
        return x

    def matvec_fluid(self, x, out=None):
        """``A @ x`` for ``x`` that is zero off :attr:`support` (about 2x faster than
        :meth:`matvec`; wrong for any other ``x``). The solvers use it for their
        Krylov vectors, which live on the FLUID cells."""
        x = self._vector(x)
        code, out = self._kernel_args(x, out, 1)
        kernels.laplacian_matvec_fluid(code, x.reshape(self.grid.shape),
                                       out.reshape(self.grid.shape), self.scale)
        return out

    def matvec(self, x, out=None):
        """Return ``A @ x`` (``x`` 1-D of length ``grid.size``); writes into ``out`` if given."""
        x = self._vector(x)
        fp, out = self._kernel_args(x, out, 0)
        kernels.laplacian_matvec(fp, x.reshape(self.grid.shape), out.reshape(self.grid.shape),
                                 self.scale)
        return out

    def _kernel_args(self, x, out, which: int):
        """The padded flags (``which=0``) or stencil code (1) in ``x``'s library and on its
        device, and ``out`` (a new array like ``x`` when None)."""
        if isinstance(x, np.ndarray):
            arr = self.grid.padded_flags if which == 0 else self.grid.stencil_code
            return arr, np.empty_like(x) if out is None else out
        if not hasattr(x, "dtype"):
            raise TypeError(f"x must be an array, got {type(x).__name__}")
        return self.grid.kernel_arrays(x)[which], x * 0 if out is None else out

    def __matmul__(self, x):
        return self.matvec(x)

    def diagonal(self) -> np.ndarray:
        """Diagonal of the operator as a 1-D array (1 on non-FLUID cells)."""
        return stencil.diagonal(self.grid.padded_flags, self.dtype, self.scale).reshape(-1)

    def to_csr(self) -> sp.csr_array:
        """Assemble the same operator as a ``scipy.sparse.csr_array``.

        Built by :func:`dcdm.kernels.stencil.assemble_csr` from the same padded flags and
        the same rule as the kernels; the tests check ``to_csr() @ x == matvec(x)``.
        """
        return stencil.assemble_csr(self.grid.padded_flags, self.scale, self.dtype)

    def aslinearoperator(self):
        """This operator as a ``scipy.sparse.linalg.LinearOperator``."""
        from scipy.sparse.linalg import LinearOperator

        return LinearOperator(self.shape, matvec=lambda v: self.matvec(np.ascontiguousarray(
            v.reshape(-1), dtype=self.dtype)), dtype=self.dtype)

    def __repr__(self) -> str:
        return f"GridLaplacian({self.grid!r}, dtype={self.dtype})"

    # -- alpha L + diag(shift): the operators of Newton systems and implicit steps ---------
    def shifted(self, shift=0.0, alpha: float = 1.0) -> ShiftedGridLaplacian:
        """``alpha * L + diag(shift)`` on this grid (:class:`ShiftedGridLaplacian`), with
        ``L`` the plain Laplacian of :attr:`grid`."""
        return ShiftedGridLaplacian(self.grid, shift, alpha, self.dtype)

    def _terms(self) -> tuple[float, np.ndarray]:
        return self.alpha, (np.zeros(self.grid.size) if self.shift is None else self.shift)

    def __add__(self, other):
        """The sum of two such operators on the same grid stays one (``alpha`` and ``shift``
        add); anything else is not handled here."""
        if not isinstance(other, GridLaplacian):
            return NotImplemented
        if not self.grid.same_as(other.grid):
            raise ValueError("cannot add grid operators of different grids")
        (a, s), (b, t) = self._terms(), other._terms()
        return ShiftedGridLaplacian(self.grid, s + t, a + b, np.result_type(self.dtype,
                                                                           other.dtype))

    def __mul__(self, c):
        """``c * (alpha L + D)`` for a real ``c > 0``."""
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, float, np.number)):
            return NotImplemented
        a, s = self._terms()
        return ShiftedGridLaplacian(self.grid, float(c) * s, float(c) * a, self.dtype)

    __rmul__ = __mul__


class ShiftedGridLaplacian(GridLaplacian):
    """``alpha * L + diag(shift)`` on a :class:`Grid`: the Laplacian ``L`` of
    :class:`GridLaplacian` times ``alpha > 0`` plus a diagonal ``shift >= 0`` on the FLUID
    cells (non-FLUID rows stay identity rows; ``shift`` there is ignored).

    The operators of Newton steps on PDE energies (``A + diag(phi''(u)) + lam I``),
    implicit diffusion (``I / dt + nu L``) and screened Poisson problems. The multigrid
    (``M="mg"``) and Gauss-Seidel (``M="rbgs"``) preconditioners follow the shift and
    ``alpha``; a closed FLUID region is singular only if the shift vanishes on all of it.
    Sums and positive multiples of operators of one grid stay in the class (``A + lam * B``).

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.problems import Grid
    >>> A = Grid(np.zeros((3, 3), dtype=np.int8), boundary=2).laplacian()
    >>> K = A.shifted(0.5, alpha=2.0)
    >>> float(K.to_csr()[4, 4]), float(K.to_csr()[4, 1])
    (8.5, -2.0)
    """

    def __init__(self, grid: Grid, shift=0.0, alpha: float = 1.0, dtype=np.float64):
        a = float(alpha)
        if not (np.isfinite(a) and a > 0):
            raise ValueError(f"alpha must be a positive finite number, got {alpha!r}")
        d = np.asarray(shift, dtype=np.float64)
        if d.ndim == 0:
            d = np.full(grid.size, float(d))
        elif d.shape in (grid.shape, (grid.size,)):
            d = d.reshape(-1)
        else:
            raise ValueError(f"shift must be a number, a vector of length {grid.size} or an "
                             f"array of the grid's shape {grid.shape}, got shape {d.shape}")
        if not np.isfinite(d).all():
            raise ValueError("shift must be finite")
        d = np.where(grid.fluid.reshape(-1), d, 0.0)
        if (d < 0).any():
            raise ValueError(f"shift must be >= 0 on the FLUID cells (the operator must stay "
                             f"positive semi-definite), got min {d.min():.3g}")
        d.flags.writeable = False
        self.alpha = a
        self.shift = d
        super().__init__(grid, dtype)
        self._device_shift = arrays.DeviceCache()

    @property
    def nullspace(self) -> ConstantNullSpace | None:
        ns = self.grid.nullspace
        if ns is None:
            return None
        shifted = np.unique(ns.labels[(ns.labels >= 0) & (self.shift > 0)])
        return ConstantNullSpace.of_regions(np.where(np.isin(ns.labels, shifted), -1,
                                                     ns.labels))

    def _add_shift(self, x, out):
        if isinstance(x, np.ndarray):
            out += self.shift.astype(out.dtype, copy=False) * x
        else:
            out += self._device_shift.get(x, lambda: arrays.asarray_like(self.shift, x)) * x
        return out

    def matvec_fluid(self, x, out=None):
        x = self._vector(x)
        return self._add_shift(x, super().matvec_fluid(x, out))

    def matvec(self, x, out=None):
        x = self._vector(x)
        return self._add_shift(x, super().matvec(x, out))

    def diagonal(self) -> np.ndarray:
        return (super().diagonal() + self.shift).astype(self.dtype)

    def to_csr(self) -> sp.csr_array:
        return sp.csr_array(super().to_csr() + sp.diags_array(self.shift.astype(self.dtype)))

    def __repr__(self) -> str:
        return (f"ShiftedGridLaplacian({self.grid!r}, alpha={self.alpha:g}, shift in "
                f"[{self.shift.min():.3g}, {self.shift.max():.3g}], dtype={self.dtype})")
