"""CG and FCG on problems with known answers, against SciPy, and their failure reasons."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from dcdm import ConvergenceError, Reason, cg, solve
from dcdm.problems import gallery, rhs, scenes
from dcdm.solvers import fcg


def laplacian_1d(n: int) -> sp.csr_array:
    """Dirichlet 1-D Laplacian (SPD)."""
    return sp.diags_array([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], offsets=[-1, 0, 1],
                          format="csr")


def scipy_iterations(A, b, rtol, M=None):
    count = [0]

    def cb(_):
        count[0] += 1

    _x, info = sla.cg(A, b, rtol=rtol, M=M, callback=cb, maxiter=10 * A.shape[0])
    assert info == 0
    return count[0]


SYSTEMS = {
    "poisson3d-16": lambda: gallery.poisson((16, 16, 16)),
    "smoke3d-20": lambda: gallery.smoke((20, 20, 20), obstacles=4, seed=3),
    "smoke2d-64": lambda: gallery.smoke((64, 64), obstacles=6, seed=1),
    "poisson2d-prime": lambda: gallery.poisson((37, 29), rhs="smooth"),
}


@pytest.mark.parametrize("name", sorted(SYSTEMS))
@pytest.mark.parametrize("precond", [None, "jacobi"])
@pytest.mark.parametrize("rtol", [1e-4, 1e-8])
def test_cg_iterations_match_scipy(name, precond, rtol):
    A, b = SYSTEMS[name]()
    C = A.to_csr()
    Ms = None if precond is None else sp.diags_array(1.0 / C.diagonal())
    expected = scipy_iterations(C, b, rtol, Ms)
    res = cg(A, b, M=precond, rtol=rtol)
    assert res.reason == Reason.CONVERGED_RTOL
    assert abs(res.iterations - expected) <= 2, (res.iterations, expected)
    true = np.linalg.norm(b - C @ res.x)
    assert true <= rtol * np.linalg.norm(b)
    assert res.residual_norm == pytest.approx(true, rel=1e-6)
    assert len(res.residual_history) == res.iterations + 1
    assert res.residual_history[-1] == res.residual_norm


@pytest.mark.parametrize("name", sorted(SYSTEMS))
@pytest.mark.parametrize("m", [1, 3])
def test_fcg_with_linear_preconditioner_matches_cg(name, m):
    A, b = SYSTEMS[name]()
    r1 = cg(A, b, M="jacobi", rtol=1e-8)
    r2 = fcg(A, b, M="jacobi", rtol=1e-8, truncation=m)
    assert r2.converged
    assert abs(r1.iterations - r2.iterations) <= 1
    np.testing.assert_allclose(r2.x, r1.x, rtol=0, atol=1e-6 * np.abs(r1.x).max())


@pytest.mark.parametrize("shape", [(24, 24), (12, 10, 9)])
@pytest.mark.parametrize("method", ["cg", "fcg"])
def test_manufactured_solution_recovered(shape, method):
    g = scenes.smoke(shape, obstacles=3, seed=5)
    A = g.laplacian()
    b, x_true = rhs.manufactured(A, seed=2)
    res = solve(A, b, method=method, M="jacobi", rtol=1e-11)
    assert res.converged
    assert np.linalg.norm(res.x - x_true) <= 1e-7 * np.linalg.norm(x_true)


def test_fcg_accepts_nonlinear_preconditioner(rng):
    A = laplacian_1d(200)
    b = rng.standard_normal(200)
    d = A.diagonal()

    def jittered(r):  # a different diagonal scaling every call: non-linear, still SPD-ish
        return r / (d * (1 + 0.3 * rng.random(r.shape)))

    res = fcg(A, b, M=jittered, rtol=1e-8, truncation=4)
    assert res.converged
    assert np.linalg.norm(b - A @ res.x) <= 1e-8 * np.linalg.norm(b)


def test_cg_refuses_nonlinear_preconditioner():
    from dcdm.solvers.precond import FunctionPreconditioner

    M = FunctionPreconditioner(lambda r: r, is_linear=False)
    with pytest.raises(ValueError, match=r"use method='fcg'.*method='dcdm'"):
        cg(laplacian_1d(5), np.ones(5), M=M)


@pytest.mark.parametrize("shape", [(16, 16), (8, 9, 10)])
def test_singular_all_neumann_inconsistent_rhs_gets_least_squares(solver, rng, shape):
    g = scenes.tank(shape, open_top=False)
    assert g.is_singular
    A = g.laplacian()
    b = g.mask(rng.standard_normal(g.size))  # inconsistent: has a mean
    b_before = b.copy()
    res = solver(A, b, rtol=1e-8, M="jacobi")
    # no x meets the tolerance: not converged, its own reason, the true residual
    assert res.reason == Reason.INCONSISTENT_RHS and not res.converged
    assert res.residual_norm == pytest.approx(np.linalg.norm(b - A.matvec(res.x)), rel=1e-10)
    assert res.residual_norm == pytest.approx(res.stats["rhs_nullspace_component"], rel=1e-6)
    assert res.stats["nullspace_dimension"] == 1
    bp = b - b[g.fluid.ravel()].mean() * g.fluid.ravel()
    assert np.linalg.norm(bp - A.matvec(res.x)) <= 1e-8 * np.linalg.norm(bp)
    assert abs(res.x[g.fluid.ravel()].mean()) < 1e-10
    np.testing.assert_array_equal(b, b_before)
    # the same b made consistent converges on the true residual
    ok = solver(A, bp, rtol=1e-8, M="jacobi")
    assert ok.reason == Reason.CONVERGED_RTOL
    assert np.linalg.norm(bp - A.matvec(ok.x)) <= 1e-8 * np.linalg.norm(bp)


def test_singular_csr_detected_and_solved(rng):
    g = scenes.smoke((10, 10, 10), obstacles=2, seed=0, open_top=False)
    C = g.laplacian().to_csr()
    b = g.mask(rng.standard_normal(g.size))
    b = b - g.nullspace.means(b)[np.maximum(g.nullspace.labels, 0)] * (g.nullspace.labels >= 0)
    res = cg(C, b, rtol=1e-8)
    assert res.converged
    assert np.linalg.norm(b - C @ res.x) <= 1e-8 * np.linalg.norm(b)
    assert "nullspace" in res.stats


def test_indefinite_operator_is_a_reason_not_an_exception():
    A = sp.diags_array([[0.5, 0.5, 0.5], [1.0, 2.0, -3.0, 4.0], [0.5, 0.5, 0.5]],
                       offsets=[-1, 0, 1]).tocsr()  # coupled rows of both signs
    res = cg(A, np.ones(4), rtol=1e-10)
    assert res.reason == Reason.INDEFINITE_OPERATOR
    assert not res.converged
    assert res.info < 0


def test_indefinite_preconditioner_is_reported(solver):
    res = solver(laplacian_1d(10), np.ones(10), M=lambda r: -r)
    assert res.reason == Reason.INDEFINITE_PRECONDITIONER


def test_nan_from_preconditioner_is_reported(solver):
    res = solver(laplacian_1d(10), np.ones(10), M=lambda r: r * np.nan)
    assert res.reason == Reason.NAN_OR_INF


def test_max_iterations_and_check(solver):
    A, b = gallery.poisson((16, 16))
    res = solver(A, b, rtol=1e-10, maxiter=3)
    assert res.reason == Reason.MAX_ITERATIONS
    assert res.iterations == 3
    assert res.info == 3
    with pytest.raises(ConvergenceError, match="MAX_ITERATIONS") as exc:
        solver(A, b, rtol=1e-10, maxiter=3, check=True)
    assert exc.value.result.iterations == 3


def test_zero_rhs_returns_zero_without_iterating(solver):
    A = laplacian_1d(6)
    res = solver(A, np.zeros(6))
    assert res.converged and res.iterations == 0
    np.testing.assert_array_equal(res.x, 0)


def test_atol_dominates(solver):
    A = laplacian_1d(50)
    b = np.ones(50)
    res = solver(A, b, rtol=1e-12, atol=1e-2)
    assert res.reason == Reason.CONVERGED_ATOL
    assert res.residual_norm <= 1e-2


def test_x0_is_used_and_not_modified(solver, rng):
    A, _ = gallery.poisson((40, 40))
    x_true = rng.standard_normal(A.shape[0])
    b = A.matvec(x_true)
    x0 = x_true + 1e-3 * rng.standard_normal(A.shape[0])
    x0_before = x0.copy()
    cold = solver(A, b, rtol=1e-9)
    warm = solver(A, b, x0=x0, rtol=1e-9)
    assert warm.converged and warm.iterations < cold.iterations
    np.testing.assert_array_equal(x0, x0_before)


def test_exact_x0_converges_in_zero_iterations(solver, rng):
    A = laplacian_1d(30)
    x_true = rng.standard_normal(30)
    res = solver(A, A @ x_true, x0=x_true, rtol=1e-8)
    assert res.iterations == 0 and res.converged


def test_callback_is_called_every_iteration(solver):
    seen = []
    res = solver(laplacian_1d(30), np.ones(30), rtol=1e-8, callback=lambda x: seen.append(x.copy()))
    assert len(seen) == res.iterations


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_follows_inputs(solver, dtype):
    A, b = gallery.smoke((16, 16, 16), obstacles=2, dtype=dtype)
    res = solver(A, b, rtol=1e-5)
    assert res.converged
    assert res.x.dtype == dtype


def test_grid_shaped_rhs_gives_grid_shaped_solution(solver):
    A, b = gallery.smoke((12, 14), obstacles=2)
    res = solver(A, b.reshape(12, 14), rtol=1e-8)
    assert res.x.shape == (12, 14)
    np.testing.assert_allclose(res.x.ravel(), solver(A, b, rtol=1e-8).x)


def test_column_rhs_gives_1d_solution_like_scipy(solver):
    res = solver(laplacian_1d(5), np.ones((5, 1)))
    assert res.x.shape == (5,)


@pytest.mark.parametrize("kind", ["dense", "linop", "list"])
def test_other_operator_types(solver, kind):
    C = laplacian_1d(20)
    A = {"dense": C.toarray(), "linop": sla.aslinearoperator(C),
         "list": C.toarray().tolist()}[kind]
    res = solver(A, np.ones(20), rtol=1e-10)
    assert res.converged
    np.testing.assert_allclose(C @ res.x, np.ones(20), atol=1e-8)


@pytest.mark.parametrize("kind", ["callable", "linop", "sparse", "dense"])
def test_preconditioner_objects(solver, kind):
    C = laplacian_1d(30)
    Dinv = sp.diags_array(1.0 / C.diagonal()).tocsr()
    M = {"callable": lambda r: Dinv @ r, "linop": sla.aslinearoperator(Dinv),
         "sparse": Dinv, "dense": Dinv.toarray()}[kind]
    res = solver(C, np.ones(30), M=M, rtol=1e-10)
    assert res.converged
    assert res.stats["preconditioner"] == "user"


def test_inputs_never_modified(solver, rng):
    C = sp.random_array((30, 30), density=0.2, rng=rng)
    C = (C + C.T + 30 * sp.eye_array(30)).tocsr()
    C.has_sorted_indices = False
    data, indices, indptr = C.data.copy(), C.indices.copy(), C.indptr.copy()
    b = rng.standard_normal(30)
    b_before = b.copy()
    res = solver(C, b, M="jacobi", rtol=1e-10)
    assert res.converged
    np.testing.assert_array_equal(C.data, data)
    np.testing.assert_array_equal(C.indices, indices)
    np.testing.assert_array_equal(C.indptr, indptr)
    np.testing.assert_array_equal(b, b_before)
    res.x[:] = 0  # the result owns its x: changing it changes no input
    np.testing.assert_array_equal(b, b_before)


def test_grid_rhs_nonzero_off_fluid_gives_identity_rows(solver, rng):
    g = scenes.smoke((16, 16, 16), obstacles=4, seed=2)
    A = g.laplacian()
    b = rng.standard_normal(g.size)  # also non-zero on SOLID and AIR cells
    res = solver(A, b, M="jacobi", rtol=1e-10)
    assert res.converged
    off = ~g.fluid.ravel()
    np.testing.assert_array_equal(res.x[off], b[off])
    C = A.to_csr()
    assert np.linalg.norm(b - C @ res.x) <= 1e-10 * np.linalg.norm(b)


def test_user_preconditioner_writing_off_fluid_is_masked(solver):
    A, b = gallery.smoke((12, 12, 12), obstacles=3, seed=1)
    d = A.diagonal()
    res = solver(A, b, M=lambda r: r / d + 1.0 * (A.grid.flags.ravel() != 0), rtol=1e-8)
    assert res.converged
    assert np.linalg.norm(b - A.to_csr() @ res.x) <= 1e-8 * np.linalg.norm(b)
