"""Optimization test problems with exact and approximate Hessians (issue 14).

Each factory returns an :class:`Objective`: value, gradient, exact Hessian (and products),
named PSD Hessian approximations, start point, optimal value where known and the metric
``B`` of the reference experiments of GNS (Semenov, Jaggi, Doikov, arXiv 2506.13710; code
``epfml/grad-norm-smooth``), whose step solves the SPD system ``(H + lambda B) d = -g``.
Data come from ``np.random.default_rng(seed)``: the distributions of the reference
notebook, not its legacy ``np.random.seed`` numbers.

Examples
--------
>>> from dcdm.problems import optimization
>>> obj = optimization.rosenbrock()
>>> obj.fun(obj.x0), obj.fun(obj.x_star) == obj.f_star
(409.0, True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.sparse.linalg import LinearOperator
from scipy.special import expit, softmax
from scipy.special import logsumexp as _lse

from dcdm.solvers.restriction import RestrictedOperator, restrict

from . import scenes
from .grid import Grid

__all__ = ["Objective", "PoissonObjective", "chebyshev", "logistic_regression", "logsumexp",
           "nonlinear_equations", "rosenbrock", "semilinear_poisson"]

Matrix = np.ndarray | sp.sparray | LinearOperator
Vector = np.ndarray  # a 1-D float array


@dataclass(frozen=True, repr=False)
class Objective:
    """One smooth test problem: value, derivatives, Hessian approximations, data.

    ``fun(x)``, ``jac(x)`` (the gradient), ``hessp(x, v)`` and ``hess(x)`` are exact
    (``hess`` dense, CSR on grids); ``approx`` maps names to symmetric PSD approximations
    ``x -> H`` (dense, sparse or LinearOperator). ``x0``, ``x_star`` and the generated
    ``data`` arrays are read-only; ``x_star``/``f_star`` are None where unknown; ``B`` is
    the metric of the reference experiments (None: the identity).
    """

    name: str
    fun: Callable[[Vector], float]
    jac: Callable[[Vector], Vector]
    hessp: Callable[[Vector, Vector], Vector]
    hess: Callable[[Vector], Matrix]
    approx: Mapping[str, Callable[[Vector], Matrix]]
    x0: Vector
    f_star: float | None
    x_star: Vector | None
    B: Matrix | None
    data: Mapping[str, np.ndarray]
    description: str

    @property
    def n(self) -> int:
        """Number of unknowns."""
        return int(self.x0.size)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, n={self.n}, f_star={self.f_star}, "
                f"approx={sorted(self.approx)})")


@dataclass(frozen=True, repr=False)
class PoissonObjective(Objective):
    """An :class:`Objective` on the FLUID unknowns of ``grid`` (``fluid_index``: their flat
    grid indices), with what a multigrid needs: the CSR Laplacian ``A`` on them and the
    same matrix-free (``laplacian``, a :class:`~dcdm.solvers.RestrictedOperator` of the
    grid operator), the exact Hessian ``hess(u) = A + diag(diagonal_shift(u))`` as a
    matrix-free ``operator(u)`` of the same kind (``M="mg"`` builds on the shifted grid
    operator; ``H + lam I`` and ``H + lam * laplacian`` stay such operators)."""

    grid: Grid
    A: sp.csr_array
    fluid_index: np.ndarray
    operator: Callable[[Vector], RestrictedOperator]
    diagonal_shift: Callable[[Vector], Vector]
    laplacian: RestrictedOperator


# -- argument checks ------------------------------------------------------------------
def _int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _real(name: str, value: float, *, positive: bool = False, nonneg: bool = False) -> float:
    v = float(value)
    if not np.isfinite(v) or (positive and v <= 0) or (nonneg and v < 0):
        what = "positive " if positive else "non-negative " if nonneg else ""
        raise ValueError(f"{name} must be a {what}finite number, got {value!r}")
    return v


def _power(p: float) -> float:
    p = _real("p", p)
    if p < 2:
        raise ValueError(f"p must be >= 2 (for a C^2 f = ||u||^p / p), got {p!r}")
    return p


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def _data(**arrays: np.ndarray) -> Mapping[str, np.ndarray]:
    for a in arrays.values():
        a.flags.writeable = False  # the closures read these very arrays
    return MappingProxyType(arrays)


def _vec(x: Vector) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


# -- f = (scale / p) ||u(x)||^p for a residual u with Jacobian J -----------------------
Residual = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | sp.sparray, np.ndarray]]


def _residual_power(name: str, residual: Residual, p: float, scale: float,
                    approx_names: tuple[str, ...], **fields) -> Objective:
    """``residual(x) -> (u, J, s)``, ``s`` the diagonal of ``sum_i u_i grad^2 u_i``.

    Hessian = scale (||u||^(p-2) (J^T J + diag s) + (p-2) ||u||^(p-4) (J^T u)(J^T u)^T);
    the approximations drop ``diag s`` ("inexact") and one of the two other terms.
    """

    def parts(x):
        u, J, s = residual(_vec(x))
        r = float(np.linalg.norm(u))
        # the rank-one weight is O(||u||^(p-2)) once multiplied by g g^T: 0 at a root
        w4 = (p - 2) * r ** (p - 4) if r > 0 else 0.0
        return J, s, J.T @ u, scale * r ** (p - 2), scale * w4

    def jac(x):
        _, _, g, w2, _ = parts(x)
        return w2 * g

    def hessp(x, v):
        J, s, g, w2, w4 = parts(x)
        v = _vec(v)
        return w2 * (J.T @ (J @ v) + s * v) + w4 * g * (g @ v)

    def matrix(x, terms: str):
        """The sum of the Hessian ``terms``: G(auss-Newton), R(ank one), C(urvature)."""
        J, s, g, w2, w4 = parts(x)
        G = J.T @ J if "G" in terms else np.zeros((g.size, g.size))
        H = w2 * (G.toarray() if sp.issparse(G) else G)
        if "R" in terms:
            H += w4 * np.outer(g, g)
        if "C" in terms:
            H[np.diag_indices(g.size)] += w2 * s
        return H

    table = {"gauss_newton": "G", "fisher_rank_one": "R", "inexact": "GR"}
    return Objective(
        name=name, fun=lambda x: scale / p * float(np.linalg.norm(residual(_vec(x))[0])) ** p,
        jac=jac, hessp=hessp, hess=partial(matrix, terms="GRC"),
        approx=MappingProxyType({k: partial(matrix, terms=table[k]) for k in approx_names}),
        **fields)


# -- the problems -----------------------------------------------------------------------
def logsumexp(n: int = 200, m: int = 200, mu: float = 1.0, seed: int = 3124) -> Objective:
    """LogSumExp ``f(x) = mu log sum_i exp((a_i.x - b_i) / mu)``, shifted so ``x* = 0``.

    ``A0`` (``m x n``) and ``b`` are ``U(-1, 1)``; as in the reference, the gradient at 0,
    ``g0``, is subtracted from every row: ``A = A0 - 1 g0^T``, i.e. ``f(x) - g0.x`` (the
    softmax sums to 1), so ``grad f(0) = 0`` and ``f* = f(0)``. ``approx["gauss_newton"]``
    is ``(1/mu) A^T Diag(pi) A`` (``pi`` the softmax); the exact Hessian is that minus
    ``(1/mu) (A^T pi)(A^T pi)^T``. ``B = A0^T A0 + 1e-8 I``; ``x0`` is all ones.

    Examples
    --------
    >>> obj = logsumexp(n=5, m=8)
    >>> bool(np.linalg.norm(obj.jac(np.zeros(5))) < 1e-12), obj.fun(obj.x0) > obj.f_star
    (True, True)
    """
    n, m, mu = _int("n", n, 1), _int("m", m, 1), _real("mu", mu, positive=True)
    rng = np.random.default_rng(seed)
    A0 = rng.uniform(-1.0, 1.0, (m, n))
    b = rng.uniform(-1.0, 1.0, m)
    A = A0 - softmax(-b / mu) @ A0

    def pi(x):
        return softmax((A @ _vec(x) - b) / mu)

    def gauss_newton(x):
        return (A.T * pi(x)) @ A / mu

    def hessp(x, v):
        w, Av = pi(x), A @ _vec(v)
        return A.T @ (w * Av - w * (w @ Av)) / mu

    return Objective(
        name="logsumexp", fun=lambda x: mu * float(_lse((A @ _vec(x) - b) / mu)),
        jac=lambda x: pi(x) @ A, hessp=hessp,
        hess=lambda x: gauss_newton(x) - np.outer(pi(x) @ A, pi(x) @ A) / mu,
        approx=MappingProxyType({"gauss_newton": gauss_newton}), x0=_frozen(np.ones(n)),
        f_star=mu * float(_lse(-b / mu)), x_star=_frozen(np.zeros(n)),
        B=A0.T @ A0 + 1e-8 * np.eye(n), data=_data(A=A, A0=A0, b=b),
        description=f"LogSumExp, n={n}, m={m}, mu={mu}, shifted so that x* = 0")


def nonlinear_equations(m: int = 100, n: int = 200, p: float = 4,
                        seed: int = 3124) -> Objective:
    """Nonlinear equations ``f(x) = (1/p) ||A x - b||^p``, ``p >= 2``.

    ``A`` (``m x n``) is ``U(-1, 1)``, ``b = A x*`` for ``x* ~ U(-1, 1)``: ``f* = 0`` (the
    reference draws ``b``; for ``m <= n`` the same problem). ``x0 = 1``,
    ``B = A^T A + 1e-8 I``. With ``u = Ax - b``, ``approx["gauss_newton"] = ||u||^(p-2)
    A^T A`` plus ``approx["fisher_rank_one"] = (p-2) ||u||^(p-4) (A^T u)(A^T u)^T`` is H.

    Examples
    --------
    >>> obj = nonlinear_equations(m=3, n=5)
    >>> obj.fun(obj.x_star), sorted(obj.approx)
    (0.0, ['fisher_rank_one', 'gauss_newton'])
    """
    m, n, p = _int("m", m, 1), _int("n", n, 1), _power(p)
    rng = np.random.default_rng(seed)
    A = rng.uniform(-1.0, 1.0, (m, n))
    x_star = rng.uniform(-1.0, 1.0, n)
    b = A @ x_star
    zero = np.zeros(n)
    return _residual_power(
        "nonlinear_equations", lambda x: (A @ x - b, A, zero), p, 1.0,
        ("gauss_newton", "fisher_rank_one"), x0=_frozen(np.ones(n)), f_star=0.0,
        x_star=_frozen(x_star), B=A.T @ A + 1e-8 * np.eye(n), data=_data(A=A, b=b),
        description=f"(1/{p:g}) ||Ax - b||^{p:g}, A {m} x {n}, b = A x*")


def chebyshev(d: int = 1000, p: float = 4, seed: int = 3124) -> Objective:
    """Nesterov's Chebyshev-Rosenbrock chain ``f(x) = (1/p) ||u(x)||^p``.

    ``u_1 = (1 - x_1) / 2``, ``u_{i+1} = x_{i+1} - 2 x_i^2 + 1`` (the reference's
    ``ChebyshevOracle``); ``x* = 1``, ``f* = 0``, ``x0 ~ U(0, 1)`` from ``seed``. ``J`` is
    sparse bidiagonal; ``approx["inexact"] = ||u||^(p-2) J^T J + (p-2) ||u||^(p-4) (J^T u)
    (J^T u)^T`` drops ``sum_i u_i grad^2 u_i``; ``"gauss_newton"`` and
    ``"fisher_rank_one"`` are its two terms. Hessians are dense.

    Examples
    --------
    >>> obj = chebyshev(d=4)
    >>> obj.fun(np.ones(4)), obj.hess(obj.x0).shape
    (0.0, (4, 4))
    """
    d, p = _int("d", d, 1), _power(p)
    x0 = np.random.default_rng(seed).random(d)

    def residual(x):
        u = np.empty(d)
        u[0] = 0.5 * (1.0 - x[0])
        u[1:] = x[1:] - 2.0 * x[:-1] ** 2 + 1.0
        J = sp.diags_array([np.r_[-0.5, np.ones(d - 1)], -4.0 * x[:-1]], offsets=[0, -1],
                           shape=(d, d), format="csr")
        return u, J, np.r_[-4.0 * u[1:], 0.0]

    return _residual_power(
        "chebyshev", residual, p, 1.0, ("inexact", "gauss_newton", "fisher_rank_one"),
        x0=_frozen(x0), f_star=0.0, x_star=_frozen(np.ones(d)), B=None, data=_data(),
        description=f"Chebyshev-Rosenbrock chain, d={d}, p={p:g}")


def rosenbrock(d: int = 2, p: float | None = None, a: float = 1.0,
               b: float = 100.0) -> Objective:
    """Rosenbrock's function, classical (``p=None``) or as nonlinear equations (``p``).

    Residuals ``u = (a - x_k, sqrt(b) (x_{k+1} - x_k^2))``, ``k < d - 1`` (``d > 2``: the
    extended chain). ``p=None``: ``f = ||u||^2 = (a - x)^2 + b (y - x^2)^2``,
    ``approx["gauss_newton"] = 2 J^T J``; a number: ``f = (1/p) ||u||^p`` with the
    approximations of :func:`chebyshev`. ``x0 = (-2, 2, ...)``, ``x* = a``, ``f* = 0``.

    Examples
    --------
    >>> obj = rosenbrock(p=5)
    >>> obj.x0.tolist(), obj.f_star, sorted(obj.approx)
    ([-2.0, 2.0], 0.0, ['fisher_rank_one', 'gauss_newton', 'inexact'])
    """
    d = _int("d", d, 2)
    pp = 2.0 if p is None else _power(p)
    a, b = _real("a", a), _real("b", b, positive=True)
    sb, k = np.sqrt(b), np.arange(d - 1)

    def residual(x):
        u = np.empty(2 * (d - 1))
        u[0::2] = a - x[:-1]
        u[1::2] = sb * (x[1:] - x[:-1] ** 2)
        J = sp.csr_array((np.r_[-np.ones(d - 1), -2.0 * sb * x[:-1], np.full(d - 1, sb)],
                          (np.r_[2 * k, 2 * k + 1, 2 * k + 1], np.r_[k, k, k + 1])),
                         shape=(2 * (d - 1), d))
        return u, J, np.r_[-2.0 * sb * u[1::2], 0.0]

    names = ("gauss_newton",) if p is None else ("inexact", "gauss_newton", "fisher_rank_one")
    form = "(a - x)^2 + b (y - x^2)^2" if p is None else f"(1/{pp:g}) ||u||^{pp:g}"
    return _residual_power(
        "rosenbrock", residual, pp, 2.0 if p is None else 1.0, names,
        x0=_frozen(np.resize([-2.0, 2.0], d)), f_star=0.0, x_star=_frozen(np.full(d, a)),
        B=None, data=_data(), description=f"Rosenbrock {form}, d={d}, a={a:g}, b={b:g}")


def logistic_regression(m: int = 1000, n: int = 100, reg: float = 1e-3, seed: int = 0,
                        noise: float = 0.1) -> Objective:
    """L2-regularized logistic regression ``mean_i log(1 + exp(-y_i x_i.w)) + reg/2 ||w||^2``.

    ``X ~ N(0, 1)`` (``m x n``), ``y = sign(X w_true)`` for a random ``w_true`` with a
    fraction ``noise`` flipped (not separable). ``approx["fisher"] = (1/m) sum_i g_i g_i^T
    + reg I`` (``g_i`` the per-sample loss gradients). ``B = X^T X / m + reg I``, ``x0 = 0``.
    ``x_star``, ``f_star``: ``scipy.optimize.minimize(method="trust-exact")`` and two Newton
    steps, to ``||grad|| <= 1e-12``; None if that fails (separable data with ``reg = 0``).

    Examples
    --------
    >>> obj = logistic_regression(m=40, n=3)
    >>> round(obj.fun(obj.x0), 6), bool(np.linalg.norm(obj.jac(obj.x_star)) < 1e-10)
    (0.693147, True)
    """
    m, n = _int("m", m, 1), _int("n", n, 1)
    reg, noise = _real("reg", reg, nonneg=True), _real("noise", noise, nonneg=True)
    if noise > 0.5:
        raise ValueError(f"noise must be in [0, 0.5] (a fraction of flipped labels), got {noise}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, n))
    y = np.where(X @ rng.standard_normal(n) >= 0, 1.0, -1.0)
    y[rng.random(m) < noise] *= -1.0

    def margins(w):
        return y * (X @ _vec(w))

    def fun(w):
        w = _vec(w)
        return float(np.mean(np.logaddexp(0.0, -margins(w))) + 0.5 * reg * (w @ w))

    def jac(w):
        return -(X.T @ (y * expit(-margins(w)))) / m + reg * _vec(w)

    def weighted(c):  # (1/m) X^T diag(c) X + reg I
        return (X.T * c) @ X / m + reg * np.eye(n)

    def curvature(w):  # the loss's second derivative per sample, sigma(z) sigma(-z)
        return expit(margins(w)) * expit(-margins(w))

    def hessp(w, v):
        return X.T @ (curvature(w) * (X @ _vec(v))) / m + reg * _vec(v)

    def hess(w):
        return weighted(curvature(w))

    with np.errstate(all="ignore"):
        try:  # the trust region stalls on round-off near 1e-11: finish with plain Newton
            w = minimize(fun, np.zeros(n), jac=jac, hess=hess, method="trust-exact",
                         options={"gtol": 1e-10, "maxiter": 200}).x
            for _ in range(2):
                w = w - np.linalg.solve(hess(w), jac(w))
        except np.linalg.LinAlgError:
            w = None
        w = w if w is not None and np.linalg.norm(jac(w)) <= 1e-12 else None
    return Objective(
        name="logistic_regression", fun=fun, jac=jac, hessp=hessp, hess=hess,
        approx=MappingProxyType({"fisher": lambda w: weighted(expit(-margins(w)) ** 2)}),
        x0=_frozen(np.zeros(n)), f_star=None if w is None else fun(w),
        x_star=None if w is None else _frozen(w), B=X.T @ X / m + reg * np.eye(n),
        data=_data(X=X, y=y),
        description=f"logistic regression, m={m}, n={n}, reg={reg:g}, {noise:.0%} noise")


_PHI: dict[str, tuple[Callable[[Vector], Vector], ...]] = {
    "quartic": (lambda u: u**4 / 4, lambda u: u**3, lambda u: 3 * u**2),
    "cosh": (lambda u: np.cosh(u) - 1, np.sinh, np.cosh),
}


def semilinear_poisson(shape: tuple[int, ...] = (64, 64), b_scale: float = 1.0,
                       phi: str = "quartic", seed: int = 0,
                       obstacles: int = 0) -> PoissonObjective:
    """Semilinear Poisson energy ``f(u) = 1/2 u^T A u + sum_i phi(u_i) - b^T u``.

    ``A``: the Laplacian of ``scenes.smoke(shape, obstacles=obstacles, seed=seed)`` (open
    top: SPD) restricted to the FLUID unknowns; ``fluid_index`` maps vectors (length
    ``grid.n_fluid``) into the grid layout. ``phi``: ``"quartic"`` (``u^4/4``) or
    ``"cosh"`` (``cosh u - 1``); ``b = b_scale N(0, I)`` from ``seed``. The SPD Hessian
    ``A + diag(phi''(u))``: CSR from ``hess``, matrix-free from ``operator``, its shift from
    ``diagonal_shift`` (for a multigrid on ``grid``); ``approx["laplacian"]`` is ``A``.
    ``x0 = 0``, ``f_star`` and ``B`` None (``B = obj.A`` is the Sobolev choice).

    Examples
    --------
    >>> obj = semilinear_poisson((8, 8))
    >>> obj.n == obj.grid.n_fluid, type(obj.hess(obj.x0)).__name__
    (True, 'csr_array')
    """
    if phi not in _PHI:
        raise ValueError(f"phi must be one of {sorted(_PHI)}, got {phi!r}")
    b_scale = _real("b_scale", b_scale)
    grid = scenes.smoke(shape, obstacles=_int("obstacles", obstacles, 0), seed=seed)
    lap = grid.laplacian()
    idx = np.flatnonzero(lap.support)
    A = sp.csr_array(lap.to_csr()[idx][:, idx])
    b = b_scale * np.random.default_rng(seed).standard_normal(idx.size)
    f_phi, d_phi, dd_phi = _PHI[phi]

    def fun(u):  # sums, not BLAS dots: OpenBLAS's threads would spin against the kernels'
        u = _vec(u)
        return float(np.sum(u * (0.5 * (A @ u) - b)) + np.sum(f_phi(u)))

    def shift(u):
        return dd_phi(_vec(u))

    def operator(u):  # A + diag(phi''(u)) on the FLUID unknowns, matrix-free
        full = np.zeros(grid.size)
        full[idx] = shift(u)
        return restrict(lap.shifted(full), idx)

    return PoissonObjective(
        name="semilinear_poisson", fun=fun, jac=lambda u: A @ _vec(u) + d_phi(_vec(u)) - b,
        hessp=lambda u, v: A @ _vec(v) + shift(u) * _vec(v),
        hess=lambda u: sp.csr_array(A + sp.diags_array(shift(u))),
        approx=MappingProxyType({"laplacian": lambda u: A.copy()}),
        x0=_frozen(np.zeros(idx.size)), f_star=None, x_star=None, B=None, data=_data(b=b),
        description=f"semilinear Poisson, phi={phi}, grid {grid.shape}, "
                    f"{idx.size} FLUID unknowns", grid=grid, A=A, fluid_index=idx,
        operator=operator, diagonal_shift=shift, laplacian=restrict(lap, idx))
