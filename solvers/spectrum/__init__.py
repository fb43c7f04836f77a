"""Spectra of operators, preconditioned operators and network Hessians (``dcdm.spectrum``).

Lanczos (plain or in the preconditioner's inner product), Ritz values read off a PCG
solve at no extra cost, extreme eigenvalues and condition numbers of ``M^-1 A``,
stochastic Lanczos quadrature (SLQ) densities, Hutchinson / Hutch++ traces, CG
iteration predictions from the spectral measure, and Hessian-vector-product operators
of torch models (torch loaded only when used).

Examples
--------
>>> import dcdm
>>> from dcdm import spectrum
>>> from dcdm.problems import gallery
>>> A, b = gallery.poisson((32, 32))
>>> res = dcdm.cg(A, b, M="jacobi", rtol=1e-10)
>>> kappa = spectrum.condition_number(res)        # free: read off the solve
>>> lo, hi = spectrum.extreme_eigenvalues(A, M="jacobi")
>>> bool(abs(kappa - hi / lo) <= 1e-6 * kappa)
True
"""

from .density import SpectralDensity, slq
from .hessian import (
    HessianEigen,
    HessianOperator,
    hessian_density,
    hessian_eigenvalues,
    hessian_operator,
    hessian_trace,
)
from .lanczos import DEFAULT_MAX_BYTES, REORTHOGONALIZE, LanczosBasis, lanczos
from .predict import IterationPrediction, predict_iterations
from .ritz import Extremes, condition_number, extreme_eigenvalues, pcg_tridiagonal, ritz_values
from .survey import LINEAR, format_survey, plot_densities, survey
from .trace import TraceEstimate, hutchinson, hutchpp

__all__ = [
    "DEFAULT_MAX_BYTES",
    "LINEAR",
    "REORTHOGONALIZE",
    "Extremes",
    "HessianEigen",
    "HessianOperator",
    "IterationPrediction",
    "LanczosBasis",
    "SpectralDensity",
    "TraceEstimate",
    "condition_number",
    "extreme_eigenvalues",
    "format_survey",
    "hessian_density",
    "hessian_eigenvalues",
    "hessian_operator",
    "hessian_trace",
    "hutchinson",
    "hutchpp",
    "lanczos",
    "pcg_tridiagonal",
    "plot_densities",
    "predict_iterations",
    "ritz_values",
    "slq",
    "survey",
]
