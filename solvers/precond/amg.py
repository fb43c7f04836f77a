"""Algebraic multigrid preconditioning with pyamg: one V-cycle per application.

The hierarchy is built by pyamg (Bell, Olson & Schroder, *PyAMG: algebraic multigrid
solvers in Python*, JOSS 7, 2022) from the assembled matrix: smoothed aggregation
(Vanek, Mandel & Brezina, *Computing* 56, 1996; ``amg="sa"``) or classical Ruge-Stueben
coarsening (Ruge & Stueben, 1987; ``amg="rs"``), with pyamg's defaults otherwise.

Two changes to what ``ml.aspreconditioner()`` gives:

- After setup every level's ``A``, ``P`` and ``R`` is converted to CSR. Smoothed
  aggregation stores the coarse levels as BSR (1x1 blocks for a scalar problem), whose
  Gauss-Seidel kernel is several times slower per nonzero than the CSR one; a V-cycle is
  ~2.7x faster after the conversion (``reference/perf-notes.md``).
- The V-cycle is run directly from zero (the same recursion as pyamg's
  ``MultilevelSolver.solve(b, maxiter=1)``), without the two fine-level residual norms
  that ``solve`` computes around it.

Symmetry: both pyamg solvers default to one symmetric Gauss-Seidel sweep (forward then
backward) as pre- and post-smoother (``("block_gauss_seidel", {"sweep": "symmetric"})``
for SA, which is plain Gauss-Seidel with 1x1 blocks; ``("gauss_seidel", {"sweep":
"symmetric"})`` for RS), restrict with ``R = P^T`` for a symmetric matrix and solve the
coarsest level with a pseudo-inverse. A symmetric sweep is self-adjoint in the ``A``
inner product, so the V-cycle is a symmetric linear map and ``M`` is SPD: usable by
:func:`dcdm.solvers.cg`. ``stats["symmetric_smoothing"]`` reports pyamg's own check.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

from dcdm.kernels.optional import require

from ..operators import as_operator
from .base import Preconditioner

__all__ = ["AMG"]

_KINDS = {"sa": "smoothed_aggregation_solver", "rs": "ruge_stuben_solver"}


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {low}, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value}")
    return int(value)


class AMG(Preconditioner):
    """One algebraic-multigrid V-cycle from pyamg as the preconditioner.

    Needs pyamg (the ``amg`` extra) and the assembled matrix ``A.to_csr()``.

    Parameters
    ----------
    amg : {"sa", "rs"}, default "sa"
        Smoothed aggregation (``pyamg.smoothed_aggregation_solver``) or classical
        Ruge-Stueben (``pyamg.ruge_stuben_solver``).
    max_levels : int, default 10
        At most this many levels (pyamg's default).
    max_coarse : int, default 10
        Stop coarsening below this many unknowns (pyamg's default); the coarsest level
        is solved with a dense pseudo-inverse.

    Attributes
    ----------
    hierarchy : pyamg.MultilevelSolver
        The hierarchy, every level's matrices in CSR.

    Notes
    -----
    ``stats`` adds ``amg`` (the kind), ``levels``, ``operator_complexity``,
    ``grid_complexity``, ``hierarchy_bytes`` and ``symmetric_smoothing``.

    Examples
    --------
    >>> import dcdm
    >>> from dcdm.problems import gallery
    >>> A, b = gallery.smoke((16, 16, 16), obstacles=4, seed=0)
    >>> res = dcdm.solve(A, b, M="amg", rtol=1e-8)
    >>> res.converged, res.iterations < 20, res.stats["levels"] >= 2
    (True, True, True)
    >>> dcdm.solve(A, b, M="amg", amg="rs", rtol=1e-8).converged
    True
    """

    name = "amg"
    cpu_only = True
    is_linear = True
    is_spd = True
    preserves_support = False

    def __init__(self, amg: str = "sa", *, max_levels: int = 10, max_coarse: int = 10) -> None:
        super().__init__()
        key = amg.lower() if isinstance(amg, str) else amg
        if key not in _KINDS:
            raise ValueError(
                f"amg must be 'sa' (smoothed aggregation) or 'rs' (Ruge-Stueben), got {amg!r}"
            )
        self.amg = key
        self.max_levels = _check_int("max_levels", max_levels, 1)
        self.max_coarse = _check_int("max_coarse", max_coarse, 1)
        self.hierarchy = None

    def _build(self, A) -> None:
        pyamg = require("pyamg", "M='amg'")
        A = as_operator(A)
        if not hasattr(A, "to_csr"):
            raise TypeError(
                f"M='amg' builds its hierarchy from the assembled matrix, but "
                f"{type(A).__name__} has no to_csr(); pass a scipy sparse matrix, a dense "
                "array or a grid operator"
            )
        C = sp.csr_array(A.to_csr(), dtype=np.float64, copy=True)
        C.sum_duplicates()
        C.sort_indices()
        make = getattr(pyamg, _KINDS[self.amg])
        # pyamg's set-up draws from NumPy's global RNG (spectral-radius estimates): seed it
        # for the build, so that one matrix always gives one hierarchy, and put it back
        state = np.random.get_state()  # noqa: NPY002 (the global RNG is what pyamg uses)
        try:
            np.random.seed(0)  # noqa: NPY002
            ml = make(C, max_levels=self.max_levels, max_coarse=self.max_coarse)
        finally:
            np.random.set_state(state)  # noqa: NPY002
        for level in ml.levels:
            for attr in ("A", "P", "R"):
                M = getattr(level, attr, None)
                if M is not None and M.format != "csr":
                    setattr(level, attr, M.tocsr())
        self.hierarchy = ml
        self._n = C.shape[0]

    def _vcycle(self, lvl: int, x: np.ndarray, b: np.ndarray) -> None:
        """One V-cycle on level ``lvl`` for ``A x = b``, updating ``x`` in place."""
        ml = self.hierarchy
        level = ml.levels[lvl]
        level.presmoother(level.A, x, b)
        coarse_b = level.R @ (b - level.A @ x)
        if lvl == len(ml.levels) - 2:
            coarse_x = np.asarray(ml.coarse_solver(ml.levels[-1].A, coarse_b))
            coarse_x = coarse_x.reshape(coarse_b.shape)
        else:
            coarse_x = np.zeros_like(coarse_b)
            self._vcycle(lvl + 1, coarse_x, coarse_b)
        x += level.P @ coarse_x
        level.postsmoother(level.A, x, b)

    def apply(self, r: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Return the result of one V-cycle for ``A z = r`` from ``z = 0``.

        Parameters
        ----------
        r : ndarray
            ``n`` entries (1-D or any shape of that size). Not modified.
        out : ndarray, optional
            Where to write the result; same shape as ``r`` (may be ``r``).

        Returns
        -------
        ndarray
            ``out`` if given, else a new array of ``r``'s shape.
        """
        if not self.built:
            raise RuntimeError("M='amg' must be built (build(A)) before apply")
        self._require_numpy(r)
        if r.size != self._n:
            raise ValueError(f"r has {r.size} entries but the hierarchy is for n={self._n}")
        if out is not None and (not isinstance(out, np.ndarray) or out.shape != r.shape):
            raise ValueError(
                f"out must be a NumPy array of r's shape {r.shape}, got "
                f"{getattr(out, 'shape', type(out).__name__)}"
            )
        b = r.reshape(-1)
        direct = (out is not None and out.dtype == np.float64 and out.flags.c_contiguous)
        if b.dtype != np.float64 or not b.flags.c_contiguous or (
                direct and np.shares_memory(b, out)):
            b = np.array(b, dtype=np.float64, order="C")
        x = out.reshape(-1) if direct else np.empty(self._n, dtype=np.float64)
        ml = self.hierarchy
        if len(ml.levels) == 1:
            x[...] = np.asarray(ml.coarse_solver(ml.levels[0].A, b)).reshape(-1)
        else:
            x[...] = 0.0
            self._vcycle(0, x, b)
        if direct:
            return out
        if out is None:
            dtype = r.dtype if r.dtype in (np.float32, np.float64) else np.dtype(np.float64)
            return x.astype(dtype, copy=False).reshape(r.shape)
        out[...] = x.reshape(out.shape)
        return out

    @property
    def stats(self) -> dict[str, Any]:
        """Setup time and the hierarchy's size (merged into ``SolveResult.stats``)."""
        s = super().stats
        s["amg"] = self.amg
        ml = self.hierarchy
        if ml is not None:
            nbytes = 0
            for level in ml.levels:
                for attr in ("A", "P", "R"):
                    M = getattr(level, attr, None)
                    if M is not None:
                        nbytes += M.data.nbytes + M.indices.nbytes + M.indptr.nbytes
            s["levels"] = len(ml.levels)
            s["operator_complexity"] = float(ml.operator_complexity())
            s["grid_complexity"] = float(ml.grid_complexity())
            s["hierarchy_bytes"] = int(nbytes)
            s["symmetric_smoothing"] = bool(ml.symmetric_smoothing)
        return s
