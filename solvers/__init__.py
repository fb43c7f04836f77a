"""Krylov solvers, operators, preconditioners and the :func:`solve` front door.

Importing this package needs only NumPy, SciPy and array-api-compat.
"""

from .cg import cg
from .dcdm import dcdm
from .fcg import fcg
from .nullspace import ConstantNullSpace, detect_nullspace
from .operators import Operator, as_operator
from .precond import PRECONDITIONERS, Preconditioner, make_preconditioner
from .problem import LinearProblem
from .result import ConvergenceError, Reason, SolveResult
from .scipy_compat import scipy_cg
from .solve import METHODS, solve

__all__ = [
    "METHODS",
    "PRECONDITIONERS",
    "ConstantNullSpace",
    "ConvergenceError",
    "LinearProblem",
    "Operator",
    "Preconditioner",
    "Reason",
    "SolveResult",
    "as_operator",
    "cg",
    "dcdm",
    "detect_nullspace",
    "fcg",
    "make_preconditioner",
    "scipy_cg",
    "solve",
]
