"""Every linear preconditioner's spectrum on one system, side by side.

:func:`survey` builds each preconditioner once and, with that one object, measures the
extremes and condition number of ``M^-1 A`` (Lanczos), an SLQ density, the iterations
:func:`~dcdm.spectrum.predict_iterations` predicts and the iterations CG actually takes
(whose free Ritz estimate of ``kappa`` is reported beside the Lanczos one).
``dcdm spectrum`` prints it and the scaling report tabulates it; :func:`plot_densities`
draws the densities on one axis of ``lambda / lambda_max``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..cg import cg
from ..operators import as_operator
from ..precond.registry import PRECONDITIONERS, make_preconditioner
from .density import SpectralDensity, slq
from .predict import predict_iterations
from .ritz import condition_number, extreme_eigenvalues

__all__ = ["LINEAR", "format_survey", "plot_densities", "survey"]

#: the preconditioners whose ``M^-1 A`` has a spectrum (linear SPD), cheapest first
LINEAR = tuple(n for n in ("none", "jacobi", "ic0", "mic0", "amg", "mg")
               if n in PRECONDITIONERS and PRECONDITIONERS[n].for_cg)


def survey(A: Any, b: Any = None, M: Sequence[str] = LINEAR, *, rtol: float = 1e-6,
           steps: int = 40, probes: int = 8, predict_steps: int = 200, seed: int | None = 0,
           progress: bool = False) -> list[dict]:
    """Spectra, predicted and actual CG iterations of ``M^-1 A`` for each ``M``.

    Parameters
    ----------
    A : operator, sparse matrix, ndarray or LinearOperator
        Symmetric positive (semi-)definite.
    b : array, optional
        Right-hand side of the actual solves and predictions (default: a seeded random
        one on the support).
    M : sequence of str
        Linear SPD preconditioner names (``"mg"`` needs a grid operator; names whose
        optional dependency is missing are skipped, with the reason in the row).
    rtol : float
        Tolerance of the solves and predictions.
    steps, probes : int
        SLQ steps and probes.
    predict_steps : int
        The most Lanczos steps of each prediction (beyond, it extrapolates).
    seed : int, optional
        Seed of the random ``b``, the probes and the start vectors.
    progress : bool
        A tqdm bar over the preconditioners.

    Returns
    -------
    list of dict
        Per ``M``: ``M``, ``lowest``, ``highest``, ``kappa``, ``extremes_converged``,
        ``kappa_from_solve``,
        ``predicted``, ``predicted_generic`` (random right-hand sides),
        ``extrapolated``, ``actual``, ``reason``, ``setup_time``, ``spectrum_time``,
        ``density`` (a :class:`SpectralDensity`), or ``M`` and ``skipped``.

    Examples
    --------
    >>> from dcdm.problems import gallery
    >>> A, b = gallery.poisson((24, 24))
    >>> rows = survey(A, b, M=("jacobi", "ic0"), steps=20, probes=2)
    >>> [r["M"] for r in rows], rows[1]["kappa"] < rows[0]["kappa"]
    (['jacobi', 'ic0'], True)
    """
    A = as_operator(A)
    if b is None:
        support = getattr(A, "support", None)
        b = np.random.default_rng(seed).standard_normal(A.shape[0])
        if support is not None:
            b = b * np.asarray(support)
    unknown = [m for m in M if m not in LINEAR]
    if unknown:
        raise ValueError(f"M must name linear SPD preconditioners {list(LINEAR)}, got "
                         f"{unknown} (a non-linear preconditioner has no fixed spectrum)")
    for name, value in (("steps", steps), ("probes", probes), ("predict_steps", predict_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    names = list(M)
    if progress:
        from dcdm.kernels.optional import require

        names = require("tqdm", "survey(progress=True)").tqdm(names, desc="spectra",
                                                              unit="M")
    return [_row(A, b, name, rtol, steps, probes, predict_steps, seed) for name in names]


def _row(A, b, name: str, rtol: float, steps: int, probes: int, predict_steps: int,
         seed) -> dict:
    try:
        t0 = time.perf_counter()
        P = make_preconditioner(name, A)
        setup = time.perf_counter() - t0
    except (ImportError, ValueError, TypeError) as exc:  # a missing extra, no grid for mg
        return {"M": name, "skipped": str(exc)}
    res = cg(A, b, M=P, rtol=rtol)
    t0 = time.perf_counter()
    ext = extreme_eigenvalues(A, M=P, seed=seed, rtol=1e-6, reorthogonalize="none")
    k = int(np.sum(getattr(A, "support", np.ones(A.shape[0], dtype=bool))))
    density = slq(A, M=P, steps=min(steps, k), probes=probes, seed=seed)
    pred = predict_iterations(A, b, M=P, rtol=rtol, steps=min(predict_steps, k))
    generic = predict_iterations(A, None, M=P, rtol=rtol, steps=min(predict_steps, k),
                                 probes=min(probes, 4), seed=seed)
    spectrum_time = time.perf_counter() - t0
    try:
        from_solve = condition_number(res)
    except ValueError:
        from_solve = math.nan
    return {"M": name, "lowest": ext.lowest, "highest": ext.highest,
            "kappa": ext.condition_number, "extremes_converged": ext.converged,
            "kappa_from_solve": from_solve,
            "predicted": pred.iterations, "predicted_generic": generic.iterations,
            "extrapolated": pred.extrapolated, "actual": res.iterations,
            "reason": res.reason.name, "setup_time": setup, "spectrum_time": spectrum_time,
            "density": density}


def format_survey(rows: list[dict]) -> str:
    """The rows as a fixed-width table (one line per preconditioner)."""
    head = (f"{'M':8s} {'lowest':>10s} {'highest':>10s} {'kappa':>10s} {'kappa(cg)':>10s} "
            f"{'predicted':>10s} {'generic':>8s} {'actual':>7s}  reason")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "skipped" in r:
            lines.append(f"{r['M']:8s} skipped: {r['skipped']}")
            continue
        star = "*" if r["extrapolated"] else ""
        pred = "-" if r["predicted"] is None else f"{r['predicted']}{star}"
        gen = "-" if r["predicted_generic"] is None else str(r["predicted_generic"])
        kappa = f"{r['kappa']:.4g}{'' if r['extremes_converged'] else '~'}"
        lines.append(f"{r['M']:8s} {r['lowest']:10.4g} {r['highest']:10.4g} {kappa:>10s} "
                     f"{r['kappa_from_solve']:10.4g} {pred:>10s} {gen:>8s} {r['actual']:7d}  "
                     f"{r['reason']}")
    if any(r.get("extrapolated") for r in rows):
        lines.append("* beyond the Lanczos steps taken: extrapolated")
    if any(r.get("extremes_converged") is False for r in rows):
        lines.append("~ Lanczos extremes not converged (a lower bound of kappa)")
    return "\n".join(lines)


def plot_densities(rows: list[dict], path=None, *, title: str | None = None):
    """The SLQ densities of ``rows`` over ``log10(lambda / lambda_max)``, one curve per
    preconditioner (each curve's mass is 1); saved to ``path`` if given. Returns the figure."""
    from dcdm.kernels.optional import require

    plt = require("matplotlib.pyplot", "plot_densities()")
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        d: SpectralDensity | None = r.get("density")
        if d is None:
            continue
        grid, values = d.relative_log_density()
        ax.plot(grid, values, label=f"{r['M']} (kappa {r['kappa']:.3g})")
    ax.set_yscale("log")
    ax.set_ylim(1e-4, None)
    ax.set_xlabel("log10(lambda / lambda_max) of M^-1 A")
    ax.set_ylabel("SLQ density")
    ax.set_title(title or "spectra of the preconditioned operators")
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
