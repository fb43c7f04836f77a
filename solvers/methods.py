"""The registry of Krylov methods: ``method="cg" | "fcg" | "dcdm"``.

Each name is a :class:`MethodRecord`: the function (every one returns a
:class:`~dcdm.solvers.result.SolveResult`), whether it takes a preconditioner ``M``,
whether it needs a grid operator, and its own keyword options. :func:`dcdm.solve`
dispatches by it and splits its ``**options`` with it; the CLI, the demo's comparison
and the tests read the same records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .cg import cg
from .dcdm import dcdm
from .fcg import fcg
from .result import SolveResult

__all__ = ["METHODS", "MethodRecord", "method_record"]


@dataclass(frozen=True)
class MethodRecord:
    """A registered Krylov method.

    Attributes
    ----------
    name : str
    solve : callable
        ``solve(A, b, x0, *, M, rtol, atol, maxiter, callback, check, precond_options,
        **options) -> SolveResult``.
    takes_M : bool
        Whether it takes a preconditioner (DCDM's is its network).
    linear_M : bool
        Whether ``M`` must be linear and SPD (plain CG).
    needs_grid : bool
        Whether ``A`` must be a grid operator.
    options : tuple of str
        Its own keyword options (``solve()`` passes every other keyword to ``M``).
    """

    name: str
    solve: Callable[..., SolveResult]
    takes_M: bool = True
    linear_M: bool = False
    needs_grid: bool = False
    options: tuple[str, ...] = ()


#: name -> record
METHODS: dict[str, MethodRecord] = {r.name: r for r in (
    MethodRecord("cg", cg, linear_M=True),
    MethodRecord("fcg", fcg, options=("truncation",)),
    MethodRecord("dcdm", dcdm, takes_M=False, needs_grid=True,
                 options=("model", "network_dtype", "variant", "window", "second",
                          "stall_window")),
)}


def method_record(name) -> MethodRecord:
    """The record of a method name (case-insensitive); a clear error for anything else."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a string, got {type(name).__name__}")
    key = name.lower()
    if key not in METHODS:
        raise ValueError(f"method={name!r} is not a known method; choose one of {sorted(METHODS)}")
    return METHODS[key]
