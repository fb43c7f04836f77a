"""The preconditioner contract: :class:`Preconditioner`, and the checks every one shares.

A preconditioner approximates ``A^{-1}``. It has two phases, ``build(A)``
(setup, timed separately by :func:`dcdm.solve`) and ``apply(r, out=None)``,
and declares ``is_linear`` and ``is_spd``: :func:`dcdm.solvers.cg` needs both,
:func:`dcdm.solvers.fcg` neither. The names ``M="mg"``, ... are registered in
:mod:`dcdm.solvers.precond.registry`.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from typing import Any

import numpy as np

__all__ = ["Preconditioner", "check_array", "require_grid"]


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

    def __init_subclass__(cls, **kwargs) -> None:
        """Every ``apply`` is serialised by a per-instance lock: preconditioners keep work
        buffers between calls (the V-cycle's levels, sweep vectors), so two threads sharing
        one would corrupt each other's results (measured: 37,516 iterations instead of 8).
        Sharing one between threads is safe; the applications then take turns."""
        super().__init_subclass__(**kwargs)
        apply = cls.__dict__.get("apply")
        if apply is None or getattr(apply, "_serialised", False):
            return

        @functools.wraps(apply)
        def serialised(self, r, out=None):
            lock = self.__dict__.get("_apply_lock")
            if lock is None:
                lock = self.__dict__.setdefault("_apply_lock", threading.RLock())
            with lock:
                return apply(self, r, out)

        serialised._serialised = True
        cls.apply = serialised

    def build(self, A) -> Preconditioner:
        """Set up for operator ``A`` (already passed through :func:`as_operator`); returns self."""
        t0 = time.perf_counter()
        with _single_threaded_blas():
            self._build(A)
        self.setup_time = time.perf_counter() - t0
        self.built = True
        self.built_for = _fingerprint(A)
        return self

    def check_operator(self, A) -> None:
        """A ``ValueError`` unless this (built) preconditioner was built for ``A``: the
        same shape and, for grid operators, the same grid (flags, spacing, boundary)."""
        mine, theirs = getattr(self, "built_for", None), _fingerprint(A)
        if mine is not None and mine != theirs:
            raise ValueError(
                f"M={self.name!r} was built for another operator ({mine[0]}) than A "
                f"({theirs[0]}); build it on A (M.build(A)) or pass M={self.name!r} by name"
            )

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


def _fingerprint(A) -> tuple:
    """What a built preconditioner must match: a description, shape and grid identity."""
    shape = tuple(getattr(A, "shape", ()))
    grid = getattr(A, "grid", None)
    if grid is None:
        return (f"shape {shape}", shape)
    key = (grid.flags.tobytes(), grid.spacing, int(grid.boundary))
    return (f"grid {grid.shape}, spacing {grid.spacing}", shape, hash(key))


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
