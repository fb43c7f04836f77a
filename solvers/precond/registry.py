"""The registry of preconditioner names and :func:`make_preconditioner`.

Each name (``M="mg"``, ...) is a :class:`PreconditionerRecord`: where its class lives
(loaded on first use, so optional dependencies stay optional) and what a caller needs to
know without loading it: linear, SPD, needs a grid, CPU-only, its options. ``solve()``,
the CLI, the demo's comparison and the tests read the same records; a test checks that
every record agrees with its class.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from dcdm.kernels import arrays

from ..restriction import RestrictedOperator
from .base import Preconditioner
from .function import FunctionPreconditioner

__all__ = [
    "PRECONDITIONERS",
    "PreconditionerRecord",
    "make_preconditioner",
    "preconditioner_class",
    "require_host",
    "setup_preconditioner",
]


@dataclass(frozen=True)
class PreconditionerRecord:
    """A registered preconditioner.

    Attributes
    ----------
    name : str
        The ``M=`` name.
    target : str
        ``"module:Class"``, imported by :meth:`load`.
    is_linear, is_spd : bool
        Whether ``apply`` is a linear map / an SPD one (plain CG needs both).
    needs_grid : bool
        Builds only on a grid operator (``dcdm.problems.Grid.laplacian()``).
    cpu_only : bool
        ``apply`` takes NumPy arrays only.
    options : tuple of str
        The constructor's keyword options.
    """

    name: str
    target: str
    is_linear: bool = True
    is_spd: bool = True
    needs_grid: bool = False
    cpu_only: bool = False
    options: tuple[str, ...] = ()

    @property
    def for_cg(self) -> bool:
        """Whether plain CG can use it (linear and SPD); otherwise flexible CG."""
        return self.is_linear and self.is_spd

    def load(self) -> type[Preconditioner]:
        """The class (its module imported now)."""
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


_P = "dcdm.solvers.precond"
#: name -> record; ``sorted(PRECONDITIONERS)`` are the valid ``M=`` names
PRECONDITIONERS: dict[str, PreconditionerRecord] = {r.name: r for r in (
    PreconditionerRecord("none", f"{_P}.identity:Identity"),
    PreconditionerRecord("jacobi", f"{_P}.jacobi:Jacobi"),
    PreconditionerRecord("ic0", f"{_P}.ichol:IC0", cpu_only=True),
    PreconditionerRecord("mic0", f"{_P}.ichol:MIC0", cpu_only=True, options=("tau", "sigma")),
    PreconditionerRecord("amg", f"{_P}.amg:AMG", cpu_only=True,
                         options=("amg", "max_levels", "max_coarse")),
    PreconditionerRecord("mg", f"{_P}.mg:GeometricMG", needs_grid=True,
                         options=("nu", "max_coarse", "boundary_sweeps", "coarsening", "nu_coarse",
                                  "precision")),
    PreconditionerRecord("neural", f"{_P}.neural:Neural", is_linear=False, is_spd=False,
                         needs_grid=True, options=("model", "network_dtype")),
    PreconditionerRecord("rbgs", f"{_P}.rbgs:RedBlackGS", needs_grid=True, options=("sweeps",)),
)}


def _record(M: str) -> PreconditionerRecord:
    key = M.lower()
    if key not in PRECONDITIONERS:
        raise ValueError(
            f"M={M!r} is not a known preconditioner; choose one of {sorted(PRECONDITIONERS)} "
            "or pass a callable / LinearOperator / Preconditioner"
        )
    return PRECONDITIONERS[key]


def preconditioner_class(M):
    """The class a preconditioner name refers to (None for anything else); loads its module."""
    if not isinstance(M, str) or M.lower() not in PRECONDITIONERS:
        return None
    return PRECONDITIONERS[M.lower()].load()


def require_host(P, r) -> None:
    """Raise a ``TypeError`` if the CPU-only preconditioner ``P`` (a registered name, a
    class or an instance with ``cpu_only = True``, or a SciPy/NumPy matrix) is asked to
    work on ``r``, which is not a NumPy array. The solvers call it before the (possibly
    costly) set-up."""
    if isinstance(r, np.ndarray):
        return
    if isinstance(P, str) and P.lower() in PRECONDITIONERS:
        cpu_only, label = PRECONDITIONERS[P.lower()].cpu_only, f"M={P.lower()!r}"
    else:
        host_matrix = sp.issparse(P) or isinstance(P, (np.ndarray, LinearOperator))
        cpu_only = host_matrix or getattr(P, "cpu_only", False)
        label = (f"M (a {type(P).__name__})" if host_matrix
                 else f"M={getattr(P, 'name', type(P).__name__)!r}")
    if cpu_only:
        raise TypeError(
            f"{label} is CPU-only (it runs on NumPy arrays on the host), but b is a "
            f"{arrays.describe(r)}; use M='jacobi' or M='mg' (they run on any device), or "
            "solve with NumPy arrays"
        )


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

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.solvers import as_operator
    >>> P = make_preconditioner("jacobi", as_operator(np.diag([2.0, 4.0])))
    >>> P.name, P.apply(np.ones(2)).tolist()
    ('jacobi', [0.5, 0.25])
    """
    if M is None:
        return None
    if isinstance(M, str):
        record = _record(M)
        unknown = sorted(set(options) - set(record.options))
        if unknown:
            raise TypeError(
                f"M={M!r} got unexpected keyword argument(s) {unknown}; it accepts "
                f"{sorted(record.options) or 'no options'}"
            )
        if record.needs_grid and isinstance(A, RestrictedOperator):  # on a subset of cells
            from .restricted import RestrictedPreconditioner

            inner = record.load()(**options).build(A.base)
            return RestrictedPreconditioner(inner, A).build(A)
        return record.load()(**options).build(A)
    if options:
        raise TypeError(
            f"preconditioner options {sorted(options)} only apply when M is a name, "
            f"not a {type(M).__name__}"
        )
    if isinstance(M, Preconditioner):
        if not M.built:
            return M.build(A)
        M.check_operator(A)
        return M
    return FunctionPreconditioner(M).build(A)


def setup_preconditioner(M, A, b, options: dict | None, *, method: str,
                         linear_spd: bool = False) -> tuple[Preconditioner | None, float]:
    """The preconditioner of a Krylov solve on ``A`` with right-hand side ``b``, built, and
    its set-up time: refuses a CPU-only ``M`` for a device ``b`` before the set-up, and with
    ``linear_spd`` (plain CG) a ``M`` that is not linear and SPD."""
    require_host(M, b)
    P = make_preconditioner(M, A, **(options or {}))
    if linear_spd and P is not None and not (P.is_linear and P.is_spd):
        raise ValueError(
            f"M={getattr(P, 'name', M)!r} is not a linear SPD preconditioner, which "
            f"{method.upper()} requires; use method='fcg' (flexible CG) or method='dcdm' for "
            "a non-linear preconditioner"
        )
    return P, (P.setup_time if P is not None else 0.0)
