"""A grid operator restricted to its FLUID unknowns (:class:`dcdm.solvers.RestrictedOperator`):
the restricted matrix, arithmetic, null spaces, errors, and the grid preconditioners built on
the full operator and applied through the scatter and gather."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

import dcdm
from dcdm.problems import scenes
from dcdm.solvers import RestrictedOperator, make_preconditioner, restrict


@pytest.fixture
def tank():
    return scenes.smoke((12, 11, 10), obstacles=3, seed=4)


def test_restricted_matvec_is_the_restricted_matrix(rng, tank):
    K = tank.laplacian().shifted(rng.exponential(1.0, tank.size), alpha=1.5)
    R = restrict(K)
    idx = np.flatnonzero(tank.fluid.ravel())
    dense = K.to_csr().toarray()[np.ix_(idx, idx)]
    v = rng.standard_normal(idx.size)
    assert R.shape == (idx.size, idx.size)
    assert_allclose(R @ v, dense @ v, rtol=1e-12)
    assert_allclose(R.to_csr().toarray(), dense)
    assert_allclose(R.diagonal(), np.diag(dense))
    out = np.empty(idx.size)
    assert R.matvec(v, out=out) is out


def test_a_subset_off_the_support_uses_the_general_matvec(rng, tank):
    A = tank.laplacian()
    idx = np.arange(0, tank.size, 3)  # FLUID and non-FLUID cells
    R = restrict(A, idx)
    v = rng.standard_normal(idx.size)
    assert_allclose(R @ v, A.to_csr().toarray()[np.ix_(idx, idx)] @ v, rtol=1e-12)


def test_sums_multiples_and_shifts_stay_restricted(rng, tank):
    A = tank.laplacian()
    H = restrict(A.shifted(rng.exponential(1.0, tank.size)))
    L = restrict(A)
    v = rng.standard_normal(H.shape[0])
    K = H + 0.5 * L
    assert isinstance(K, RestrictedOperator)
    assert_allclose(K @ v, H @ v + 0.5 * (L @ v), rtol=1e-12)
    assert_allclose(H.shifted_by(2.0) @ v, H @ v + 2.0 * v, rtol=1e-12)
    assert_allclose(L.shifted_by(2.0) @ v, L @ v + 2.0 * v, rtol=1e-12)
    with pytest.raises(TypeError):
        H + np.eye(H.shape[0])


def test_null_space_of_a_closed_tank_restricts(rng):
    g = scenes.smoke((10, 9, 8), obstacles=2, seed=1, open_top=False)
    R = restrict(g.laplacian())
    assert R.nullspace is not None and R.nullspace.dimension == g.nullspace.dimension
    b = rng.standard_normal(R.shape[0])
    b -= b.mean()
    res = dcdm.solve(R, b, M="mg", rtol=1e-10)
    assert res.converged and np.linalg.norm(b - R @ res.x) <= 1e-10 * np.linalg.norm(b)
    assert restrict(g.laplacian().shifted(1.0)).nullspace is None


@pytest.mark.parametrize("index, match", [
    (np.array([], dtype=int), "index must name between 1 and"),
    (np.array([5, 3]), "index must be sorted and without repeats"),
    (np.array([0, 10**6]), "index must name between 1 and"),
    (np.ones(7, dtype=bool), "index as a mask must have shape"),
])
def test_bad_index_is_refused_by_name(tank, index, match):
    with pytest.raises(ValueError, match=match):
        restrict(tank.laplacian(), index)


def test_index_is_required_without_a_support():
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="index is required"):
        restrict(dcdm.solvers.as_operator(sp.eye_array(4, format="csr")))
    with pytest.raises(TypeError, match="shifted_by needs a base operator"):
        restrict(dcdm.solvers.as_operator(sp.eye_array(4, format="csr")), [0, 1]).shifted_by(1)


@pytest.mark.parametrize("M", ["mg", "rbgs", "ic0", "amg", "jacobi"])
def test_every_preconditioner_builds_on_the_restricted_operator(rng, tank, M):
    K = restrict(tank.laplacian().shifted(rng.exponential(50.0, tank.size)))
    b = rng.standard_normal(K.shape[0])
    res = dcdm.solve(K, b, M=M, rtol=1e-9)
    assert res.converged and np.linalg.norm(b - K @ res.x) <= 1e-9 * np.linalg.norm(b)
    if M in ("mg", "rbgs"):
        assert res.stats["restricted_to"] == K.shape[0] and res.iterations <= 12


def test_the_restricted_multigrid_is_the_full_one_gathered(rng, tank):
    K = tank.laplacian().shifted(rng.exponential(5.0, tank.size))
    R = restrict(K)
    P = make_preconditioner("mg", R)
    full = make_preconditioner("mg", K)
    r = rng.standard_normal(R.shape[0])
    assert_allclose(P.apply(r), full.apply(R.scatter(r))[R.index], rtol=1e-12)
    assert P.is_linear and P.is_spd and P.name == "mg"
    with pytest.raises(TypeError, match="CPU-only"):
        torch = pytest.importorskip("torch")
        P.apply(torch.from_numpy(r))
