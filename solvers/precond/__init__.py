"""Preconditioners: the contract, the registry of names, and the implementations."""

from .base import (
    PRECONDITIONERS,
    FunctionPreconditioner,
    Identity,
    Jacobi,
    Preconditioner,
    make_preconditioner,
)

__all__ = [
    "PRECONDITIONERS",
    "FunctionPreconditioner",
    "Identity",
    "Jacobi",
    "Preconditioner",
    "make_preconditioner",
]
