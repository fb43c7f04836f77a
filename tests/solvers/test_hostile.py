"""Hostile inputs (issue 12): every one failed before its fix.

The invariant behind them all: a converged reason means the true residual
``||b - A x||`` of the caller's ``b`` meets ``max(rtol ||b||, atol)``.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dcdm
from dcdm import Reason
from dcdm.problems import gallery, scenes
from dcdm.solvers import detect_nullspace, make_preconditioner


def neumann_1d(n: int) -> sp.csr_array:
    A = sp.diags_array([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)],
                       offsets=[-1, 0, 1]).tolil()
    A[0, 0] = A[n - 1, n - 1] = 1.0
    return sp.csr_array(A)


def true_rel(A, b, x) -> float:
    r = b - A @ x
    scale = np.max(np.abs(b))
    return float(np.linalg.norm(r / scale) / np.linalg.norm(b / scale))


# -- 1. singular, inconsistent right-hand side --------------------------------------------


def test_inconsistent_rhs_is_not_converged_and_residual_is_true(rng):
    A = neumann_1d(40)
    b = rng.standard_normal(40)
    b = b - b.mean() + 1.0
    res = dcdm.solve(A, b, rtol=1e-8)
    assert res.reason == Reason.INCONSISTENT_RHS and not res.converged
    assert res.residual_norm == pytest.approx(np.linalg.norm(b - A @ res.x), rel=1e-12)
    assert true_rel(A, b, res.x) == pytest.approx(1.0 * np.sqrt(40) / np.linalg.norm(b))
    with pytest.raises(dcdm.ConvergenceError, match="INCONSISTENT_RHS"):
        dcdm.solve(A, b, rtol=1e-8, check=True)


def test_rounding_level_inconsistency_still_converges(rng):
    """A pressure right-hand side that sums to zero only up to rounding (the usual case)."""
    g = scenes.tank((12, 10, 8), open_top=False)
    b = g.nullspace.project(g.mask(rng.standard_normal(g.size)))
    b[g.fluid.ravel()] += 1e-14
    res = dcdm.solve(g.laplacian(), b, rtol=1e-8)
    assert res.reason == Reason.CONVERGED_RTOL
    assert res.residual_norm <= 1e-8 * np.linalg.norm(b)


# -- 2. nearly singular is not singular ---------------------------------------------------


def test_nearly_singular_is_solved_as_spd(rng):
    A = (neumann_1d(30) + 1e-13 * sp.eye_array(30)).tocsr()
    assert detect_nullspace(A) is None
    assert detect_nullspace(neumann_1d(30)) is not None
    b = rng.standard_normal(30)
    res = dcdm.solve(A, b, rtol=1e-6, maxiter=10_000)
    assert "nullspace" not in res.stats
    if res.converged:
        assert res.residual_norm <= 1e-6 * np.linalg.norm(b)


# -- 3. scale ------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e-310, 1e-200, 1e-160, 1.0, 1e160, 1e200, 1e300])
def test_right_hand_sides_of_any_scale(scale):
    A, b = gallery.poisson((12, 12))
    C = A.to_csr()
    ref = dcdm.solve(C, b, rtol=1e-8)
    res = dcdm.solve(C, b * scale, rtol=1e-8)
    assert res.reason == Reason.CONVERGED_RTOL
    assert res.iterations == ref.iterations
    if scale >= 1e-300:  # b * 1e-310 is subnormal: its digits are not b's
        np.testing.assert_allclose(res.x, ref.x * scale, rtol=1e-12)
    assert true_rel(C, b * scale, res.x) <= 1e-8


# -- 4. b = 0 ------------------------------------------------------------------------------


@pytest.mark.parametrize("M", ["mg", "jacobi", None])
def test_zero_rhs_with_x0_returns_zero(M):
    A, b = gallery.smoke((12, 12, 12), obstacles=2)
    res = dcdm.solve(A, 0 * b, x0=np.ones_like(b), M=M)
    assert res.converged and res.iterations == 0 and not np.any(res.x)
    x, info = dcdm.scipy_cg(A.to_csr(), 0 * b, x0=np.ones_like(b))
    assert info == 0 and not np.any(x)


# -- 5. convergence is confirmed on the true residual, by every method ---------------------


@pytest.mark.parametrize("variant", ["paper", "robust"])
def test_a_callback_that_moves_x_cannot_fake_convergence(variant):
    A, b = gallery.smoke((16, 16), obstacles=1)

    def shove(xk):
        xk += 1.0  # breaks the documented promise not to modify xk

    res = dcdm.solve(A, b, method="dcdm", variant=variant, model=lambda r: r, rtol=1e-6,
                     callback=shove, maxiter=50)
    ok = res.residual_norm <= 1e-6 * np.linalg.norm(b)
    assert res.converged == ok
    assert res.residual_norm == pytest.approx(np.linalg.norm(b - A.matvec(res.x)), rel=1e-9)


# -- 6. negative definite -------------------------------------------------------------------


def test_negative_definite_matrix_is_solved(rng):
    A, b = gallery.poisson((10, 10))
    C = -A.to_csr()
    res = dcdm.solve(C, b, rtol=1e-8)
    assert res.converged and res.stats["negated_rows"] == 100
    assert true_rel(C, b, res.x) <= 1e-8
    _x, info = dcdm.scipy_cg(C, b, rtol=1e-8)
    assert info == 0


def test_phiflow_like_system_with_identity_obstacle_rows(rng):
    g = scenes.smoke((10, 12), obstacles=2, seed=1)
    fluid = g.fluid.ravel()
    C = -g.laplacian().to_csr()  # negative definite fluid block ...
    C = sp.csr_array(sp.diags_array(np.where(fluid, 1.0, -1.0)) @ C)  # ... identity rows
    x_true = rng.standard_normal(g.size)
    b = C @ x_true
    res = dcdm.solve(C, b, rtol=1e-10)
    assert res.converged
    np.testing.assert_allclose(res.x, x_true, atol=1e-7 * np.abs(x_true).max())
    assert res.stats["negated_rows"] == int(fluid.sum())


def test_indefinite_matrix_still_reports_it():
    A, b = gallery.poisson((8, 8))
    res = dcdm.solve(A.to_csr() - 4 * sp.eye_array(64), b)
    assert res.reason == Reason.INDEFINITE_OPERATOR


# -- 8. one preconditioner shared by threads ---------------------------------------------------


@pytest.mark.parametrize("M", ["mg", "rbgs", "jacobi"])
def test_a_shared_preconditioner_is_safe_across_threads(M):
    A, b = gallery.smoke((20, 20, 20), obstacles=3)
    P = make_preconditioner(M, A)
    ref = dcdm.solve(A, b, M=P, rtol=1e-8)
    results = [None] * 4

    def run(i):
        results[i] = dcdm.solve(A, b * (i + 1), M=P, rtol=1e-8)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, res in enumerate(results):
        assert res.converged and res.iterations == ref.iterations
        np.testing.assert_allclose(res.x, ref.x * (i + 1), rtol=1e-9,
                                   atol=1e-9 * np.abs(ref.x).max() * (i + 1))


# -- 9. integer vectors and np.matrix -----------------------------------------------------------


def test_grid_operator_does_not_truncate_integer_vectors():
    A, _ = gallery.poisson((6, 5))
    x = np.arange(30)
    np.testing.assert_array_equal(A.matvec(x), A.matvec(x.astype(np.float64)))
    assert A.matvec(x).dtype == np.float64


def test_np_matrix_right_hand_side():
    A, b = gallery.poisson((6, 6, 6))
    res = dcdm.solve(A, np.matrix(b).T, rtol=1e-8)
    assert res.converged and res.x.shape == (216,)


# -- the invariant, on random systems ------------------------------------------------------------


@st.composite
def systems(draw):
    n = draw(st.integers(3, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["spd", "semidefinite", "negative"]))
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    eig = 10.0 ** rng.uniform(-3, 3, n)
    if kind == "semidefinite":  # a graph Laplacian: the constant in its null space
        W = np.triu(rng.random((n, n)) + 0.1, 1)
        W = W + W.T
        A = np.diag(W.sum(axis=1)) - W
    else:
        A = (Q * eig) @ Q.T
        A = 0.5 * (A + A.T)
        if kind == "negative":
            A = -A
    b = rng.standard_normal(n) * 10.0 ** draw(st.integers(-300, 300))
    x0 = rng.standard_normal(n) * np.max(np.abs(b)) if draw(st.booleans()) else None
    M = draw(st.sampled_from([None, "jacobi", "ic0", "mic0", "amg"]))
    if kind == "negative" and M in ("ic0", "mic0"):
        M = None
    rtol = draw(st.sampled_from([1e-2, 1e-6, 1e-10]))
    return sp.csr_array(A), b, x0, M, rtol


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(systems())
def test_converged_means_the_true_residual_meets_the_tolerance(system):
    A, b, x0, M, rtol = system
    try:
        res = dcdm.solve(A, b, x0=x0, M=M, rtol=rtol, maxiter=2000)
    except ImportError:  # an optional extra missing
        return
    if res.converged:
        assert true_rel(A, b, res.x) <= rtol * (1 + 1e-9)
    scale = np.max(np.abs(b))
    assert res.residual_norm == pytest.approx(
        np.linalg.norm((b - A @ res.x) / scale) * scale, rel=1e-6, abs=1e-300)


# -- 7. MIC0 on a finite-element matrix --------------------------------------------------------


def test_mic0_never_fails_where_ic0_works(rng):
    pyamg = pytest.importorskip("pyamg")
    A = pyamg.gallery.load_example("bar")["A"].tocsr()  # SPD, finite elements
    b = rng.standard_normal(A.shape[0])
    ic = dcdm.solve(A, b, M="ic0", rtol=1e-8, maxiter=2000)
    mic = dcdm.solve(A, b, M="mic0", rtol=1e-8, maxiter=2000)
    assert ic.converged and mic.converged
    assert mic.stats["mic0_retries"] >= 1 and mic.stats["tau_used"] < 0.97
    assert mic.stats["pivot_fixes"] == 0
    # on a Poisson grid nothing changes: no retry, the requested tau
    A, b = gallery.smoke((16, 16, 16), obstacles=3)
    res = dcdm.solve(A, b, M="mic0", rtol=1e-8)
    assert res.stats["mic0_retries"] == 0 and res.stats["tau_used"] == 0.97


# -- 14. errors that name the argument ---------------------------------------------------------


A14, B14 = gallery.smoke((10, 10), obstacles=1)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(M=lambda r: None), TypeError, "M returned None"),
    (dict(M=lambda r: r[:-1]), ValueError, r"M returned an array of shape \(99,\)"),
    (dict(callback=5), TypeError, "callback must be a callable"),
    (dict(method="dcdm", model=""), ValueError, "model='' names no network"),
    (dict(method="dcdm", model=123), TypeError, "model must be None, a shipped name"),
    (dict(M="neural", method="fcg", model=123), TypeError, "model must be None"),
    (dict(method="dcdm", model=lambda r: r, stall_window=0), ValueError,
     "stall_window must be an integer >= 1, got 0"),
    (dict(method="dcdm", model=lambda r: r, stall_window=-3), ValueError, "stall_window"),
    (dict(method="dcdm", model=lambda r: r, stall_window="x"), ValueError, "stall_window"),
    (dict(method="dcdm", model=lambda r: r, stall_window=2.5), ValueError, "stall_window"),
])
def test_errors_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        dcdm.solve(A14, B14, **kwargs)


def test_a_preconditioner_built_on_another_grid_is_refused():
    other, _ = gallery.smoke((10, 10), obstacles=1, seed=7)
    P = make_preconditioner("mg", other)
    with pytest.raises(ValueError, match="M='mg' was built for another operator"):
        dcdm.solve(A14, B14, M=P)
    bigger, _ = gallery.poisson((12, 12))
    with pytest.raises(ValueError, match="was built for another operator"):
        dcdm.solve(A14, B14, M=make_preconditioner("jacobi", bigger.to_csr()))
    assert dcdm.solve(A14, B14, M=make_preconditioner("mg", A14)).converged
