"""The Deep Conjugate Direction Method (DCDM) and a robust variant of it.

Kaneda, Akar, Chen, Kala, Hyde & Teran, "A Deep Conjugate Direction Method for
Iteratively Solving Linear Systems", ICML 2023 (arXiv 2205.10763).

``variant="paper"`` is the paper's loop exactly::

    r = b - A x
    repeat
        q = f(r / ||r||)                               # the network
        q -= sum_{j in last k} (q . A p_j) / (p_j . A p_j) p_j   # A-orthogonalise, k = 2
        alpha = (q . r) / (q . A q)                    # exact line search in the A-norm
        x += alpha q
        r = b - A x                                    # true residual (second mat-vec)

It is not a Krylov method: ``f`` is a non-linear network, the directions are
only A-conjugate to the last ``k``, and nothing guarantees progress. When the
network's direction is (numerically) orthogonal to the residual the step is
zero and the loop would spin: that ends the solve with ``Reason.STAGNATION``, as
does a residual that fails to drop by 1% over ``stall_window`` iterations.

``variant="robust"`` (the default) keeps the network for the smooth error it
captures and adds what it lacks: every iteration takes the network's step and
then a second step along a classical direction ``s = M(r)`` (``second="mg"``:
one geometric multigrid V-cycle, ``"rbgs"``: one symmetric red-black
Gauss-Seidel sweep), both A-orthogonalised against the last ``window``
directions, each with an exact line search. The residual is updated
recursively and confirmed on the true residual at the end, as in CG. With
``second="mg"`` it converges at least about as fast as MG-preconditioned
steepest descent whatever the network does; the network only has to help.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from dcdm import kernels

from .directions import Directions
from .inputs import SystemInputs
from .precond.base import require_grid
from .precond.neural import check_model, check_network_dtype, resolve_network
from .result import Reason, SolveResult
from .workspace import SolveWorkspace

__all__ = ["dcdm"]

VARIANTS = ("paper", "robust")
SECOND = ("mg", "rbgs", "none")


def _second_direction(kind: str, A):
    if kind == "none":
        return None
    from .precond.mg import GeometricMG
    from .precond.rbgs import RedBlackGS

    return (GeometricMG() if kind == "mg" else RedBlackGS(sweeps=1)).build(A)


def dcdm(
    A,
    b,
    x0=None,
    *,
    model=None,
    network_dtype: str | None = None,
    variant: str = "robust",
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], None] | None = None,
    check: bool = False,
    window: int | None = None,
    second: str = "mg",
    stall_window: int = 20,
    M=None,
    precond_options: dict | None = None,
) -> SolveResult:
    """Solve a grid pressure system ``A x = b`` by DCDM.

    Parameters
    ----------
    A : GridLaplacian
        A grid operator (``dcdm.problems.Grid.laplacian()``); the network
        works on the grid.
    b, x0, rtol, atol, maxiter, callback, check
        As in :func:`dcdm.solve`. With a torch tensor or CuPy ``b`` the loop, the
        second direction and the network all run on ``b``'s device (a loaded network
        is moved there once; CuPy reaches torch through DLPack, without copies).
    model : None, str, path or callable
        ``None``: the shipped weights for the grid's dimensionality; a shipped
        name (``"dcdm-2d"``, ``"dcdm-3d"``) or a checkpoint path; or any
        callable mapping a grid-shaped unit-norm residual to a direction (its
        entries off FLUID cells are ignored).
    network_dtype : {None, "float32", "bfloat16", "float16"}
        Precision of the network's forward pass (a loaded network only; default: the
        network's own, float32 for loaded weights). The input is cast down and the
        direction cast back up: the iteration keeps ``b``'s precision.
    variant : {"robust", "paper"}
        See the module docstring.
    window : int, optional
        Previous directions each new one is A-orthogonalised against (paper: 2;
        robust: 4, i.e. the last two iterations' two directions).
    second : {"mg", "rbgs", "none"}
        The classical second direction of the robust variant.
    stall_window : int
        Iterations without a 1% drop of the residual that count as stagnation.
    M
        Not used: DCDM's preconditioner is the network. Must be None (or
        ``"auto"``), so that a preconditioner meant for CG is not silently ignored.

    Returns
    -------
    SolveResult
        ``stats`` adds ``network_seconds``, ``network_calls``, ``variant``,
        ``second_direction`` and ``window``.

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm.problems import gallery
    >>> from dcdm.solvers import dcdm
    >>> A, b = gallery.smoke((24, 24), obstacles=2)
    >>> smooth = lambda r: r  # any map works as the "network" of the robust loop
    >>> res = dcdm(A, b, model=smooth, rtol=1e-6)
    >>> res.converged
    True
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if second not in SECOND:
        raise ValueError(f"second must be one of {SECOND}, got {second!r}")
    if M not in (None, "auto"):
        raise ValueError(
            "method='dcdm' takes no preconditioner M (its preconditioner is the network); "
            "pass model=... instead, or use method='fcg' with M='neural'"
        )
    if window is None:
        window = 2 if variant == "paper" else 4
    for name, value in (("window", window), ("stall_window", stall_window)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if precond_options:
        raise TypeError(f"dcdm got unexpected keyword argument(s) {sorted(precond_options)}")
    network_dtype = check_network_dtype(network_dtype)
    check_model(model)
    grid = require_grid(A, "method='dcdm'", ": the network acts on the grid")
    prob = SolveWorkspace(SystemInputs(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter,
                                      callback=callback))
    t0 = time.perf_counter()
    net = resolve_network(model, grid, like=prob.b, dtype=network_dtype)
    S = _second_direction(second, prob.A) if variant == "robust" else None
    setup_time = time.perf_counter() - t0
    x, r = prob.start()
    timer = {"seconds": 0.0, "calls": 0}
    _, hist, reason = prob.begin(r)
    it = 0
    if reason is None:  # the buffers are allocated only when the loop runs
        dirs, q = Directions(window, r, prob.xp), prob.xp.empty_like(r)
        loop = _paper if variant == "paper" else _robust
        reason, it = loop(prob, x, r, q, dirs, hist, net, S, stall_window, timer, callback)
    extra = {
        "variant": variant,
        "window": window,
        "second_direction": second if variant == "robust" else "none",
        "network_seconds": timer["seconds"],
        "network_calls": timer["calls"],
        "model": getattr(net, "name", type(net).__name__),
        "network_dtype": getattr(net, "dtype_name", None),
    }
    if S is not None:
        extra["second_setup_time"] = S.setup_time
    return prob.finish(x, reason, it, hist, setup_time=setup_time, method="dcdm", check=check,
                       extra=extra)


def _network_direction(prob, net, r, q, shape, timer) -> None:
    """``q = f(r / ||r||)`` on the grid, zero off the FLUID cells."""
    rn = prob.norm(r)
    t = time.perf_counter()
    out = net((r / rn).reshape(shape))
    timer["seconds"] += time.perf_counter() - t
    timer["calls"] += 1
    if isinstance(q, np.ndarray):
        q[...] = np.asarray(out, dtype=q.dtype).reshape(-1)
    else:  # the network ran on q's device (see resolve_network): no transfer here
        xp = prob.xp
        q[...] = xp.reshape(xp.asarray(out, dtype=q.dtype), (-1,))
    prob.restrict(q)


def _step(prob, dirs: Directions, q, r, x) -> tuple[float, float]:
    """A-orthogonalise ``q``, line-search along it, update ``x`` and ``r`` (recursively).

    Returns ``(q . r, ||r||)``; ``q . r == 0`` means no step was possible.
    """
    dirs.orthogonalise(q)
    p, Ap = dirs.next_slot()
    p[...] = q
    prob.matvec(p, Ap)
    pAp = kernels.dot(p, Ap)
    qr = kernels.dot(p, r)
    if not (math.isfinite(pAp) and math.isfinite(qr)):
        return math.nan, math.nan
    if pAp <= 0.0 or qr == 0.0:
        return 0.0, prob.norm(r)
    dirs.commit(pAp)
    rr = kernels.cg_update(x, r, p, Ap, qr / pAp)
    return qr, math.sqrt(rr)


def _stalled(hist: list[float], window: int) -> bool:
    return len(hist) > window and hist[-1] > 0.99 * hist[-1 - window]


def _negligible(qr: float, q, rnorm: float, prob) -> bool:
    """``|q . r|`` too small to move (``rnorm = ||r||`` before the step): the direction is
    orthogonal to the residual."""
    return abs(qr) <= 1e-12 * prob.norm(q) * rnorm


def _network_step(prob, dirs, net, r, q, x, timer) -> tuple[float, float]:
    """The network's direction for ``r``, A-orthogonalised and line-searched (``_step``)."""
    _network_direction(prob, net, r, q, prob.A.grid.shape, timer)
    return _step(prob, dirs, q, r, x)


# The two loops append to ``hist`` (which holds ||r0||) and return (reason, iterations).


def _paper(prob, x, r, q, dirs, hist, net, S, stall_window, timer, callback):
    for it in range(1, prob.maxiter + 1):
        qr, _ = _network_step(prob, dirs, net, r, q, x, timer)
        if math.isnan(qr):
            return Reason.NAN_OR_INF, it - 1
        if qr == 0.0 or _negligible(qr, q, hist[-1], prob):
            return Reason.STAGNATION, it - 1
        prob.residual(x, out=r)  # the paper recomputes the true residual every step
        hist.append(prob.norm(r))
        if callback is not None:
            callback(x)
        if not math.isfinite(hist[-1]):
            return Reason.NAN_OR_INF, it
        if hist[-1] <= prob.tol:
            return prob.converged_reason(), it
        if _stalled(hist, stall_window):
            return Reason.STAGNATION, it
    return Reason.MAX_ITERATIONS, prob.maxiter


def _robust(prob, x, r, q, dirs, hist, net, S, stall_window, timer, callback):
    for it in range(1, prob.maxiter + 1):
        qr, rnorm = _network_step(prob, dirs, net, r, q, x, timer)
        if S is not None and not math.isnan(qr):
            prob.precondition(S, r, q)
            qr2, rnorm = _step(prob, dirs, q, r, x)
            qr = qr2 if qr == 0.0 else qr
        if math.isnan(qr) or not math.isfinite(rnorm):
            return Reason.NAN_OR_INF, it - 1
        hist.append(rnorm)
        if callback is not None:
            callback(x)
        if rnorm <= prob.tol:
            hist[-1], verdict = prob.confirm(x, r)
            if verdict is not None:
                return verdict, it
        if qr == 0.0 or _stalled(hist, stall_window):
            return Reason.STAGNATION, it
    return Reason.MAX_ITERATIONS, prob.maxiter
