"""Krylov solvers, operators, preconditioners and the :func:`solve` front door.

Importing this package needs only NumPy, SciPy and array-api-compat (no torch, pyamg,
numba or CuPy: they load when a feature that needs them is used).
"""

from .cg import cg
from .dcdm import dcdm
from .fcg import fcg
from .inputs import SystemInputs
from .methods import METHODS, MethodRecord
from .nullspace import ConstantNullSpace, detect_nullspace
from .operators import Operator, as_operator
from .precond import PRECONDITIONERS, Preconditioner, PreconditionerRecord, make_preconditioner
from .restriction import RestrictedOperator, restrict
from .result import ConvergenceError, Reason, SolveResult
from .scipy_compat import scipy_cg
from .solve import solve
from .stopping import StoppingRule
from .workspace import SolveWorkspace

__all__ = [
    "METHODS",
    "PRECONDITIONERS",
    "ConstantNullSpace",
    "ConvergenceError",
    "MethodRecord",
    "Operator",
    "Preconditioner",
    "PreconditionerRecord",
    "Reason",
    "RestrictedOperator",
    "SolveResult",
    "SolveWorkspace",
    "StoppingRule",
    "SystemInputs",
    "as_operator",
    "cg",
    "dcdm",
    "detect_nullspace",
    "fcg",
    "make_preconditioner",
    "restrict",
    "scipy_cg",
    "solve",
]
