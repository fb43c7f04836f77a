"""Preconditioners: the contract, the registry of names, and the implementations.

Only the contract and the registry load with this package; each implementation's module
(and what it needs: numba, pyamg, torch) loads when its name is first used, except the
classical ones re-exported below, which need only NumPy and SciPy to import.
"""

from .amg import AMG
from .base import Preconditioner
from .function import FunctionPreconditioner
from .ichol import IC0, MIC0
from .identity import Identity
from .jacobi import Jacobi
from .registry import PRECONDITIONERS, PreconditionerRecord, make_preconditioner

__all__ = [
    "AMG",
    "IC0",
    "MIC0",
    "PRECONDITIONERS",
    "FunctionPreconditioner",
    "Identity",
    "Jacobi",
    "Preconditioner",
    "PreconditionerRecord",
    "make_preconditioner",
]
