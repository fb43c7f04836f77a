"""Diagonal scaling (``M="jacobi"``): :class:`Jacobi`, ``M r = r / diag(A)``."""

from __future__ import annotations

import numpy as np

from dcdm.kernels import arrays

from .base import Preconditioner

__all__ = ["Jacobi"]


class Jacobi(Preconditioner):
    """Diagonal scaling ``M r = r / diag(A)``, on any array library and device.

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.solvers import as_operator
    >>> M = Jacobi().build(as_operator(np.diag([2.0, 4.0])))
    >>> M.apply(np.ones(2)).tolist()
    [0.5, 0.25]
    """

    name = "jacobi"
    preserves_support = True

    def _build(self, A) -> None:
        if not hasattr(A, "diagonal"):
            raise TypeError(
                f"M='jacobi' needs the operator's diagonal; {type(A).__name__} has no diagonal(). "
                "Pass a sparse matrix or a grid operator, or choose another preconditioner"
            )
        dtype = arrays.host_dtype(A.dtype)
        d = np.asarray(arrays.to_numpy(A.diagonal()), dtype=dtype)
        if not np.all(d > 0):
            raise ValueError(
                "M='jacobi' needs a positive diagonal (an SPD matrix has one); "
                f"found {int(np.sum(~(d > 0)))} entries <= 0"
            )
        self._inv = (1.0 / d).astype(dtype)
        self._device = arrays.DeviceCache()

    @property
    def inverse_diagonal(self) -> np.ndarray:
        """``D^-1`` as a host array: the preconditioner is ``diag(inverse_diagonal)``
        (what :func:`dcdm.spectrum.slq` needs for an unbiased, uniform measure)."""
        return self._inv

    def apply(self, r, out=None):
        if isinstance(r, np.ndarray):
            inv = self._inv
        else:  # moved to r's device once per (library, device, dtype)
            inv = self._device.get(r, lambda: arrays.asarray_like(
                self._inv, r, arrays.host_dtype(r.dtype)))
        if out is None:
            return r * inv
        if isinstance(out, np.ndarray):
            np.multiply(r, inv, out=out)
        else:
            out[...] = r * inv
        return out
