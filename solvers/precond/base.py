"""The preconditioner contract, the trivial preconditioners, and the name registry.

A preconditioner approximates ``A^{-1}``. It has two phases, ``build(A)``
(setup, timed separately by :func:`dcdm.solve`) and ``apply(r, out=None)``,
and declares ``is_linear`` and ``is_spd``: :func:`dcdm.solvers.cg` needs both,
:func:`dcdm.solvers.fcg` neither.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

__all__ = [
    "PRECONDITIONERS",
    "FunctionPreconditioner",
    "Identity",
    "Jacobi",
    "Preconditioner",
    "array_key",
    "check_array",
    "make_preconditioner",
    "require_grid",
    "require_host",
]


def require_grid(A, what: str, hint: str = ""):
    """``A.grid``, or a ``TypeError`` saying that ``what`` needs a grid operator."""
    grid = getattr(A, "grid", None)
    if grid is None:
        raise TypeError(
            f"{what} needs a grid operator (dcdm.problems.Grid.laplacian()), got "
            f"{type(A).__name__}{hint}"
        )
    return grid


def _single_threaded_blas():
    """Context: BLAS/LAPACK on one thread during set-up.

    Set-ups call LAPACK on small dense matrices (the multigrid coarse level, pyamg's
    coarse solver) right after Numba's OpenMP pool has run; OpenBLAS's own pool then
    spins against it (measured: ``pinvh`` of a 350 x 350 matrix 3.1 s instead of
    0.04 s). threadpoolctl limits OpenBLAS for the duration; without it, nothing changes.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a core dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class Preconditioner:
    """Base class: subclasses implement :meth:`_build` and :meth:`apply`.

    Attributes
    ----------
    is_linear, is_spd : bool
        Whether ``apply`` is a linear map, and a symmetric positive-definite one.
    preserves_support : bool
        Whether ``apply`` keeps vectors zero off a grid operator's FLUID cells.
    setup_time : float
        Seconds the last :meth:`build` took.
    """

    name: str = "preconditioner"
    #: ``apply`` takes NumPy arrays only (host factorisations: IC0/MIC0, pyamg)
    cpu_only: bool = False
    is_linear: bool = True
    is_spd: bool = True
    #: ``apply`` maps vectors that vanish off a grid operator's support (its FLUID
    #: cells) to such vectors; otherwise the solver zeroes those entries after it
    preserves_support: bool = False

    def __init__(self) -> None:
        self.setup_time = 0.0
        self.built = False

    def build(self, A) -> Preconditioner:
        """Set up for operator ``A`` (already passed through :func:`as_operator`); returns self."""
        t0 = time.perf_counter()
        with _single_threaded_blas():
            self._build(A)
        self.setup_time = time.perf_counter() - t0
        self.built = True
        return self

    def _build(self, A) -> None:  # pragma: no cover - trivial default
        pass

    def apply(self, r, out=None):
        """Return ``M r`` (an approximation of ``A^{-1} r``); never modifies ``r``."""
        raise NotImplementedError

    def __call__(self, r):
        return self.apply(r)

    def _require_numpy(self, r) -> None:
        """In ``apply`` of a ``cpu_only`` preconditioner: a ``TypeError`` unless ``r`` is a
        NumPy array (the solvers check ``b`` before set-up, :func:`require_host`)."""
        if not isinstance(r, np.ndarray):
            raise TypeError(
                f"M={self.name!r} is CPU-only: it runs on the CPU and takes NumPy arrays, got "
                f"{type(r).__name__}; move the vector to NumPy or choose M='jacobi' or M='mg'"
            )

    @property
    def stats(self) -> dict[str, Any]:
        """Setup time and memory figures, merged into ``SolveResult.stats``."""
        return {"preconditioner": self.name, "precond_setup_time": self.setup_time}


class Identity(Preconditioner):
    """No preconditioning: ``M r = r``."""

    name = "none"
    preserves_support = True

    def apply(self, r, out=None):
        if out is None:
            return r.copy() if hasattr(r, "copy") else r * 1
        out[...] = r
        return out


def array_key(r) -> tuple:
    """``(library, device, dtype)`` of an array: the key of per-device caches."""
    if isinstance(r, np.ndarray):
        return ("numpy", "cpu", str(r.dtype))
    from array_api_compat import device

    return (type(r).__module__.split(".")[0], str(device(r)), str(r.dtype))


def require_host(P, r) -> None:
    """Raise a ``TypeError`` if the CPU-only preconditioner ``P`` (``cpu_only = True``; a
    registered name, a class or an instance) is asked to work on ``r``, which is not a
    NumPy array. Called by the solvers before the (possibly costly) set-up."""
    if isinstance(r, np.ndarray):
        return
    if isinstance(P, str):
        P = preconditioner_class(P)
    host_matrix = sp.issparse(P) or isinstance(P, (np.ndarray, LinearOperator))
    if host_matrix or getattr(P, "cpu_only", False):
        label = (f"M (a {type(P).__name__})" if host_matrix
                 else f"M={getattr(P, 'name', type(P).__name__)!r}")
        raise TypeError(
            f"{label} is CPU-only (it runs on NumPy arrays on the host), but b is a "
            f"{type(r).__module__.split('.')[0]} {type(r).__name__}; use M='jacobi' or M='mg' "
            "(they run on any device), or solve with NumPy arrays"
        )


