"""A user's callable, LinearOperator or matrix as ``M``: :class:`FunctionPreconditioner`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from .base import Preconditioner

__all__ = ["FunctionPreconditioner"]


class FunctionPreconditioner(Preconditioner):
    """A callable, LinearOperator, sparse matrix or dense array used as ``M`` (applies ``M @ r``).

    Parameters
    ----------
    M : callable or LinearOperator or sparse/dense matrix
        The action of the approximate inverse.
    is_linear, is_spd : bool, default True
        What the caller promises about ``M`` (as SciPy, it is trusted; a broken
        promise shows up as ``Reason.INDEFINITE_PRECONDITIONER``).

    Examples
    --------
    >>> import numpy as np
    >>> P = FunctionPreconditioner(lambda r: r / 2).build(None)
    >>> P.apply(np.ones(2)).tolist()
    [0.5, 0.5]
    """

    name = "user"

    def __init__(self, M, *, is_linear: bool = True, is_spd: bool = True):
        super().__init__()
        if sp.issparse(M) or isinstance(M, np.ndarray):
            mat = M
            self._fn = lambda r: mat @ r
        elif isinstance(M, LinearOperator):
            self._fn = M.matvec
        elif callable(M):
            self._fn = M
        else:
            raise TypeError(
                f"M must be a preconditioner name, a Preconditioner, a callable, a "
                f"LinearOperator or a matrix; got {type(M).__name__}"
            )
        self.is_linear = is_linear
        self.is_spd = is_spd

    def apply(self, r, out=None):
        z = self._fn(r)
        if z is None:
            raise TypeError(
                "M returned None: a preconditioner callable must return M r, an array of "
                f"r's shape {tuple(r.shape)} (did it write in place and forget to return?)"
            )
        if tuple(getattr(z, "shape", np.shape(z))) not in (tuple(r.shape), (r.shape[0], 1)):
            raise ValueError(
                f"M returned an array of shape {tuple(np.shape(z))} for r of shape "
                f"{tuple(r.shape)}: a preconditioner must map a vector to one of the same size"
            )
        if isinstance(r, np.ndarray):
            z = np.asarray(z, dtype=r.dtype).reshape(r.shape)
        if out is None:
            return z
        out[...] = z
        return out
