"""Score a network by what matters: DCDM iterations on held-out scenes.

:func:`validate` runs :func:`dcdm.solvers.dcdm.dcdm` with the network on every
validation scene and a few right-hand sides (random and smooth, alternating) and
returns the mean *effective* iteration count, a continuous version of the
iteration count that ranks networks where plain counts tie:

- a converged run: the (fractional) iteration at which the residual, interpolated
  geometrically over the last step, crossed ``rtol``: in ``(iterations - 1, iterations]``;
- a run that did not converge: ``iterations * log(rtol) / log(relres)``, the
  iterations it would need at its average rate (more than ``iterations``),
  capped at ``10 * maxiter`` (stalled runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from dcdm.kernels.optional import maybe

__all__ = ["solver_available", "validate", "validation_runs"]


def solver_available() -> bool:
    """True when :func:`dcdm.solvers.dcdm.dcdm` can be imported."""
    return callable(getattr(maybe("dcdm.solvers.dcdm"), "dcdm", None))


def _effective(history: np.ndarray, rtol: float, maxiter: int) -> float:
    """Effective iterations from a relative residual history (see the module docstring)."""
    cap = 10.0 * maxiter
    it = len(history) - 1
    final = float(history[-1])
    if it == 0:
        return 0.0
    if not math.isfinite(final) or final >= 1.0:
        return cap
    if final <= rtol:
        prev = float(history[-2])
        if final <= 0.0 or prev <= rtol or prev <= final:
            return float(it)
        return it - 1 + math.log(prev / rtol) / math.log(prev / final)
    return min(it * math.log(rtol) / math.log(final), cap)


def validation_runs(network, scenes: Sequence, *, rhs_per_scene: int = 2, rtol: float = 1e-6,
                    maxiter: int = 200, variant: str = "robust", seed: int = 0,
                    **solver_options: Any) -> list[dict[str, Any]]:
    """One DCDM solve per (scene, right-hand side); a dict per run.

    ``solver_options`` go to :func:`dcdm.solvers.dcdm.dcdm` (e.g. ``second="none"``).

    Keys: ``scene``, ``rhs`` ("random"/"smooth"), ``iterations``, ``converged``,
    ``relres`` (final true relative residual), ``reason``, ``effective``.
    """
    from dcdm.problems import rhs
    from dcdm.solvers.dcdm import dcdm

    runs = []
    for s, grid in enumerate(scenes):
        A = grid.laplacian()
        for k in range(max(rhs_per_scene, 1)):
            kind = "random" if k % 2 == 0 else "smooth"
            b = (rhs.random if kind == "random" else rhs.smooth)(grid, seed=seed * 1000 + k)
            res = dcdm(A, b, model=network, variant=variant, rtol=rtol, maxiter=maxiter,
                       **solver_options)
            bnorm = float(np.linalg.norm(b))
            relres = res.residual_norm / bnorm
            hist = np.asarray(res.residual_history, dtype=float) / bnorm
            runs.append({"scene": s, "rhs": kind, "iterations": int(res.iterations),
                         "converged": bool(res.converged), "relres": relres,
                         "reason": res.reason.name,
                         "effective": _effective(hist, rtol, maxiter)})
    return runs


def validate(network, scenes: Sequence, *, rhs_per_scene: int = 2, rtol: float = 1e-6,
             maxiter: int = 200, variant: str = "robust", seed: int = 0,
             **solver_options: Any) -> float:
    """Mean effective DCDM iterations of ``network`` on ``scenes`` (lower is better).

    Parameters
    ----------
    network : Network or callable
        What :func:`dcdm.solvers.dcdm.dcdm` accepts as ``model``.
    scenes : sequence of Grid
        Held-out scenes.
    rhs_per_scene, rtol, maxiter, variant, seed
        Right-hand sides per scene (random, smooth, random, ...), the solve's
        tolerance, cap and variant, and the right-hand sides' seed.
    **solver_options
        More options of :func:`dcdm.solvers.dcdm.dcdm` (e.g. ``second="none"``
        to score the network without the robust variant's classical direction).

    Examples
    --------
    >>> from dcdm.problems import scenes
    >>> g = scenes.smoke((16, 16), obstacles=1, seed=3)
    >>> validate(lambda r: r, [g], rhs_per_scene=1) < 200  # any direction map can be scored
    True
    """
    runs = validation_runs(network, scenes, rhs_per_scene=rhs_per_scene, rtol=rtol,
                           maxiter=maxiter, variant=variant, seed=seed, **solver_options)
    return float(np.mean([r["effective"] for r in runs]))
