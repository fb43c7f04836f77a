"""The inputs of a solve, validated: :class:`SystemInputs` and :func:`check_tolerances`.

Every error names the argument and suggests the fix. Inputs are never modified:
``b`` and ``x0`` are copied (in the working dtype, in ``b``'s array library and on
``b``'s device), and ``A`` is wrapped by :func:`~dcdm.solvers.operators.as_operator`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device

from dcdm.kernels import arrays

from .operators import as_operator, positive_form_signs, signed_operator

__all__ = ["SystemInputs", "check_callback", "check_same_array", "check_tolerances"]


def check_callback(callback) -> None:
    """A ``TypeError`` unless ``callback`` is None or callable as ``callback(xk)``."""
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback must be a callable taking the iterate (callback(xk)) or None, got "
            f"{type(callback).__name__}"
        )


def check_tolerances(rtol, atol, maxiter, n: int) -> tuple[float, float, int]:
    """Validate ``rtol``, ``atol`` and ``maxiter``; return them normalised."""
    out = []
    for name, val in (("rtol", rtol), ("atol", atol)):
        if isinstance(val, bool) or not isinstance(val, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(val).__name__}")
        val = float(val)
        if math.isnan(val) or val < 0:
            raise ValueError(f"{name} must be a number >= 0 (inf: stop at once), got {val}")
        out.append(val)
    if maxiter is None:
        maxiter = 10 * n
    elif isinstance(maxiter, bool) or not isinstance(maxiter, numbers.Integral):
        raise TypeError(f"maxiter must be an integer >= 1 or None, got {type(maxiter).__name__}")
    elif maxiter < 1:
        raise ValueError(f"maxiter must be >= 1 (or None for 10 * n), got {maxiter}")
    return out[0], out[1], int(maxiter)


def check_same_array(ref, v, ref_name: str, name: str) -> None:
    """Raise unless ``v`` is an array of the same library and on the same device as ``ref``."""
    if isinstance(ref, np.ndarray) and isinstance(v, np.ndarray):
        return
    same_lib = (isinstance(ref, np.ndarray) == isinstance(v, np.ndarray)
                and arrays.library(ref) == arrays.library(v))
    if not same_lib:
        raise TypeError(
            f"{name} is a {arrays.describe(v)} but {ref_name} is a {arrays.describe(ref)}: "
            f"{ref_name} and {name} must be arrays of the same library (the solve runs where "
            f"{ref_name} lives); convert {name} first"
        )
    d_ref, d_v = str(device(ref)), str(device(v))
    if d_ref != d_v:
        raise ValueError(
            f"{name} is on device {d_v} but {ref_name} is on device {d_ref}: move {name} to "
            f"{ref_name}'s device first (e.g. {name}.to({ref_name}.device))"
        )


def _as_vector(v, n: int, name: str, xp, grid_shape: tuple[int, ...] | None) -> Any:
    """Validate a right-hand side / initial guess; returns a 1-D view (not yet copied)."""
    dtype = arrays.host_dtype(v.dtype)
    if np.issubdtype(dtype, np.complexfloating):
        raise TypeError(
            f"{name} has complex dtype {v.dtype}; dcdm solves real systems only "
            "(solve the real and imaginary parts separately)"
        )
    if dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {v.dtype}")
    shape = tuple(v.shape)
    allowed = {(n,), (n, 1)}
    if grid_shape is not None:
        allowed.add(tuple(grid_shape))
    if shape not in allowed:
        hint = f" or the grid's shape {tuple(grid_shape)}" if grid_shape is not None else ""
        raise ValueError(
            f"{name} has shape {shape} but A has shape ({n}, {n}); "
            f"{name} must be 1-D with {n} entries{hint}"
        )
    return xp.reshape(v, (n,))


def _check_operator_array(A, b) -> None:
    """A host-only operator (SciPy/NumPy matrix) cannot take a device ``b``, and a torch /
    CuPy matrix only arrays of its own library and device."""
    if getattr(A, "host_only", False) and not isinstance(b, np.ndarray):
        raise TypeError(
            f"A is a {type(A).__name__} over NumPy/SciPy arrays but b is a "
            f"{arrays.describe(b)}: pass b as a NumPy array, or give A as a grid operator "
            "(dcdm.problems.Grid.laplacian(), which runs on any array library) or as a "
            "matrix of b's library"
        )
    like = getattr(A, "like", None)
    if like is not None:
        check_same_array(like, b, "A", "b")


class SystemInputs:
    """``A``, ``b``, ``x0`` and the tolerances of one solve, validated and copied.

    Any array-API ``b`` works (NumPy, torch tensors on any device, CuPy arrays) with a
    grid operator or a matrix of ``b``'s library: the vectors live in ``b``'s namespace
    on ``b``'s device for the whole solve, and the result comes back there.

    Attributes
    ----------
    A : Operator
    b : array, 1-D, working dtype (a private copy)
    x0 : array or None (a private copy)
    xp : array namespace of ``b``
    dtype : numpy.dtype
        The working precision (float32 or float64).
    out_shape : tuple
        The shape ``x`` is returned in (``b``'s, or 1-D for an ``(n, 1)`` ``b``).
    rtol, atol : float
    maxiter : int

    ``callback`` is only checked (callable or None).

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.solvers.inputs import SystemInputs
    >>> s = SystemInputs(np.eye(2), [1, 2], rtol=1e-8)
    >>> s.b.tolist(), s.dtype.name, s.maxiter
    ([1.0, 2.0], 'float64', 20)
    """

    def __init__(self, A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, callback=None):
        check_callback(callback)
        self.A = as_operator(A)
        self.stats: dict[str, Any] = {}
        n = self.A.shape[0]
        self.rtol, self.atol, self.maxiter = check_tolerances(rtol, atol, maxiter, n)
        if not hasattr(b, "shape") or isinstance(b, np.matrix):
            b = np.asarray(b)
        if isinstance(x0, np.matrix):
            x0 = np.asarray(x0)
        b = arrays.detached(b)
        xp = array_namespace(b)
        self.xp = xp
        _check_operator_array(self.A, b)
        grid = getattr(self.A, "grid", None)
        grid_shape = tuple(grid.shape) if grid is not None else None
        self.out_shape = (n,) if tuple(b.shape) == (n, 1) else tuple(b.shape)
        b1 = _as_vector(b, n, "b", xp, grid_shape)
        self.dtype = np.result_type(arrays.host_dtype(self.A.dtype), arrays.host_dtype(b1.dtype))
        if self.dtype not in (np.float32, np.float64):
            self.dtype = np.dtype(np.float64)
        xdtype = self.dtype if isinstance(b, np.ndarray) else getattr(xp, self.dtype.name)
        self.b = xp.asarray(b1, dtype=xdtype, copy=True)
        if not bool(xp.all(xp.isfinite(self.b))):
            raise ValueError("b contains NaN or Inf entries")
        self.x0 = None
        if x0 is not None:
            if not hasattr(x0, "shape"):
                x0 = np.asarray(x0) if isinstance(b, np.ndarray) else xp.asarray(
                    x0, dtype=xdtype, device=device(b))
            check_same_array(b, x0, "b", "x0")
            x0 = arrays.detached(x0)
            if np.issubdtype(arrays.host_dtype(x0.dtype), np.complexfloating):
                raise TypeError(f"x0 has complex dtype {x0.dtype}; dcdm solves real systems only")
            x1 = _as_vector(x0, n, "x0", xp, grid_shape)
            self.x0 = xp.asarray(x1, dtype=xdtype, copy=True)
            if not bool(xp.all(xp.isfinite(self.x0))):
                raise ValueError("x0 contains NaN or Inf entries")
        signs = positive_form_signs(self.A)
        if signs is not None:  # -A is SPD on the coupled rows: solve S A x = S b
            self.A = signed_operator(self.A, signs)
            self.b *= signs.astype(self.dtype)
            flipped = int(np.sum(signs < 0))
            self.stats["negated_rows"] = flipped
            self.stats["operator_sign"] = (
                f"negative (semi-)definite: {flipped} rows negated (S A x = S b, S = diag(+-1); "
                "x and ||b - A x|| are those of the system as given)")
