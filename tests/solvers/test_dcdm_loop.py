"""The DCDM loops with stand-in networks (no torch): paper loop, robust loop, stagnation."""

import numpy as np
import pytest

from dcdm import Reason, solve
from dcdm.problems import gallery
from dcdm.solvers import dcdm
from dcdm.solvers.precond.mg import GeometricMG


@pytest.fixture(scope="module")
def system():
    return gallery.smoke((24, 24, 24), obstacles=4, seed=7)


def test_paper_loop_with_a_perfect_network_converges_at_once(system):
    A, b = system
    C = A.to_csr()
    f = A.grid.fluid.ravel()
    from scipy.sparse.linalg import spsolve

    Cf = C[f][:, f].tocsc()

    def exact(r):  # A^{-1} on the fluid cells: one step must solve the system
        out = np.zeros(r.size)
        out[f] = spsolve(Cf, r.ravel()[f])
        return out.reshape(r.shape)

    res = dcdm(A, b, model=exact, variant="paper", rtol=1e-8)
    assert res.converged and res.iterations == 1


def test_paper_loop_with_mg_as_network(system):
    A, b = system
    M = GeometricMG().build(A)
    res = dcdm(A, b, model=lambda r: M.apply(r.ravel()), variant="paper", rtol=1e-8)
    assert res.reason == Reason.CONVERGED_RTOL
    assert res.iterations <= 15
    assert res.stats["network_calls"] == res.iterations
    assert np.linalg.norm(b - A.matvec(res.x)) <= 1e-8 * np.linalg.norm(b)


def test_paper_loop_stalls_with_stagnation_not_false_success(system, rng):
    A, b = system
    e = A.grid.mask(rng.standard_normal(A.shape[0]))

    def orthogonal(r):  # a direction exactly orthogonal to the residual: q . r = 0
        r = r.ravel()
        return (e - (e @ r) / (r @ r) * r).reshape(A.grid.shape)

    res = dcdm(A, b, model=orthogonal, variant="paper", rtol=1e-6)
    assert res.reason == Reason.STAGNATION
    assert not res.converged
    assert res.residual_norm == pytest.approx(np.linalg.norm(b), rel=1e-6)


def test_paper_loop_slow_progress_is_stagnation(system):
    A, b = system
    res = dcdm(A, b, model=lambda r: r, variant="paper", rtol=1e-10, stall_window=5,
               maxiter=10_000)
    assert res.reason in (Reason.STAGNATION, Reason.CONVERGED_RTOL)
    assert res.reason == Reason.STAGNATION  # steepest descent cannot reach 1e-10 quickly


@pytest.mark.parametrize("second", ["mg", "rbgs"])
def test_robust_loop_converges_even_with_a_useless_network(system, rng, second):
    A, b = system
    noise = lambda r: rng.standard_normal(r.shape)  # noqa: E731
    res = dcdm(A, b, model=noise, variant="robust", second=second, rtol=1e-6, maxiter=500)
    assert res.reason == Reason.CONVERGED_RTOL, res.reason
    assert res.stats["second_direction"] == second
    assert res.stats["network_calls"] == res.iterations
    assert np.linalg.norm(b - A.matvec(res.x)) <= 1e-6 * np.linalg.norm(b)


def test_dcdm_through_solve_and_fcg_neural(system):
    A, b = system
    res = solve(A, b, method="dcdm", model=lambda r: r, rtol=1e-6)
    assert res.converged and res.stats["method"] == "dcdm"
    res = solve(A, b, method="fcg", M="neural", model=lambda r: r, rtol=1e-6, truncation=4)
    assert res.converged and res.stats["preconditioner"] == "neural"


def test_cg_refuses_neural(system):
    A, b = system
    with pytest.raises(ValueError, match="use method='fcg'"):
        solve(A, b, method="cg", M="neural", model=lambda r: r)


def test_dcdm_errors(system):
    A, b = system
    with pytest.raises(TypeError, match="method='dcdm' needs a grid operator"):
        dcdm(A.to_csr(), b, model=lambda r: r)
    with pytest.raises(ValueError, match="method='dcdm' takes no preconditioner M"):
        solve(A, b, method="dcdm", M="mg", model=lambda r: r)
    with pytest.raises(ValueError, match="variant must be one of"):
        dcdm(A, b, model=lambda r: r, variant="fast")
    with pytest.raises(ValueError, match="second must be one of"):
        dcdm(A, b, model=lambda r: r, second="amg")
    with pytest.raises(ValueError, match="window must be an integer >= 1"):
        dcdm(A, b, model=lambda r: r, window=0)
    with pytest.raises(TypeError, match="M='neural' needs a grid operator"):
        solve(A.to_csr(), b, method="fcg", M="neural", model=lambda r: r)


def test_rbgs_preconditioner_is_symmetric(system, rng):
    A, _ = system
    from dcdm.solvers.precond.rbgs import RedBlackGS

    M = RedBlackGS(sweeps=2).build(A)
    f = A.grid.fluid.ravel()
    x = np.where(f, rng.standard_normal(f.size), 0)
    y = np.where(f, rng.standard_normal(f.size), 0)
    assert abs(x @ M.apply(y) - y @ M.apply(x)) <= 1e-12 * np.linalg.norm(x) * np.linalg.norm(y)
    assert x @ M.apply(x) > 0
    with pytest.raises(ValueError, match="sweeps must be an integer >= 1"):
        RedBlackGS(sweeps=0)
