"""The optimization test problems: derivatives against finite differences, the Hessian
approximations against their definitions, minimizers, seeding and argument errors."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from dcdm.problems import optimization as opt
from dcdm.problems import scenes

# small instances of every problem (and the variants that take other code paths)
CASES = {
    "logsumexp": lambda: opt.logsumexp(n=6, m=9),
    "logsumexp_mu": lambda: opt.logsumexp(n=5, m=4, mu=0.3, seed=1),
    "nle_p4": lambda: opt.nonlinear_equations(m=4, n=7),
    "nle_p3.5": lambda: opt.nonlinear_equations(m=6, n=5, p=3.5),
    "nle_p2": lambda: opt.nonlinear_equations(m=5, n=5, p=2),
    "chebyshev_p4": lambda: opt.chebyshev(d=7),
    "chebyshev_p3": lambda: opt.chebyshev(d=5, p=3),
    "rosenbrock": lambda: opt.rosenbrock(),
    "rosenbrock_p5": lambda: opt.rosenbrock(p=5),
    "rosenbrock_d5_p3": lambda: opt.rosenbrock(d=5, p=3),
    "logistic": lambda: opt.logistic_regression(m=60, n=5),
    "poisson_quartic": lambda: opt.semilinear_poisson((6, 6)),
    "poisson_cosh": lambda: opt.semilinear_poisson((6, 7), phi="cosh", b_scale=0.5),
    "poisson_obstacles": lambda: opt.semilinear_poisson((12, 12), obstacles=2, seed=3),
}


@pytest.fixture(params=sorted(CASES), scope="module")
def obj(request):
    return CASES[request.param]()


def dense(M, n):
    if isinstance(M, LinearOperator):
        return M @ np.eye(n)
    return M.toarray() if sp.issparse(M) else np.asarray(M)


def points(obj, rng):
    """The start point and a random point near it (away from the minimizer)."""
    return [np.asarray(obj.x0), obj.x0 + 0.3 * rng.standard_normal(obj.n)]


def test_jac_matches_central_differences(obj, rng):
    for x in points(obj, rng):
        g = obj.jac(x)
        h = 1e-6 * max(1.0, np.linalg.norm(x, np.inf))
        fd = np.array([(obj.fun(x + h * e) - obj.fun(x - h * e)) / (2 * h)
                       for e in np.eye(obj.n)])
        assert g.shape == (obj.n,)
        assert np.linalg.norm(fd - g) <= 1e-6 * np.linalg.norm(g) + 1e-9


def test_hessp_matches_differences_of_jac_and_hess(obj, rng):
    for x in points(obj, rng):
        v = rng.standard_normal(obj.n)
        hv = obj.hessp(x, v)
        h = 1e-6 * max(1.0, np.linalg.norm(x, np.inf))
        fd = (obj.jac(x + h * v) - obj.jac(x - h * v)) / (2 * h)
        assert np.linalg.norm(fd - hv) <= 1e-6 * np.linalg.norm(hv)
        np.testing.assert_allclose(dense(obj.hess(x), obj.n) @ v, hv, rtol=1e-10,
                                   atol=1e-12 * np.linalg.norm(hv))


def test_hess_symmetric(obj, rng):
    for x in points(obj, rng):
        H = dense(obj.hess(x), obj.n)
        assert H.shape == (obj.n, obj.n)
        np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-13 * np.abs(H).max())


def test_approximations_symmetric_psd(obj, rng):
    assert len(obj.approx) >= 1
    for x in points(obj, rng):
        for name, approx in obj.approx.items():
            H = dense(approx(x), obj.n)
            np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-13 * max(np.abs(H).max(), 1),
                                       err_msg=name)
            lam = np.linalg.eigvalsh(H)
            assert lam[0] >= -1e-10 * max(lam[-1], 1e-300), (name, lam[0], lam[-1])


def test_minimizer(obj):
    if obj.f_star is None:
        assert obj.x_star is None
        return
    assert obj.fun(obj.x_star) == obj.f_star
    assert np.linalg.norm(obj.jac(obj.x_star)) <= 1e-10
    assert obj.fun(obj.x0) > obj.f_star


def test_objective_fields(obj):
    assert obj.x0.shape == (obj.n,) and not obj.x0.flags.writeable
    assert obj.description and obj.name in repr(obj)
    for a in obj.data.values():
        assert not a.flags.writeable
    with pytest.raises(TypeError):
        obj.approx["new"] = None
    if obj.B is not None:
        B = dense(obj.B, obj.n)
        np.testing.assert_allclose(B, B.T)
        assert np.linalg.eigvalsh(B)[0] > 0


# -- the formulas, computed another way ----------------------------------------------------
def test_logsumexp_shift_and_gauss_newton(rng):
    obj = opt.logsumexp(n=6, m=9, mu=0.7)
    A, A0, b, mu = obj.data["A"], obj.data["A0"], obj.data["b"], 0.7
    assert np.linalg.norm(obj.jac(np.zeros(6))) <= 1e-14
    assert obj.fun(np.zeros(6)) == obj.f_star
    x = rng.standard_normal(6)
    # f(x) = mu lse((A0 x - b) / mu) - g0.x with g0 the unshifted gradient at 0
    w0 = np.exp(-b / mu) / np.exp(-b / mu).sum()
    assert obj.fun(x) == pytest.approx(mu * np.log(np.exp((A0 @ x - b) / mu).sum())
                                       - (A0.T @ w0) @ x, rel=1e-12)
    pi = np.exp((A @ x - b) / mu)
    pi /= pi.sum()
    gn = sum(p * np.outer(a, a) for p, a in zip(pi, A, strict=True)) / mu
    np.testing.assert_allclose(obj.approx["gauss_newton"](x), gn, rtol=1e-12, atol=1e-14)
    g = obj.jac(x)
    np.testing.assert_allclose(gn - np.outer(g, g) / mu, obj.hess(x), atol=1e-12)
    np.testing.assert_allclose(obj.B, A0.T @ A0 + 1e-8 * np.eye(6))


def test_nonlinear_equations_parts(rng):
    p = 4
    obj = opt.nonlinear_equations(m=4, n=7, p=p)
    A, b = obj.data["A"], obj.data["b"]
    x = rng.standard_normal(7)
    u = A @ x - b
    r = np.linalg.norm(u)
    gn, fisher = obj.approx["gauss_newton"](x), obj.approx["fisher_rank_one"](x)
    np.testing.assert_allclose(gn, r ** (p - 2) * A.T @ A, rtol=1e-12)
    np.testing.assert_allclose(fisher, (p - 2) * r ** (p - 4) * np.outer(A.T @ u, A.T @ u),
                               rtol=1e-12)
    assert np.linalg.matrix_rank(fisher) == 1
    np.testing.assert_allclose(gn + fisher, obj.hess(x), rtol=1e-12)
    np.testing.assert_array_equal(b, A @ obj.x_star)


def _chebyshev_residual(x):
    u = [0.5 * (1 - x[0])]
    for i in range(1, len(x)):
        u.append(x[i] - 2 * x[i - 1] ** 2 + 1)
    return np.array(u)


def test_chebyshev_inexact_drops_residual_curvature(rng):
    p, d = 4, 6
    obj = opt.chebyshev(d=d, p=p)
    x = rng.random(d)
    u = _chebyshev_residual(x)
    assert obj.fun(x) == pytest.approx(np.linalg.norm(u) ** p / p, rel=1e-14)
    h = 1e-6
    J = np.column_stack([(_chebyshev_residual(x + h * e) - _chebyshev_residual(x - h * e))
                         / (2 * h) for e in np.eye(d)])
    r = np.linalg.norm(u)
    np.testing.assert_allclose(obj.approx["gauss_newton"](x), r ** (p - 2) * J.T @ J,
                               rtol=1e-7, atol=1e-9)
    # sum_i u_i grad^2 u_i, with grad^2 u_i = -4 e_(i-1) e_(i-1)^T for i >= 1
    curvature = np.zeros((d, d))
    for i in range(1, d):
        curvature[i - 1, i - 1] += -4.0 * u[i]
    np.testing.assert_allclose(obj.hess(x) - obj.approx["inexact"](x),
                               r ** (p - 2) * curvature, atol=1e-12)
    assert not obj.hess(np.ones(d)).any()  # p = 4: the Hessian vanishes at x*


def test_rosenbrock_classical_and_residual_forms(rng):
    classical, nle = opt.rosenbrock(), opt.rosenbrock(p=2)
    for x in [np.array([-2.0, 2.0]), rng.standard_normal(2)]:
        assert classical.fun(x) == pytest.approx((1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2)
        assert classical.fun(x) == pytest.approx(2 * nle.fun(x))
        H = np.array([[2 - 400 * (x[1] - 3 * x[0] ** 2), -400 * x[0]], [-400 * x[0], 200.0]])
        np.testing.assert_allclose(classical.hess(x), H, rtol=1e-12)
    chain = opt.rosenbrock(d=4)
    x = rng.standard_normal(4)
    assert chain.fun(x) == pytest.approx(sum((1 - x[k]) ** 2 + 100 * (x[k + 1] - x[k] ** 2) ** 2
                                             for k in range(3)))
    np.testing.assert_array_equal(chain.x0, [-2.0, 2.0, -2.0, 2.0])


def test_logistic_fisher_from_per_sample_gradients(rng):
    obj = opt.logistic_regression(m=50, n=4, reg=1e-2)
    X, y = obj.data["X"], obj.data["y"]
    w = rng.standard_normal(4)
    fisher = 1e-2 * np.eye(4)
    for xi, yi in zip(X, y, strict=True):
        gi = -yi * xi / (1 + np.exp(yi * xi @ w))
        fisher += np.outer(gi, gi) / 50
    np.testing.assert_allclose(obj.approx["fisher"](w), fisher, rtol=1e-12)
    loss = np.mean([np.log1p(np.exp(-yi * xi @ w)) for xi, yi in zip(X, y, strict=True)])
    assert obj.fun(w) == pytest.approx(loss + 0.5e-2 * w @ w, rel=1e-12)
    np.testing.assert_allclose(obj.B, X.T @ X / 50 + 1e-2 * np.eye(4))
    assert set(np.unique(y)) == {-1.0, 1.0}
    assert np.linalg.norm(obj.jac(obj.x_star)) <= 1e-12


def test_logistic_data_not_separable():
    obj = opt.logistic_regression(m=200, n=5, reg=0.0)
    # with reg = 0 a finite minimizer exists only for non-separable data
    assert obj.f_star is not None and obj.f_star > 0.1


def test_logistic_separable_data_have_no_reference_minimum():
    obj = opt.logistic_regression(m=10, n=20, reg=0.0, noise=0.0)
    assert obj.f_star is None and obj.x_star is None


@pytest.mark.parametrize("phi", ["quartic", "cosh"])
def test_semilinear_poisson_hessian(phi, rng):
    obj = opt.semilinear_poisson((7, 6), phi=phi, obstacles=1, seed=2)
    grid = obj.grid
    fluid = np.flatnonzero(grid.fluid)
    np.testing.assert_array_equal(obj.fluid_index, fluid)
    A = grid.laplacian().to_csr().toarray()[np.ix_(fluid, fluid)]
    np.testing.assert_array_equal(obj.A.toarray(), A)
    u = rng.standard_normal(obj.n)
    dd = 3 * u**2 if phi == "quartic" else np.cosh(u)
    H = obj.hess(u)
    assert isinstance(H, sp.csr_array)
    np.testing.assert_allclose(H.toarray(), A + np.diag(dd), rtol=1e-14)
    np.testing.assert_allclose(obj.diagonal_shift(u), dd)
    np.linalg.cholesky(H.toarray())  # SPD
    v = rng.standard_normal(obj.n)
    np.testing.assert_allclose(obj.operator(u) @ v, H @ v, rtol=1e-12)
    b = obj.data["b"]
    phi_sum = np.sum(u**4 / 4) if phi == "quartic" else np.sum(np.cosh(u) - 1)
    assert obj.fun(u) == pytest.approx(0.5 * u @ A @ u + phi_sum - b @ u, rel=1e-12)
    np.testing.assert_array_equal(obj.approx["laplacian"](u).toarray(), A)


def test_semilinear_poisson_grid_and_rhs():
    obj = opt.semilinear_poisson((8, 8), b_scale=2.0, obstacles=0)
    ref = scenes.tank((8, 8))
    np.testing.assert_array_equal(obj.grid.flags, ref.flags)
    np.testing.assert_allclose(obj.data["b"],
                               2.0 * np.random.default_rng(0).standard_normal(obj.n))
    assert obj.f_star is None and obj.B is None


# -- seeding -----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda s: opt.logsumexp(n=4, m=5, seed=s),
    lambda s: opt.nonlinear_equations(m=3, n=4, seed=s),
    lambda s: opt.chebyshev(d=5, seed=s),
    lambda s: opt.logistic_regression(m=30, n=3, seed=s),
    lambda s: opt.semilinear_poisson((6, 6), seed=s),
])
def test_seeded_determinism(make):
    a, b, c = make(7), make(7), make(8)
    np.testing.assert_array_equal(a.x0, b.x0)
    assert a.data.keys() == b.data.keys()
    for k in a.data:
        np.testing.assert_array_equal(a.data[k], b.data[k])
    x = a.x0 + 0.1
    assert a.fun(x) == b.fun(x)
    assert not np.array_equal(a.x0, c.x0) or a.fun(x) != c.fun(x)  # another seed differs


# -- argument errors -----------------------------------------------------------------------
@pytest.mark.parametrize(("call", "match"), [
    (lambda: opt.nonlinear_equations(p=1.5), "p must be >= 2"),
    (lambda: opt.chebyshev(d=3, p=1), "p must be >= 2"),
    (lambda: opt.rosenbrock(p=0), "p must be >= 2"),
    (lambda: opt.nonlinear_equations(p=float("nan")), "p must be"),
    (lambda: opt.logsumexp(n=0), "n must be an integer >= 1"),
    (lambda: opt.logsumexp(m=0), "m must be an integer >= 1"),
    (lambda: opt.logsumexp(mu=0.0), "mu must be a positive"),
    (lambda: opt.nonlinear_equations(n=0), "n must be an integer >= 1"),
    (lambda: opt.logistic_regression(n=0), "n must be an integer >= 1"),
    (lambda: opt.logistic_regression(reg=-1.0), "reg must be a non-negative"),
    (lambda: opt.logistic_regression(noise=0.7), "noise must be in"),
    (lambda: opt.chebyshev(d=0), "d must be an integer >= 1"),
    (lambda: opt.chebyshev(d=2.5), "d must be an integer"),
    (lambda: opt.rosenbrock(d=1), "d must be an integer >= 2"),
    (lambda: opt.semilinear_poisson((6, 6), phi="exp"), "phi must be one of"),
    (lambda: opt.semilinear_poisson((6, 6), b_scale=float("inf")), "b_scale must be a finite"),
    (lambda: opt.semilinear_poisson((6, 6), b_scale=float("nan")), "b_scale must be a finite"),
    (lambda: opt.semilinear_poisson((6, 6), obstacles=-1), "obstacles must be"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
