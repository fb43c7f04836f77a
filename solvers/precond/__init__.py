"""Preconditioners: the contract, the registry of names, and the implementations."""

from .amg import AMG
from .base import (
    PRECONDITIONERS,
    FunctionPreconditioner,
    Identity,
    Jacobi,
    Preconditioner,
    make_preconditioner,
)
from .ichol import IC0, MIC0

__all__ = [
    "AMG",
    "IC0",
    "MIC0",
    "PRECONDITIONERS",
    "FunctionPreconditioner",
    "Identity",
    "Jacobi",
    "Preconditioner",
    "make_preconditioner",
]
