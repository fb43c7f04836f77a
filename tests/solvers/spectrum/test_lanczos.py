import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from dcdm.problems import scenes
from dcdm.solvers import as_operator
from dcdm.solvers.spectrum.lanczos import LanczosBasis, lanczos


def laplacian_1d(n):
    return sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n), format="csr")


class ContractOnly:
    """Nothing but the operator contract (``shape``, ``dtype``, ``matvec``) and a
    ``support``: no ``matvec_fluid``, no ``to_csr``."""

    def __init__(self, A, support):
        self.A, self.support = A, support
        self.shape, self.dtype = A.shape, np.dtype(np.float64)
        self.matvec = as_operator(A).matvec  # a bound method: no matvec_fluid to find


def test_lanczos_ritz_values_match_extreme_eigenvalues():
    g = scenes.smoke((12, 12), obstacles=2, seed=4)
    A = g.laplacian()
    fluid = g.fluid.ravel()
    dense = A.to_csr().toarray()[np.ix_(fluid, fluid)]
    exact = np.linalg.eigvalsh(dense)
    basis = lanczos(A, 60, seed=1)
    vals, _ = basis.ritz()
    np.testing.assert_allclose(vals[-3:], exact[-3:], rtol=1e-8)
    np.testing.assert_allclose(vals[0], exact[0], rtol=1e-6)
    # the basis is orthonormal (full re-orthogonalisation) and T = Q A Q^T
    np.testing.assert_allclose(basis.Q @ basis.Q.T, np.eye(basis.m), atol=1e-10)
    T = basis.Q @ dense @ basis.Q.T
    np.testing.assert_allclose(np.diag(T), basis.alpha, atol=1e-10)
    np.testing.assert_allclose(np.diag(T, 1), basis.beta, atol=1e-10)


def test_lanczos_stops_at_an_invariant_subspace():
    A = np.diag([1.0, 2.0, 3.0, 4.0])
    basis = lanczos(A, 10)
    assert isinstance(basis, LanczosBasis) and basis.m == 4
    np.testing.assert_allclose(basis.ritz()[0], [1, 2, 3, 4], atol=1e-12)


@pytest.mark.parametrize("wrap", [
    lambda A: A,
    lambda A: A.toarray(),
    as_operator,
    lambda A: LinearOperator(A.shape, matvec=lambda x: A @ x, dtype=A.dtype),
], ids=["sparse", "dense", "operator", "LinearOperator"])
def test_lanczos_accepts_every_kind_of_operator(wrap):
    n = 40
    A = laplacian_1d(n)
    vals, _ = lanczos(wrap(A), n).ritz()
    exact = 2 - 2 * np.cos(np.arange(1, n + 1) * np.pi / (n + 1))
    np.testing.assert_allclose(vals, exact, atol=1e-10)
    reference = lanczos(A, 15, seed=3)
    other = lanczos(wrap(A), 15, seed=3)
    np.testing.assert_allclose(other.alpha, reference.alpha, rtol=1e-12)
    np.testing.assert_allclose(other.beta, reference.beta, rtol=1e-12)


def test_a_contract_only_operator_gives_the_grid_operators_basis():
    """The grid operator's fast FLUID-only mat-vec is an optimisation, not a requirement:
    the plain contract (``matvec`` + ``support``) gives the same basis."""
    g = scenes.smoke((16, 16), obstacles=3, seed=2)
    A = g.laplacian()
    fast = lanczos(A, 40, seed=7)
    plain = lanczos(ContractOnly(A.to_csr(), A.support), 40, seed=7)
    np.testing.assert_array_equal(plain.support, fast.support)
    np.testing.assert_allclose(plain.alpha, fast.alpha, rtol=1e-10)
    np.testing.assert_allclose(plain.beta, fast.beta, rtol=1e-10)
    np.testing.assert_allclose(plain.Q, fast.Q, atol=1e-8)


def test_an_explicit_support_restricts_the_unknowns():
    n = 30
    A = laplacian_1d(n)
    support = np.zeros(n, dtype=bool)
    support[:10] = True  # the leading 10 x 10 block: the 1-D Laplacian of size 10
    vals, _ = lanczos(A, 20, support=support).ritz()
    exact = 2 - 2 * np.cos(np.arange(1, 11) * np.pi / 11)
    np.testing.assert_allclose(vals, exact, atol=1e-10)
    # a support inside a grid operator's FLUID cells: the same Ritz values either way
    g = scenes.smoke((12, 12), obstacles=2, seed=4)
    G = g.laplacian()
    inner = G.support.copy()
    inner[np.flatnonzero(inner)[::3]] = False
    a = lanczos(G, 30, support=inner, seed=2)
    b = lanczos(ContractOnly(G.to_csr(), G.support), 30, support=inner, seed=2)
    np.testing.assert_allclose(a.alpha, b.alpha, rtol=1e-10)


def test_lanczos_errors():
    g = scenes.smoke((16, 16), obstacles=1, seed=0)
    with pytest.raises(ValueError, match=r"m \* n_support \* 8 .*above max_bytes"):
        lanczos(g.laplacian(), 50, max_bytes=1000)
    with pytest.raises(ValueError, match="m must be an integer >= 1, got 0"):
        lanczos(np.eye(3), 0)
    with pytest.raises(ValueError, match=r"support must be a boolean mask of shape \(3,\)"):
        lanczos(np.eye(3), 2, support=np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="must be square"):
        lanczos(np.ones((3, 4)), 2)
