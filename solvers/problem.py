"""The shared set-up and tear-down of every Krylov solve: :class:`LinearProblem`.

It validates the arguments (each error names the argument and the fix),
fixes the working dtype and array namespace, projects singular systems onto
the range of ``A``, evaluates the stopping rule, and assembles the
:class:`~dcdm.solvers.result.SolveResult` with the true residual recomputed
at exit. The Krylov loops themselves (``cg.py``, ``fcg.py``) only iterate.

Stopping rule (one definition for every solver and benchmark)::

    ||b - A x||_2 <= max(rtol * ||b||_2, atol)

on the true residual. For a singular system ``b`` is first projected onto the
range of ``A`` (its null-space component cannot be reduced), and that
projected ``b`` is the one in the rule; ``stats["nullspace"]`` says so.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace, device

from dcdm import kernels

from .operators import as_operator
from .result import ConvergenceError, Reason, SolveResult

__all__ = ["LinearProblem", "check_tolerances"]


def check_tolerances(rtol, atol, maxiter, n: int) -> tuple[float, float, int]:
    """Validate ``rtol``, ``atol`` and ``maxiter``; return them normalised."""
    out = []
    for name, val in (("rtol", rtol), ("atol", atol)):
        if isinstance(val, bool) or not isinstance(val, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(val).__name__}")
        val = float(val)
        if not math.isfinite(val) or val < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {val}")
        out.append(val)
    if maxiter is None:
        maxiter = 10 * n
    elif isinstance(maxiter, bool) or not isinstance(maxiter, numbers.Integral):
        raise TypeError(f"maxiter must be an integer >= 1 or None, got {type(maxiter).__name__}")
    elif maxiter < 1:
        raise ValueError(f"maxiter must be >= 1 (or None for 10 * n), got {maxiter}")
    return out[0], out[1], int(maxiter)


def host_dtype(dtype) -> np.dtype:
    """The NumPy dtype of the same name as an array library's ``dtype`` (torch's
    ``torch.float32`` -> ``float32``); NumPy and CuPy dtypes are NumPy dtypes already.
    A floating dtype NumPy lacks (``bfloat16``) maps to float32."""
    if isinstance(dtype, np.dtype):
        return dtype
    name = str(dtype).rsplit(".", 1)[-1]
    try:
        return np.dtype(name)
    except TypeError:
        if "complex" in name:
            return np.dtype(np.complex128)
        if "float" in name:
            return np.dtype(np.float32)
        raise TypeError(f"unsupported array dtype {dtype}") from None


def _array_kind(v) -> str:
    """What the messages call the array: ``NumPy array``, ``torch Tensor``, ``cupy ndarray``."""
    if isinstance(v, np.ndarray):
        return "NumPy array"
    return f"{type(v).__module__.split('.')[0]} {type(v).__name__}"


def _device_of(v) -> str:
    return str(device(v))


def check_same_array(ref, v, ref_name: str, name: str) -> None:
    """Raise unless ``v`` is an array of the same library and on the same device as ``ref``."""
    if isinstance(ref, np.ndarray) and isinstance(v, np.ndarray):
        return
    same_lib = (isinstance(ref, np.ndarray) == isinstance(v, np.ndarray)
                and type(ref).__module__.split(".")[0] == type(v).__module__.split(".")[0])
    if not same_lib:
        raise TypeError(
            f"{name} is a {_array_kind(v)} but {ref_name} is a {_array_kind(ref)}: {ref_name} "
            f"and {name} must be arrays of the same library (the solve runs where "
            f"{ref_name} lives); convert {name} first"
        )
    d_ref, d_v = _device_of(ref), _device_of(v)
    if d_ref != d_v:
        raise ValueError(
            f"{name} is on device {d_v} but {ref_name} is on device {d_ref}: move {name} to "
            f"{ref_name}'s device first (e.g. {name}.to({ref_name}.device))"
        )


def _as_vector(v, n: int, name: str, xp, grid_shape: tuple[int, ...] | None) -> Any:
    """Validate a right-hand side / initial guess; returns a 1-D view (not yet copied)."""
    dtype = host_dtype(v.dtype)
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


def _detached(v):
    """A torch tensor without its autograd history (the solve is not differentiated, and
    in-place updates of a tensor that requires grad would fail); anything else unchanged."""
    if type(v).__module__.startswith("torch") and hasattr(v, "detach"):
        return v.detach()
    return v


def _check_operator_array(A, b) -> None:
    """A host-only operator (SciPy/NumPy matrix) cannot take a device ``b``, and a torch /
    CuPy matrix only arrays of its own library and device."""
    if getattr(A, "host_only", False) and not isinstance(b, np.ndarray):
        raise TypeError(
            f"A is a {type(A).__name__} over NumPy/SciPy arrays but b is a {_array_kind(b)}: "
            "pass b as a NumPy array, or give A as a grid operator "
            "(dcdm.problems.Grid.laplacian(), which runs on any array library) or as a "
            "matrix of b's library"
        )
    like = getattr(A, "like", None)
    if like is not None:
        check_same_array(like, b, "A", "b")


class LinearProblem:
    """``A x = b`` ready to iterate on.

    Any array-API ``b`` works (NumPy, torch tensors on any device, CuPy arrays) with a
    grid operator or a matrix of ``b``'s library: the vectors live in ``b``'s namespace
    on ``b``'s device for the whole solve, and the result comes back there.

    Parameters
    ----------
    A, b, x0, rtol, atol, maxiter
        As in :func:`dcdm.solve`.

    Attributes
    ----------
    A : Operator
    b : array, 1-D, working dtype (a private copy, projected if singular)
    xp : array namespace of ``b``
    dtype : numpy.dtype
        The working precision (float32 or float64).
    tol : float
        The absolute tolerance on ``||b - A x||``.
    nullspace : ConstantNullSpace or None
    """

    def __init__(self, A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None):
        self.A = as_operator(A)
        n = self.A.shape[0]
        self.rtol, self.atol, self.maxiter = check_tolerances(rtol, atol, maxiter, n)
        if not hasattr(b, "shape"):
            b = np.asarray(b)
        b = _detached(b)
        xp = array_namespace(b)
        self.xp = xp
        _check_operator_array(self.A, b)
        grid = getattr(self.A, "grid", None)
        grid_shape = tuple(grid.shape) if grid is not None else None
        self.out_shape = (n,) if tuple(b.shape) == (n, 1) else tuple(b.shape)
        b1 = _as_vector(b, n, "b", xp, grid_shape)
        self.dtype = np.result_type(host_dtype(self.A.dtype), host_dtype(b1.dtype))
        if self.dtype not in (np.float32, np.float64):
            self.dtype = np.dtype(np.float64)
        xdtype = self.dtype if isinstance(b, np.ndarray) else getattr(xp, self.dtype.name)
        self.b = xp.asarray(b1, dtype=xdtype, copy=True)
        if not bool(xp.all(xp.isfinite(self.b))):
            raise ValueError("b contains NaN or Inf entries")
        if x0 is None:
            self.x0 = None
        else:
            if not hasattr(x0, "shape"):
                x0 = np.asarray(x0) if isinstance(b, np.ndarray) else xp.asarray(
                    x0, dtype=xdtype, device=device(b))
            check_same_array(b, x0, "b", "x0")
            x0 = _detached(x0)
            if np.issubdtype(host_dtype(x0.dtype), np.complexfloating):
                raise TypeError(f"x0 has complex dtype {x0.dtype}; dcdm solves real systems only")
            x1 = _as_vector(x0, n, "x0", xp, grid_shape)
            self.x0 = xp.asarray(x1, dtype=xdtype, copy=True)
            if not bool(xp.all(xp.isfinite(self.x0))):
                raise ValueError("x0 contains NaN or Inf entries")
        self.stats: dict[str, Any] = {}
        self.bnorm = self.norm(self.b)
        # Grid operators: rows off the support (non-FLUID cells) are decoupled identity
        # rows, so x = b there exactly; the iteration runs on vectors that vanish there
        # and uses the operator's faster support-only mat-vec.
        support = getattr(self.A, "support", None)
        self.matvec = self.A.matvec
        self._off = None
        if support is not None and hasattr(self.A, "matvec_fluid"):
            self._off = self._off_support(support, grid)
            self._b_off = self.b[self._off]
            self.b[self._off] = 0
            if self.x0 is not None:
                self.x0[self._off] = 0
            self.matvec = self.A.matvec_fluid
        self.nullspace = getattr(self.A, "nullspace", None)
        if self.nullspace is not None:
            removed = self.nullspace.residual(self.b)
            self.nullspace.project(self.b, out=self.b)
            self.stats["nullspace"] = (
                f"singular operator: {self.nullspace.dimension} constant null vector(s); "
                "b and the iterates are projected onto the range of A"
            )
            self.stats["nullspace_dimension"] = self.nullspace.dimension
            self.stats["rhs_nullspace_component"] = removed
            self.bnorm = self.norm(self.b)
        self.tol = max(self.rtol * self.bnorm, self.atol)
        self.stats["tolerance"] = self.tol
        self._stalls = 0
        self._last_true = math.inf
        self.stats["dtype"] = str(self.dtype)
        self._t0 = time.perf_counter()

    def _off_support(self, support, grid):
        """Indices of the unknowns off the support, in ``b``'s namespace and on its device
        (for a grid, from its cached device copy of the FLUID mask: nothing crosses)."""
        if isinstance(self.b, np.ndarray):
            return np.flatnonzero(~np.asarray(support))
        xp = self.xp
        if grid is not None and hasattr(grid, "kernel_arrays"):
            fluid = grid.kernel_arrays(self.b)[2]
            return xp.nonzero(~xp.reshape(fluid, (-1,)))[0]
        from dcdm.kernels.xp import asarray_like

        return asarray_like(np.flatnonzero(~np.asarray(support)), self.b)

    # -- small helpers the loops use ----------------------------------------
    def norm(self, v) -> float:
        return math.sqrt(kernels.dot(v, v))

    def project(self, v):
        """Remove the null-space component of ``v`` in place (no-op for SPD operators)."""
        if self.nullspace is not None:
            self.nullspace.project(v, out=v)
        return v

    def confirm(self, x, r) -> tuple[float, Reason | None]:
        """The recursive residual met the tolerance: overwrite ``r`` with the true one.

        Returns its norm and the verdict: a converged reason, ``STAGNATION``
        when three confirmations in a row failed to cut the true residual by
        10% (the rounding floor of the working precision), or ``None``: go on
        from the true residual.
        """
        self.residual(x, out=r)
        rnorm = self.norm(r)
        if not math.isfinite(rnorm):
            return rnorm, Reason.NAN_OR_INF
        if rnorm <= self.tol:
            return rnorm, self.converged_reason()
        self._stalls = self._stalls + 1 if rnorm >= 0.9 * self._last_true else 0
        self._last_true = min(rnorm, self._last_true)
        self.stats["residual_restarts"] = self.stats.get("residual_restarts", 0) + 1
        if self._stalls >= 3:
            return rnorm, Reason.STAGNATION
        return rnorm, None

    def precondition(self, P, r, z):
        """``z = M r`` (``z = r`` without ``M``), kept on the support and in the range of A."""
        if P is None:
            return r
        z = P.apply(r, out=z)
        if self._off is not None and not getattr(P, "preserves_support", False):
            z[self._off] = 0
        return self.project(z)

    def converged_reason(self) -> Reason:
        if self.rtol * self.bnorm >= self.atol:
            return Reason.CONVERGED_RTOL
        return Reason.CONVERGED_ATOL

    def start(self):
        """Return ``(x, r)``: a private copy of ``x0`` (or zeros) and ``b - A x``."""
        xp = self.xp
        if self.x0 is None:
            x = xp.zeros_like(self.b)
            r = xp.asarray(self.b, copy=True)
        else:
            x = xp.asarray(self.x0, copy=True)
            self.project(x)
            r = self.residual(x)
        self._t0 = time.perf_counter()
        return x, r

    def residual(self, x, out=None):
        """True residual ``b - A x`` of an iterate (projected for singular systems)."""
        out = self.matvec(x, out)
        out *= -1
        out += self.b
        return self.project(out)

    def finish(
        self,
        x,
        reason: Reason,
        iterations: int,
        history: list[float],
        *,
        setup_time: float = 0.0,
        precond=None,
        method: str,
        check: bool = False,
        extra: dict | None = None,
    ) -> SolveResult:
        """Recompute the true residual, build the result, raise if ``check`` and failed."""
        self.project(x)
        if self._off is not None:
            x[self._off] = self._b_off
            self.b[self._off] = self._b_off
            self.matvec = self.A.matvec
        rnorm = self.norm(self.residual(x))
        if not math.isfinite(rnorm) and reason.converged:
            reason = Reason.NAN_OR_INF
        solve_time = time.perf_counter() - self._t0
        history = list(history)
        if history:
            history[-1] = rnorm
        else:
            history = [rnorm]
        stats = dict(self.stats)
        stats["method"] = method
        stats["preconditioner"] = "none"
        if precond is not None:
            stats.update(precond.stats)
        if extra:
            stats.update(extra)
        result = SolveResult(
            x=self.xp.reshape(x, self.out_shape),
            reason=reason,
            iterations=iterations,
            residual_norm=rnorm,
            residual_history=np.asarray(history),
            setup_time=setup_time,
            solve_time=solve_time,
            stats=stats,
        )
        if check and not result.converged:
            raise ConvergenceError(result)
        return result


def call_callback(callback: Callable | None, x) -> None:
    if callback is not None:
        callback(x)
