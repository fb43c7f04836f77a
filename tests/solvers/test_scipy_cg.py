"""SciPy's own ``cg`` cases against the drop-in :func:`dcdm.scipy_cg`.

The matrices come from SciPy's installed test module (``IterativeParams``: 1-D/2-D
Poisson, random SPD, random complex Hermitian, in single and double precision); the
checks are the ones SciPy makes of its ``cg``: ``info`` meaning, tolerances (``inf``
included), ``x0`` (``'Mb'`` included), zero right-hand sides, mat-vec counts with an
exact preconditioner, the errors it raises.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse.linalg as sla
from numpy.linalg import norm
from scipy.sparse.linalg import LinearOperator

from dcdm import scipy_cg

iterative = pytest.importorskip("scipy.sparse.linalg._isolve.tests.test_iterative")
CASES = [c for c in iterative.IterativeParams().cases if sla.cg not in c.skip]
IDS = [c.name for c in CASES]


def test_the_cases_include_complex_hermitian_ones():
    assert len(CASES) == 8 and sum(np.iscomplexobj(c.A) for c in CASES) == 2


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_maxiter_one_calls_back_once(case):
    seen = []
    _x, info = scipy_cg(case.A, case.b, x0=0 * case.b, rtol=1e-12, maxiter=1,
                       callback=lambda xk: seen.append(norm(case.b - case.A @ xk)))
    assert len(seen) == 1 and info == 1


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_convergence(case):
    rtol = 1e-8 if case.A.dtype.char in "dD" else 1e-2
    x0 = 0 * case.b
    x, info = scipy_cg(case.A, case.b, x0=x0, rtol=rtol)
    np.testing.assert_array_equal(x0, 0 * case.b)
    assert info == 0 and norm(case.A @ x - case.b) <= norm(case.b) * rtol
    assert x.dtype == np.result_type(case.A.dtype, case.b.dtype)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_identity_preconditioner(case):
    ident = LinearOperator(case.A.shape, lambda v: v, rmatvec=lambda v: v)
    x, info = scipy_cg(case.A, case.b, x0=0 * case.b, M=ident, rtol=1e-8)
    assert info == 0 and norm(case.A @ x - case.b) <= norm(case.b) * 1e-8


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_x0_equals_Mb(case):
    x, info = scipy_cg(case.A, case.b, x0="Mb", rtol=1e-8)
    assert info == 0 and norm(case.A @ x - case.b) <= 1e-8 * norm(case.b)


@pytest.mark.parametrize("name", ["poisson1d", "poisson2d"])
def test_exact_preconditioner_needs_at_most_three_matvecs(name):
    case = next(c for c in CASES if c.name == name)
    dense = case.A.toarray()
    count = [0]

    def matvec(v):
        count[0] += 1
        return case.A @ v

    A = LinearOperator(case.A.shape, matvec)
    M = LinearOperator(case.A.shape, lambda v: np.linalg.solve(dense, v))
    x, info = scipy_cg(A, case.b, x0=0 * case.b, M=M, rtol=1e-8)
    assert info == 0 and norm(case.A @ x - case.b) <= 1e-8 * norm(case.b)
    assert count[0] <= 3


def _spd(seed, n=10):
    rng = np.random.default_rng(seed)
    A = rng.random((n, n))
    return A @ A.T + 10 * np.eye(n), rng


def test_tolerances_including_inf_and_badly_scaled_preconditioners():
    A, rng = _spd(168441431005389)
    b = 1e3 * rng.uniform(size=10)
    M0 = rng.standard_normal((10, 10))
    M0 = M0 @ M0.T
    tols = np.r_[0, np.logspace(-9, 2, 7), np.inf]
    for M, rtol, atol in itertools.product([None, 1e-6 * M0, 1e6 * M0], tols, tols):
        if rtol == 0 and atol == 0:
            continue
        x, info = scipy_cg(A, b, M=M, rtol=rtol, atol=atol)
        assert info == 0
        assert norm(A @ x - b) <= 1.00025 * max(atol, rtol * norm(b))


def test_zero_rhs():
    A, _ = _spd(1684414984100503)
    b = np.zeros(10)
    for tol in np.logspace(-10, 2, 7):
        for kwargs in (dict(), dict(x0=np.ones(10)), dict(atol=0, x0=np.ones(10)),
                       dict(atol=tol), dict(atol=0)):
            x, info = scipy_cg(A, b, rtol=tol, **kwargs)
            assert info == 0
            np.testing.assert_array_equal(x, 0.0)


def test_x0_working_and_exact():
    rng = np.random.default_rng(1685363802304750)
    A = rng.random((10, 10))
    A = A @ A.T
    b, x0 = rng.random(10), rng.random(10)
    for kwargs in (dict(), dict(x0=x0)):
        x, info = scipy_cg(A, b, atol=0, rtol=1e-6, **kwargs)
        assert info == 0 and norm(A @ x - b) <= 1e-5 * norm(b)
    rhs = np.array([-1.0, -1.0])
    x, info = scipy_cg(np.eye(2), rhs, x0=rhs)
    np.testing.assert_allclose(x, rhs)
    assert info == 0


@pytest.mark.parametrize("atol", ["legacy", None, -1])
def test_invalid_atol_is_a_value_error(atol):
    A, rng = _spd(1)
    with pytest.raises(ValueError, match="atol must be a real number >= 0"):
        scipy_cg(A, rng.random(10), atol=atol)


def test_positional_tolerance_is_refused():
    A, rng = _spd(1)
    with pytest.raises(TypeError):
        scipy_cg(A, rng.random(10), None, 1e-5)
