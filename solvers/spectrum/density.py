"""Stochastic Lanczos quadrature (SLQ): the spectral density of ``A`` or ``M^-1 A``.

Lin, Saad & Yang (2016); Ubaru, Chen & Saad (2017). For ``l = 1..probes``, ``steps``
Lanczos steps from a random Rademacher vector ``v_l`` give ``T_l = W Theta W^T``; its
eigenvalues ``theta_i`` (nodes) and squared first components ``tau_i = W[0, i]^2``
(weights) are the Gauss quadrature of ``v_l``'s spectral measure, exact for
polynomials of degree ``<= 2 steps - 1``. Averaged over probes::

    tr f(B) ~= (n / probes) sum_l sum_i tau_i f(theta_i)
    phi(t)  ~= (1 / probes) sum_l sum_i tau_i g_sigma(t - theta_i)      (density)

With a preconditioner ``P = M^-1`` the Lanczos runs in ``P``'s inner product (the
symmetric ``B = P^(1/2) A P^(1/2)``, same eigenvalues as ``P A``); the start must then
be ``P^(-1/2) v`` for the measure to be the uniform one. That is possible when ``P`` is
diagonal (Jacobi, or any preconditioner with an ``inverse_diagonal``; none): the density
and :meth:`SpectralDensity.trace` are then unbiased (``measure="uniform"``). For any other
``M`` the start is ``v`` itself in the residual space, and the nodes and weights are the
measure CG meets from a random right-hand side (``measure="residual"``): the right thing
to predict iterations and to locate the spectrum, but its masses are weighted by ``P``,
so ``trace()`` refuses; :func:`~dcdm.spectrum.hutchinson` estimates ``tr(M^-1 A)`` for any ``M``.

Cost: ``probes * steps`` applications of ``A`` and of ``M`` (plus one ``M`` per probe);
memory: three vectors with ``reorthogonalize="none"`` (ghost copies of converged Ritz
values then split their weight, which leaves the quadrature intact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .lanczos import REORTHOGONALIZE, _run
from .restricted import Restricted, prepare

__all__ = ["SpectralDensity", "slq"]


@dataclass(frozen=True)
class SpectralDensity:
    """SLQ nodes and weights of ``A`` or ``M^-1 A``.

    Attributes
    ----------
    nodes, weights : ndarray
        All probes' Gauss nodes and weights, concatenated; each probe's weights sum to
        ``1 / probes`` (the total is 1).
    probe : ndarray of int
        Which probe each node came from.
    n : int
        The dimension the measure lives on (unknowns minus null-space dimension).
    measure : {"uniform", "residual"}
        See the module docstring: only a ``"uniform"`` measure has an unbiased trace.
    preconditioner : str
        The preconditioner's name (``"none"`` without one).
    """

    nodes: np.ndarray
    weights: np.ndarray
    probe: np.ndarray
    n: int
    measure: str
    preconditioner: str = "none"

    @property
    def probes(self) -> int:
        return int(self.probe.max()) + 1

    @property
    def extremes(self) -> tuple[float, float]:
        """The smallest and largest node: the extreme Ritz values over all probes."""
        return float(self.nodes.min()), float(self.nodes.max())

    @property
    def condition_number(self) -> float:
        lo, hi = self.extremes
        return hi / lo if lo > 0 else math.inf

    def _per_probe(self, f) -> np.ndarray:
        vals = np.asarray(f(self.nodes), dtype=np.float64) if f is not None else self.nodes
        sums = np.bincount(self.probe, weights=self.weights * vals, minlength=self.probes)
        return self.n * self.probes * sums

    def _uniform(self, what: str) -> None:
        if self.measure != "uniform":
            raise ValueError(
                f"{what} needs the uniform spectral measure, but this density was started "
                f"in the residual space of M={self.preconditioner!r} (measure='residual': "
                "weighted by M^-1); use spectrum.hutchinson(A, M) for tr(M^-1 A), or M=None "
                "/ 'jacobi' for a uniform density")

    def trace(self, f=None) -> float:
        """``tr f(B)`` (``f`` a vectorised function; default the identity: ``tr B``)."""
        self._uniform("trace()")
        return float(self._per_probe(f).mean())

    def trace_std(self, f=None) -> float:
        """The standard error of :meth:`trace` (sample std over probes / sqrt(probes))."""
        self._uniform("trace_std()")
        est = self._per_probe(f)
        return float(est.std(ddof=1) / math.sqrt(est.size)) if est.size > 1 else math.inf

    def density(self, grid=None, sigma: float | None = None,
                points: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        """A Gaussian-smoothed density on ``grid``: ``(grid, values)``, unit area.

        ``sigma`` defaults to 1% of the node range; ``grid`` to ``points`` points over
        the node range widened by ``3 sigma`` on each side.
        """
        lo, hi = self.extremes
        if sigma is None:
            sigma = 0.01 * max(hi - lo, abs(hi), 1e-300)
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        if grid is None:
            grid = np.linspace(lo - 3 * sigma, hi + 3 * sigma, points)
        grid = np.asarray(grid, dtype=np.float64)
        values = np.zeros_like(grid)
        for chunk in range(0, self.nodes.size, 256):  # bounded memory: 256 x grid
            d = grid[None, :] - self.nodes[chunk:chunk + 256, None]
            values += self.weights[chunk:chunk + 256] @ np.exp(-0.5 * (d / sigma) ** 2)
        return grid, values / (sigma * math.sqrt(2 * math.pi))

    def relative_log_density(self, points: int = 600,
                             sigma: float = 0.03) -> tuple[np.ndarray, np.ndarray]:
        """The density over ``log10(lambda / lambda_max)`` (positive nodes; unit mass):
        ``(grid, values)`` from 0.2 below the smallest node to 0.1 above 0, a Gaussian of
        ``sigma`` decades. Spectra of different scales then share one axis."""
        keep = self.nodes > 0
        logs = np.log10(self.nodes[keep] / self.nodes.max())
        shifted = SpectralDensity(logs, self.weights[keep] / self.weights[keep].sum(),
                                  self.probe[keep], self.n, self.measure, self.preconditioner)
        return shifted.density(sigma=sigma, grid=np.linspace(logs.min() - 0.2, 0.1, points))

    def plot(self, ax=None, *, sigma: float | None = None, log: bool = True, label=None):
        """Plot the smoothed density (matplotlib, loaded lazily); returns the axes."""
        from dcdm.kernels.optional import require

        plt = require("matplotlib.pyplot", "SpectralDensity.plot()")
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 3.5))
        grid, values = self.density(sigma=sigma)
        ax.plot(grid, values, label=label or f"M={self.preconditioner}")
        if log:
            ax.set_yscale("log")
            ax.set_ylim(max(values.max() * 1e-8, 1e-300), values.max() * 2)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        return ax


def _rademacher(rng: np.random.Generator, k: int) -> np.ndarray:
    return rng.integers(0, 2, size=k).astype(np.float64) * 2 - 1


def slq(A: Any, M: Any = None, *, steps: int = 50, probes: int = 10, seed: int | None = 0,
        reorthogonalize: str = "none", precond_options: dict | None = None,
        progress: bool = False) -> SpectralDensity:
    """Stochastic Lanczos quadrature of ``A`` or ``M^-1 A``.

    Parameters
    ----------
    A : operator, sparse matrix, ndarray or LinearOperator
        Symmetric (a ``support`` and a constant null space are honoured as in
        :func:`~dcdm.spectrum.lanczos`).
    M : None, str, Preconditioner, callable or LinearOperator
        A linear SPD preconditioner.
    steps : int
        Lanczos steps per probe (``1 <= steps <= n``).
    probes : int
        Random Rademacher start vectors (``>= 1``).
    seed : int, optional
        Seed of the probes.
    reorthogonalize : {"none", "full", "selective"}
        ``"none"`` keeps memory at a few vectors.
    precond_options : dict, optional
        Options of a preconditioner given by name.
    progress : bool
        A tqdm bar over the probes.

    Returns
    -------
    SpectralDensity

    Examples
    --------
    The trace of the 2-D Poisson matrix (diagonal 4) is ``4 n``:

    >>> from dcdm import spectrum
    >>> from dcdm.problems import gallery
    >>> A, _ = gallery.poisson((16, 16))
    >>> d = spectrum.slq(A, steps=30, probes=20, seed=1)
    >>> bool(abs(d.trace() - 4 * 256) <= 3 * d.trace_std() + 1e-9)
    True
    """
    if reorthogonalize not in REORTHOGONALIZE:
        raise ValueError(f"reorthogonalize must be one of {REORTHOGONALIZE}, "
                         f"got {reorthogonalize!r}")
    A, P, support = prepare(A, M, None, precond_options)
    ops = Restricted(A, P, support)
    k = int(support.sum())
    for name, value, low in (("steps", steps, 1), ("probes", probes, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if steps > k:
        raise ValueError(f"steps must be at most the number of unknowns ({k}), got {steps}; "
                         "with steps = n the quadrature is already exact")
    ns = getattr(A, "nullspace", None)
    dim = k - (ns.dimension if ns is not None else 0)
    scale = _uniform_scaling(P, support)
    rng = np.random.default_rng(seed)
    nodes, weights, which = [], [], []
    bar = range(probes)
    if progress:
        from dcdm.kernels.optional import require

        bar = require("tqdm", "slq(progress=True)").tqdm(bar, desc="SLQ probes", unit="probe")
    for l in bar:
        v = _rademacher(rng, k)
        if scale is not None:
            v *= scale
        basis = _run(ops, steps, v0=v, how=reorthogonalize)
        theta, w = basis.quadrature()
        nodes.append(theta)
        weights.append(w / probes)
        which.append(np.full(theta.size, l))
    return SpectralDensity(np.concatenate(nodes), np.concatenate(weights),
                           np.concatenate(which), dim,
                           "uniform" if P is None or scale is not None else "residual",
                           "none" if P is None else str(getattr(P, "name", type(P).__name__)))


def _uniform_scaling(P: Any, support: np.ndarray) -> np.ndarray | None:
    """``P^(-1/2)`` on the support when ``P`` is diagonal (it declares its
    ``inverse_diagonal``, as Jacobi does), else None (no scaling makes the measure uniform;
    without ``P`` the plain start already is)."""
    inv = getattr(P, "inverse_diagonal", None)
    if inv is None:
        return None
    inv = np.asarray(inv, dtype=np.float64).reshape(-1)[support]
    return 1.0 / np.sqrt(inv)