def check_array(r, what: str) -> None:
    """A ``TypeError`` unless ``r`` is an array of an array-API library (NumPy, torch, CuPy)."""
    if isinstance(r, np.ndarray):
        return
    from array_api_compat import array_namespace

    try:
        array_namespace(r)
    except TypeError:
        raise TypeError(
            f"{what} runs on NumPy arrays and array-API arrays (torch, CuPy), got "
            f"{type(r).__name__}"
        ) from None


def _same_namespace(ref: np.ndarray, r):
    """``ref`` as an array of ``r``'s kind (copied to its device once)."""
    from dcdm.kernels.xp import asarray_like

    return asarray_like(ref, r)


class Jacobi(Preconditioner):
    """Diagonal scaling ``M r = r / diag(A)``.

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
        from dcdm.kernels.xp import to_numpy

        from ..problem import host_dtype

        dtype = host_dtype(A.dtype)
        d = np.asarray(to_numpy(A.diagonal()), dtype=dtype)
        if not np.all(d > 0):
            raise ValueError(
                "M='jacobi' needs a positive diagonal (an SPD matrix has one); "
                f"found {int(np.sum(~(d > 0)))} entries <= 0"
            )
        self._inv = (1.0 / d).astype(dtype)
        self._cache: dict[tuple, Any] = {}

    def apply(self, r, out=None):
        if isinstance(r, np.ndarray):
            inv = self._inv
        else:  # moved to r's device once per (library, device, dtype)
            key = array_key(r)
            inv = self._cache.get(key)
            if inv is None:
                inv = self._cache[key] = _same_namespace(self._inv.astype(key[2].split(
                    ".")[-1]), r)
        if out is None:
            return r * inv
        if isinstance(out, np.ndarray):
            np.multiply(r, inv, out=out)
        else:
            out[...] = r * inv
        return out


class FunctionPreconditioner(Preconditioner):
    """A callable, LinearOperator, sparse matrix or dense array used as ``M`` (applies ``M @ r``).

    Parameters
    ----------
    M : callable or LinearOperator or sparse/dense matrix
        The action of the approximate inverse.
    is_linear, is_spd : bool, default True
        What the caller promises about ``M`` (as SciPy, it is trusted; a broken
        promise shows up as ``Reason.INDEFINITE_PRECONDITIONER``).
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
        if isinstance(r, np.ndarray):
            z = np.asarray(z, dtype=r.dtype).reshape(r.shape)
        if out is None:
            return z
        out[...] = z
        return out


# name -> "module:Class" (loaded on first use, so optional dependencies stay optional)
PRECONDITIONERS: dict[str, str] = {
    "none": "dcdm.solvers.precond.base:Identity",
    "jacobi": "dcdm.solvers.precond.base:Jacobi",
    "ic0": "dcdm.solvers.precond.ichol:IC0",
    "mic0": "dcdm.solvers.precond.ichol:MIC0",
    "amg": "dcdm.solvers.precond.amg:AMG",
    "mg": "dcdm.solvers.precond.mg:GeometricMG",
    "neural": "dcdm.solvers.precond.neural:Neural",
    "rbgs": "dcdm.solvers.precond.smoother:RedBlackGS",
}


def preconditioner_class(M):
    """The class a preconditioner name refers to (None for anything else); loads its module."""
    if not isinstance(M, str) or M.lower() not in PRECONDITIONERS:
        return None
    module, cls = PRECONDITIONERS[M.lower()].split(":")
    return getattr(importlib.import_module(module), cls)


def make_preconditioner(M, A, **options) -> Preconditioner | None:
    """Turn the ``M`` argument of a solver into a built :class:`Preconditioner`.

    Parameters
    ----------
    M : None, str, Preconditioner, callable, LinearOperator or matrix
        ``None`` means no preconditioner. A string names a registered
        preconditioner (``sorted(PRECONDITIONERS)``); a :class:`Preconditioner`
        instance is built on ``A`` unless already built; anything else is
        wrapped in :class:`FunctionPreconditioner`.
    A : Operator
        The system operator.
    **options
        Passed to the registered preconditioner's constructor.
    """
    if M is None:
        return None
    if isinstance(M, str):
        key = M.lower()
        if key not in PRECONDITIONERS:
            raise ValueError(
                f"M={M!r} is not a known preconditioner; choose one of {sorted(PRECONDITIONERS)} "
                "or pass a callable / LinearOperator / Preconditioner"
            )
        module, cls = PRECONDITIONERS[key].split(":")
        klass = getattr(importlib.import_module(module), cls)
        accepted = inspect.signature(klass).parameters
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise TypeError(
                f"M={M!r} got unexpected keyword argument(s) {unknown}; it accepts "
                f"{sorted(accepted) or 'no options'}"
            )
        return klass(**options).build(A)
    if options:
        raise TypeError(
            f"preconditioner options {sorted(options)} only apply when M is a name, "
            f"not a {type(M).__name__}"
        )
    if isinstance(M, Preconditioner):
        return M if M.built else M.build(A)
    P = FunctionPreconditioner(M)
    return P.build(A)
