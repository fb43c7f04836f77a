"""Every method on one system: the comparison matrix that ``dcdm solve --method all`` and
the demo share.

:func:`comparison_matrix` reads the registries: plain CG with every linear SPD
preconditioner, flexible CG with every other one, and both DCDM variants.
:func:`compare` solves with each (a one-iteration warm-up first, so JIT compilation is
not billed to it) and :func:`format_table` prints the rows.

Examples
--------
>>> from dcdm.problems import gallery
>>> from dcdm.solvers.compare import compare
>>> A, b = gallery.poisson((16, 16))
>>> rows, skipped = compare(A, b, [("cg", "jacobi", {}), ("cg", None, {})], rtol=1e-8)
>>> [(r["M"], r["reason"]) for r in rows]
[('jacobi', 'CONVERGED_RTOL'), ('none', 'CONVERGED_RTOL')]
"""

from __future__ import annotations

import math

from dcdm import kernels

from .precond.registry import PRECONDITIONERS
from .solve import solve

__all__ = ["SKIPPED_ERRORS", "compare", "comparison_matrix", "format_table", "label"]

#: what makes a combination skipped rather than fatal: a missing extra or weights, a
#: method that does not apply to the system (a grid-only one on a matrix), a failure
SKIPPED_ERRORS = (ImportError, FileNotFoundError, ValueError, TypeError, RuntimeError)

Combination = tuple[str, str | None, dict]


def comparison_matrix(precond: str | None = None) -> list[Combination]:
    """``(method, M, options)`` for every sensible pair: CG with each linear SPD
    preconditioner, FCG with each non-linear one, then DCDM (robust and paper variants;
    DCDM takes no ``M``). With ``precond``, only the pairs with that preconditioner."""
    names = sorted(PRECONDITIONERS, key=lambda k: (k != "none", k))
    combos: list[Combination] = []
    for method in ("cg", "fcg"):
        for name in names:
            if precond is not None and name != precond:
                continue
            if (method == "cg") == PRECONDITIONERS[name].for_cg:
                combos.append((method, None if name == "none" else name, {}))
    if precond is None:
        combos += [("dcdm", None, {"variant": variant}) for variant in ("robust", "paper")]
    return combos


def label(method: str, options: dict) -> str:
    """The row's method name: ``cg``, ``fcg``, ``dcdm-robust``, ``dcdm-paper``."""
    return method if method != "dcdm" else f"dcdm-{options.get('variant', 'robust')}"


def compare(A, b, combos: list[Combination] | None = None, *, rtol: float = 1e-6,
            atol: float = 0.0, maxiter: int | None = None, network_maxiter: int | None = None,
            warm_up: bool = True, skip_errors: bool = True) -> tuple[list[dict], list[str]]:
    """Solve ``A x = b`` with each combination; returns ``(rows, skipped)``.

    Parameters
    ----------
    combos : list of (method, M, options), optional
        Default: :func:`comparison_matrix`.
    rtol, atol, maxiter
        As in :func:`dcdm.solve`.
    network_maxiter : int, optional
        A lower iteration cap for the network methods (DCDM, ``M="neural"``), whose
        iterations cost far more on a CPU.
    warm_up : bool
        Run each once for one iteration first (JIT compilation, network tracing).
    skip_errors : bool
        Record a combination that raises one of :data:`SKIPPED_ERRORS` in ``skipped``
        (``"label M=...: message"``) and go on; False: raise.

    Returns
    -------
    rows : list of dict
        ``method``, ``M``, ``iterations``, ``reason``, ``converged``, ``rel_residual``
        (true ``||b - A x|| / ||b||``), ``setup_time``, ``solve_time``.
    skipped : list of str
    """
    bnorm = math.sqrt(kernels.dot(b, b)) or 1.0
    rows, skipped = [], []
    for method, M, opts in comparison_matrix() if combos is None else combos:
        name = label(method, opts)
        cap = maxiter
        if network_maxiter is not None and (method == "dcdm" or M == "neural"):
            cap = network_maxiter if maxiter is None else min(maxiter, network_maxiter)
        try:
            if warm_up:
                solve(A, b, method=method, M=M, rtol=rtol, maxiter=1, **opts)
            res = solve(A, b, method=method, M=M, rtol=rtol, atol=atol, maxiter=cap, **opts)
        except SKIPPED_ERRORS as exc:
            if not skip_errors:
                raise
            skipped.append(f"{name}{' M=' + M if M else ''}: {exc}")
            continue
        rows.append({"method": name, "M": res.stats.get("preconditioner", M or "none"),
                     "iterations": int(res.iterations), "reason": res.reason.name,
                     "converged": bool(res.converged),
                     "rel_residual": float(res.residual_norm) / bnorm,
                     "setup_time": float(res.setup_time), "solve_time": float(res.solve_time)})
    return rows, skipped


def format_table(rows: list[dict]) -> str:
    """The comparison rows as a fixed-width text table."""
    cols = [("method", "method", "{}"), ("M", "M", "{}"), ("iters", "iterations", "{}"),
            ("reason", "reason", "{}"), ("||b-Ax||/||b||", "rel_residual", "{:.2e}"),
            ("setup s", "setup_time", "{:.4f}"), ("solve s", "solve_time", "{:.4f}"),
            ("total s", "total_time", "{:.4f}")]
    rows = [{**r, "total_time": r["setup_time"] + r["solve_time"]} for r in rows]
    cells = [[fmt.format(r[key]) for _, key, fmt in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _, _) in enumerate(cols)]
    head = "  ".join(h.ljust(w) for (h, _, _), w in zip(cols, widths, strict=True))
    lines = [head, "-" * len(head)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)

