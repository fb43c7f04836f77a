"""Newton-type minimisation with inner solves by dcdm (``dcdm.optimize``).

:func:`minimize` in ``scipy.optimize.minimize``'s shape: ``method="gns"``
(gradient-regularized Newton with Gradient-Normalized Smoothness, Semenov, Jaggi & Doikov
2025) and the baselines of its reference code (``"gradient"``, ``"super-newton"``). Every
trial step of a second-order method solves ``(H + lam B) d = -g``, SPD whenever ``H`` is
positive semi-definite: by :func:`dcdm.cg` with any preconditioner, matrix-free through
``hessp``, or by a factorisation (``inner="direct"``). Torch objectives: :func:`torch_objective`
and :func:`torch_least_squares` (autograd HVPs, Gauss-Newton products).
"""

from .autograd import TorchObjective, torch_least_squares, torch_objective
from .baselines import cubic_newton, gradient_method, super_newton
from .driver import forcing
from .gns import gns
from .minimize import METHODS, minimize
from .result import IterationRecord, OptimizeResult, TrialRecord

__all__ = ["METHODS", "IterationRecord", "OptimizeResult", "TorchObjective", "TrialRecord",
           "cubic_newton", "forcing", "gns", "gradient_method", "minimize", "super_newton",
           "torch_least_squares", "torch_objective"]
