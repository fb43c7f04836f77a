"""dcdm: sparse SPD solvers for pressure Poisson systems, with a learned preconditioner.

The public face of the package. The subpackages are :mod:`dcdm.solvers`
(Krylov methods, preconditioners, :func:`solve`), :mod:`dcdm.kernels` (stencil
kernels), :mod:`dcdm.problems` (flag grids, scenes, matrix I/O) and
:mod:`dcdm.training` (the network and its training); :mod:`dcdm.spectrum` (spectra of
``A``, ``M^-1 A`` and network Hessians) and :mod:`dcdm.optimize` (Newton-type minimisation
with inner solves by dcdm) are :mod:`dcdm.solvers.spectrum` and :mod:`dcdm.solvers.optimize`
under their public names.

Examples
--------
>>> import dcdm
>>> from dcdm.problems import gallery
>>> A, b = gallery.poisson((8, 8, 8))
>>> dcdm.solve(A, b, rtol=1e-8).converged
True
"""

import sys

from dcdm._version import __version__
from dcdm.solvers import (
    ConvergenceError,
    Reason,
    SolveResult,
    cg,
    fcg,
    optimize,
    scipy_cg,
    solve,
    spectrum,
)

# `import dcdm.spectrum` and `from dcdm.spectrum import slq` find the one module object
sys.modules.setdefault(f"{__name__}.spectrum", spectrum)
sys.modules.setdefault(f"{__name__}.optimize", optimize)

__all__ = [
    "ConvergenceError",
    "Reason",
    "SolveResult",
    "__version__",
    "cg",
    "fcg",
    "optimize",
    "scipy_cg",
    "solve",
    "spectrum",
]
