"""The matrix-free pressure operator of a :class:`~dcdm.problems.Grid`, plain and shifted.

The stencil (and the vector layout) is the grid's (:mod:`dcdm.problems.grid`); the
operator runs the kernels of :mod:`dcdm.kernels` on the grid's cached arrays, in the
namespace and on the device of the vector it is applied to.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from dcdm import kernels
from dcdm.kernels import arrays, stencil
from dcdm.solvers.nullspace import ConstantNullSpace

__all__ = ["GridLaplacian", "ShiftedGridLaplacian"]


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

    def __init__(self, grid, dtype=np.float64):
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
        if self.grid.face_weights is not None:
            return self._coef_matvec(x, out)
        code, out = self._kernel_args(x, out, 1)
        kernels.laplacian_matvec_fluid(code, x.reshape(self.grid.shape),
                                       out.reshape(self.grid.shape), self.scale)
        return out

    def matvec(self, x, out=None):
        """Return ``A @ x`` (``x`` 1-D of length ``grid.size``); writes into ``out`` if given."""
        x = self._vector(x)
        if self.grid.face_weights is not None:
            return self._coef_matvec(x, out)
        fp, out = self._kernel_args(x, out, 0)
        kernels.laplacian_matvec(fp, x.reshape(self.grid.shape), out.reshape(self.grid.shape),
                                 self.scale)
        return out

    def _coef_matvec(self, x, out):
        """The weighted operator: one coefficient-stencil kernel serves any ``x``."""
        _, out = self._kernel_args(x, out, 1)
        diag, couplings = self.grid.coefficients(x)
        kernels.coef_matvec(diag, couplings, x.reshape(self.grid.shape),
                            out.reshape(self.grid.shape), self.scale)
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
        return stencil.diagonal(self.grid.padded_flags, self.dtype, self.scale,
                                self.grid.face_weights).reshape(-1)

    def to_csr(self) -> sp.csr_array:
        """Assemble the same operator as a ``scipy.sparse.csr_array``.

        Built by :func:`dcdm.kernels.stencil.assemble_csr` from the same padded flags and
        the same rule as the kernels; the tests check ``to_csr() @ x == matvec(x)``.
        """
        return stencil.assemble_csr(self.grid.padded_flags, self.scale, self.dtype,
                                    self.grid.face_weights)

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

    def __init__(self, grid, shift=0.0, alpha: float = 1.0, dtype=np.float64):
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
