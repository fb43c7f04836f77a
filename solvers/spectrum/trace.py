"""Stochastic traces of ``A`` or ``M^-1 A``: Hutchinson and Hutch++.

Hutchinson (1989): ``tr(B) = E[v^T B v]`` for Rademacher ``v``; the estimate's standard
error falls as ``1/sqrt(probes)``. Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021):
a third of the budget finds the dominant range ``Q = orth(B S)``, whose trace is exact,
and Hutchinson estimates only the rest, ``(I - QQ^T) B (I - QQ^T)``; error ``O(1/m)``
instead of ``O(1/sqrt(m))`` for matrices with decaying spectra. Both need only products
``v -> M^-1 A v``, linear in ``v``: ``B = M^-1 A`` need not be symmetric, so any linear
``M`` works (unlike :func:`~dcdm.spectrum.slq`'s trace, which needs a uniform measure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .restricted import Restricted, prepare

__all__ = ["TraceEstimate", "hutchinson", "hutchpp"]


@dataclass(frozen=True)
class TraceEstimate:
    """A stochastic trace: ``value``, its standard error ``std`` (``nan`` for Hutch++,
    a single estimate) and the products ``B v`` it cost (``matvecs``)."""

    value: float
    std: float
    matvecs: int

    def __float__(self) -> float:
        return self.value


def _operator(A: Any, M: Any, precond_options: dict | None):
    A, P, support = prepare(A, M, None, precond_options)
    ops = Restricted(A, P, support)

    def apply(v: np.ndarray) -> np.ndarray:
        return ops.precondition(ops.project(ops.matvec(v)))

    return apply, int(support.sum())


def _rademacher(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(0, 2, size=shape).astype(np.float64) * 2 - 1


def _count(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def hutchinson(A: Any, M: Any = None, *, probes: int = 100, seed: int | None = 0,
               precond_options: dict | None = None) -> TraceEstimate:
    """Hutchinson's estimate of ``tr(A)`` or ``tr(M^-1 A)`` (over the support's unknowns).

    Examples
    --------
    >>> import numpy as np
    >>> from dcdm import spectrum
    >>> est = spectrum.hutchinson(np.diag(np.arange(1.0, 101.0)), probes=50)
    >>> est.value  # Rademacher probes are exact on a diagonal matrix
    5050.0
    """
    probes = _count("probes", probes, 1)
    apply, k = _operator(A, M, precond_options)
    rng = np.random.default_rng(seed)
    samples = np.empty(probes)
    for l in range(probes):
        v = _rademacher(rng, k)
        samples[l] = v @ apply(v)
    std = samples.std(ddof=1) / math.sqrt(probes) if probes > 1 else math.inf
    return TraceEstimate(float(samples.mean()), float(std), probes)


def hutchpp(A: Any, M: Any = None, *, matvecs: int = 99, seed: int | None = 0,
            precond_options: dict | None = None) -> TraceEstimate:
    """Hutch++'s estimate of ``tr(A)`` or ``tr(M^-1 A)`` from ``matvecs`` products.

    ``matvecs // 3`` sketch vectors, as many to apply ``B`` to the range basis, the rest
    for Hutchinson on the deflated part (``matvecs >= 3``).

    Examples
    --------
    A rank-10 matrix: the sketch catches its range, the trace is exact to rounding.

    >>> import numpy as np
    >>> from dcdm import spectrum
    >>> X = np.random.default_rng(0).standard_normal((200, 10))
    >>> est = spectrum.hutchpp(X @ X.T, matvecs=45)
    >>> bool(np.isclose(est.value, np.trace(X @ X.T)))
    True
    """
    matvecs = _count("matvecs", matvecs, 3)
    apply, k = _operator(A, M, precond_options)
    rng = np.random.default_rng(seed)
    s = min(matvecs // 3, k)
    g = matvecs - 2 * s
    S = _rademacher(rng, (k, s))
    BS = np.column_stack([apply(S[:, i]) for i in range(s)])
    Q, _ = np.linalg.qr(BS)
    BQ = np.column_stack([apply(Q[:, i]) for i in range(Q.shape[1])])
    value = float(np.trace(Q.T @ BQ))
    if g > 0:
        G = _rademacher(rng, (k, g))
        G -= Q @ (Q.T @ G)
        BG = np.column_stack([apply(G[:, i]) for i in range(g)])
        BG -= Q @ (Q.T @ BG)
        value += float(np.einsum("ij,ij->", G, BG)) / g
    return TraceEstimate(value, math.nan, s + Q.shape[1] + g)
