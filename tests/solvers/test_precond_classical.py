"""The classical preconditioners: IC(0), MIC(0) (Numba) and pyamg's AMG (SA and RS)."""

import functools
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator

from dcdm import Reason, cg, solve
from dcdm.problems import gallery, scenes
from dcdm.solvers import as_operator
from dcdm.solvers.precond import AMG, IC0, MIC0, PRECONDITIONERS, make_preconditioner

# name in the results -> (M, options)
CASES = {
    "ic0": ("ic0", {}),
    "mic0": ("mic0", {}),
    "amg-sa": ("amg", {"amg": "sa"}),
    "amg-rs": ("amg", {"amg": "rs"}),
}

GRIDS = {
    "smoke3d-20": lambda: gallery.smoke((20, 20, 20)),
    "smoke2d-41x29": lambda: gallery.smoke((41, 29), obstacles=5, seed=2),
}


def build(case, A):
    M, opts = CASES[case]
    return make_preconditioner(M, as_operator(A), **opts)


# -- dense references (plain NumPy, textbook loops) ----------------------------------


def dense_ic0(A: np.ndarray) -> np.ndarray:
    """Textbook IC(0): Cholesky ``A ~ F F^T`` restricted to the pattern of ``A``."""
    n = A.shape[0]
    pattern = A != 0
    F = np.tril(A).astype(np.float64)
    for k in range(n):
        F[k, k] = np.sqrt(F[k, k])
        F[k + 1:, k] = np.where(pattern[k + 1:, k], F[k + 1:, k] / F[k, k], 0.0)
        for j in range(k + 1, n):
            if F[j, k] != 0.0:
                F[j:, j] -= np.where(pattern[j:, j], F[j:, k] * F[j, k], 0.0)
    return F


def dense_mic0(A: np.ndarray, tau: float, sigma: float) -> np.ndarray:
    """MIC(0) as ``F = (D + L) D^{-1/2}``: the fill dropped from row i is moved (times
    tau) to its pivot; a pivot below sigma times the unmodified one is not modified."""
    n = A.shape[0]
    pattern = A != 0
    W = A.astype(np.float64)
    comp = np.zeros(n)
    d = np.zeros(n)
    for k in range(n):
        e = W[k, k] - tau * comp[k]
        d[k] = e if e >= sigma * W[k, k] else W[k, k]
        rows = [i for i in range(k + 1, n) if pattern[i, k]]
        for i in rows:
            for j in rows:
                f = W[i, k] * W[j, k] / d[k]
                if pattern[i, j]:
                    W[i, j] -= f
                else:
                    comp[i] += f
    L = np.tril(W, -1) * pattern
    return (L + np.diag(d)) / np.sqrt(d)[None, :]


def nine_point(nx: int, ny: int) -> sp.csr_array:
    """Dirichlet 9-point Laplacian: its graph has triangles, so IC(0) updates L too."""
    T = [sp.diags_array([np.ones(m - 1), np.ones(m), np.ones(m - 1)], offsets=[-1, 0, 1])
         for m in (nx, ny)]
    return sp.csr_array(9.0 * sp.eye_array(nx * ny) - sp.kron(T[0], T[1]))


# -- the factor against the references -------------------------------------------------


@pytest.mark.parametrize("matrix", ["poisson-5x5x4", "smoke-6x7x5", "nine-point-7x6"])
def test_ic0_factor_matches_dense_reference(matrix):
    C = {
        "poisson-5x5x4": lambda: gallery.poisson((5, 5, 4))[0].to_csr(),
        "smoke-6x7x5": lambda: gallery.smoke((6, 7, 5), obstacles=2, seed=1)[0].to_csr(),
        "nine-point-7x6": lambda: nine_point(7, 6),
    }[matrix]()
    P = IC0().build(C)
    F = P.factor().toarray()
    ref = dense_ic0(C.toarray())
    np.testing.assert_allclose(F, ref, rtol=1e-13, atol=1e-13)
    assert P.stats["pivot_fixes"] == 0
    assert P.stats["factor_nnz"] == sp.tril(C).nnz


@pytest.mark.parametrize("matrix", ["poisson-5x5x4", "nine-point-7x6"])
@pytest.mark.parametrize(("tau", "sigma"), [(0.97, 0.25), (1.0, 0.0), (0.5, 0.9)])
def test_mic0_factor_matches_dense_reference(matrix, tau, sigma):
    C = gallery.poisson((5, 5, 4))[0].to_csr() if matrix == "poisson-5x5x4" else nine_point(7, 6)
    F = MIC0(tau=tau, sigma=sigma).build(C).factor().toarray()
    np.testing.assert_allclose(F, dense_mic0(C.toarray(), tau, sigma), rtol=1e-12, atol=1e-13)


def test_mic0_keeps_row_sums_with_tau_one():
    C = gallery.poisson((6, 5, 7))[0].to_csr()
    F = MIC0(tau=1.0, sigma=0.0).build(C).factor()
    ones = np.ones(C.shape[0])
    np.testing.assert_allclose(F @ (F.T @ ones), C @ ones, rtol=1e-12, atol=1e-12)


def test_apply_inverts_the_factor(rng):
    A, _ = gallery.smoke((9, 8, 7), obstacles=3, seed=4)
    for P in (IC0().build(A), MIC0().build(A)):
        F = P.factor()
        r = rng.standard_normal(A.shape[0])
        z = P.apply(r)
        np.testing.assert_allclose(F @ (F.T @ z), r, rtol=1e-10, atol=1e-10)


def test_ic0_breakdown_is_fixed_and_recorded():
    # Kershaw's matrix (1978): SPD, yet IC(0) meets a negative pivot
    K = sp.csr_array(np.array([[3.0, -2, 0, 2], [-2, 3, -2, 0], [0, -2, 3, -2], [2, 0, -2, 3]]))
    P = IC0().build(K)
    assert P.stats["pivot_fixes"] == 1
    F = P.factor().toarray()
    assert np.all(np.diag(F) > 0)
    assert np.all(np.linalg.eigvalsh(F @ F.T) > 0)  # M stays SPD
    res = solve(K, np.ones(4), M="ic0", rtol=1e-10)
    assert res.converged and res.stats["pivot_fixes"] == 1


# -- symmetric, positive, linear -------------------------------------------------------


@pytest.mark.parametrize("grid", sorted(GRIDS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_symmetric_positive_definite(case, grid, rng):
    A, _ = GRIDS[grid]()
    P = build(case, A)
    assert P.is_linear and P.is_spd
    n = A.shape[0]
    for _ in range(3):
        x, y = rng.standard_normal(n), rng.standard_normal(n)
        Mx, My = P.apply(x), P.apply(y)
        scale = np.linalg.norm(x) * np.linalg.norm(y) * max(
            np.linalg.norm(Mx) / np.linalg.norm(x), np.linalg.norm(My) / np.linalg.norm(y))
        assert abs(x @ My - y @ Mx) <= 1e-10 * scale
        assert x @ Mx > 0 and y @ My > 0
        np.testing.assert_allclose(P.apply(2.0 * x - 3.0 * y), 2.0 * Mx - 3.0 * My,
                                   rtol=1e-9, atol=1e-9 * np.linalg.norm(Mx))


# -- PCG converges ---------------------------------------------------------------------

SYSTEMS = {
    "smoke3d-17x23x13": lambda: gallery.smoke((17, 23, 13), obstacles=4, seed=5),
    "poisson3d-17x23x13": lambda: gallery.poisson((17, 23, 13)),
    "smoke2d-53x37": lambda: gallery.smoke((53, 37), obstacles=6, seed=1),
    "poisson2d-31x43": lambda: gallery.poisson((31, 43), rhs="smooth"),
}


@functools.cache
def jacobi_iterations(system: str) -> int:
    A, b = SYSTEMS[system]()
    return cg(A, b, M="jacobi", rtol=1e-8).iterations


@pytest.mark.parametrize("system", sorted(SYSTEMS))
@pytest.mark.parametrize("case", sorted(CASES))
def test_pcg_converges(case, system):
    A, b = SYSTEMS[system]()
    M, opts = CASES[case]
    res = cg(A, b, M=M, rtol=1e-8, precond_options=opts)
    assert res.reason == Reason.CONVERGED_RTOL, res.reason
    C = A.to_csr()
    assert np.linalg.norm(b - C @ res.x) <= 1e-8 * np.linalg.norm(b)
    assert res.iterations < jacobi_iterations(system)


def test_mic0_pcg_on_a_prime_sized_smoke_tank():
    A, b = gallery.smoke((37, 50, 29), obstacles=8, seed=0)
    res = solve(A, b, M="mic0", rtol=1e-8)
    assert res.reason == Reason.CONVERGED_RTOL
    assert np.linalg.norm(b - A.to_csr() @ res.x) <= 1e-8 * np.linalg.norm(b)
    assert res.stats["pivot_fixes"] == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_pcg_on_a_singular_closed_tank(case):
    g = scenes.smoke((14, 12, 10), obstacles=3, seed=2, open_top=False)
    A = g.laplacian()
    b = g.nullspace.project(g.mask(np.random.default_rng(1).standard_normal(g.size)))
    M, opts = CASES[case]
    res = solve(A, b, M=M, rtol=1e-8, **opts)
    assert res.converged, res.reason
    assert res.residual_norm <= 1e-8 * np.linalg.norm(b)
    assert "nullspace" in res.stats


def test_float32_operator():
    A, b = gallery.smoke((16, 18, 14), obstacles=3, seed=0, dtype=np.float32)
    for M in ("ic0", "mic0", "amg"):
        res = solve(A, b, M=M, rtol=1e-5)
        assert res.converged and res.x.dtype == np.float32, M


def test_dirichlet_cube_64_iteration_counts():
    A, b = gallery.poisson((64, 64, 64))
    mic = solve(A, b, M="mic0", rtol=1e-6)
    ic = solve(A, b, M="ic0", rtol=1e-6)
    assert mic.converged and ic.converged
    assert mic.iterations <= 35, mic.iterations
    assert ic.iterations <= 70, ic.iterations


def test_iteration_counts_ordered_on_a_smoke_scene():
    A, b = gallery.smoke((24, 24, 24), obstacles=8, seed=0)
    its = {M: solve(A, b, M=M, rtol=1e-6).iterations for M in ("mic0", "ic0", "jacobi")}
    assert its["mic0"] < its["ic0"] < its["jacobi"], its


# -- inputs, outputs, stats ------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(CASES))
def test_inputs_not_modified_and_out_supported(case, rng):
    A, _ = gallery.smoke((12, 11, 9), obstacles=3, seed=0)
    C = A.to_csr()
    data, indices, indptr = C.data.copy(), C.indices.copy(), C.indptr.copy()
    P = build(case, C)
    assert np.array_equal(C.data, data) and np.array_equal(C.indices, indices)
    assert np.array_equal(C.indptr, indptr)
    r = rng.standard_normal(C.shape[0])
    r0 = r.copy()
    z = P.apply(r)
    assert np.array_equal(r, r0)
    out = np.full_like(r, np.nan)
    assert P.apply(r, out=out) is out
    np.testing.assert_allclose(out, z, rtol=1e-14, atol=0)
    assert np.array_equal(r, r0)
    assert P.apply(r, out=r) is r  # in place is allowed
    np.testing.assert_allclose(r, z, rtol=1e-14, atol=0)
    # grid-shaped vectors keep their shape
    rg = r0.reshape(A.grid.shape)
    np.testing.assert_allclose(P.apply(rg), z.reshape(A.grid.shape), rtol=1e-14, atol=0)


@pytest.mark.parametrize("M", ["ic0", "mic0"])
def test_ichol_preserves_support(M, rng):
    A, _ = gallery.smoke((14, 13, 12), obstacles=5, seed=3)
    P = make_preconditioner(M, A)
    assert P.preserves_support
    off = ~A.support
    r = np.where(off, 0.0, rng.standard_normal(A.shape[0]))
    assert np.all(P.apply(r)[off] == 0.0)


def test_stats():
    A, b = gallery.smoke((16, 16, 16), obstacles=4, seed=0)
    s = solve(A, b, M="mic0", rtol=1e-6, tau=0.9).stats
    assert s["preconditioner"] == "mic0" and s["tau"] == 0.9 and s["sigma"] == 0.25
    assert s["factor_nnz"] == sp.tril(A.to_csr()).nnz
    assert s["factor_bytes"] > 0 and s["pivot_fixes"] == 0 and s["precond_setup_time"] >= 0
    assert "mic_safety_fallbacks" in s
    for kind in ("sa", "rs"):
        s = solve(A, b, M="amg", amg=kind, rtol=1e-6).stats
        assert s["amg"] == kind and s["levels"] >= 2 and s["symmetric_smoothing"] is True
        assert s["operator_complexity"] >= 1.0 and s["grid_complexity"] >= 1.0
        assert s["precond_setup_time"] > 0 and s["hierarchy_bytes"] > 0


def test_registered():
    for name, cls in (("ic0", IC0), ("mic0", MIC0), ("amg", AMG)):
        assert PRECONDITIONERS[name].load() is cls and PRECONDITIONERS[name].cpu_only


# -- AMG specifics ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sa", "rs"])
def test_amg_levels_are_csr_and_vcycle_matches_pyamg(kind, rng):
    A, _ = gallery.smoke((18, 16, 14), obstacles=4, seed=1)
    P = AMG(amg=kind).build(A)
    ml = P.hierarchy
    assert len(ml.levels) >= 2
    for level in ml.levels:
        for attr in ("A", "P", "R"):
            M = getattr(level, attr, None)
            if M is not None:
                assert M.format == "csr", (attr, M.format)
    r = rng.standard_normal(A.shape[0])
    expected = ml.aspreconditioner(cycle="V") @ r  # pyamg's own V-cycle, same hierarchy
    np.testing.assert_allclose(P.apply(r), expected, rtol=1e-12, atol=1e-12)


def test_amg_without_pyamg(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyamg", None)
    A, b = gallery.poisson((8, 8))
    with pytest.raises(ImportError, match=r"pip install 'dcdm\[amg\]'"):
        solve(A, b, M="amg")


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [0.0, -0.5, 1.5, float("nan")])
def test_bad_tau(tau):
    with pytest.raises(ValueError, match=r"tau must lie in \(0, 1\]"):
        MIC0(tau=tau)


@pytest.mark.parametrize("sigma", [1.0, -0.1, 2.0])
def test_bad_sigma(sigma):
    with pytest.raises(ValueError, match=r"sigma must lie in \[0, 1\)"):
        MIC0(sigma=sigma)


def test_bad_parameter_types():
    with pytest.raises(TypeError, match="tau must be a real number"):
        MIC0(tau="0.9")
    with pytest.raises(TypeError, match="max_coarse must be an integer"):
        AMG(max_coarse=2.5)


def test_bad_options_through_solve():
    A, b = gallery.poisson((8, 8))
    with pytest.raises(ValueError, match="sigma"):
        solve(A, b, M="mic0", sigma=1.5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        solve(A, b, M="ic0", tau=0.5)


def test_unknown_amg_kind():
    with pytest.raises(ValueError, match=r"amg must be 'sa' .* or 'rs'"):
        AMG(amg="cljp")
    A, b = gallery.poisson((8, 8))
    with pytest.raises(ValueError, match=r"'sa'.*'rs'"):
        solve(A, b, M="amg", amg="bogus")


@pytest.mark.parametrize("M", ["ic0", "mic0", "amg"])
def test_operator_without_csr(M):
    A, b = gallery.poisson((6, 6))
    L = LinearOperator(A.shape, matvec=A.matvec, dtype=A.dtype)
    with pytest.raises(TypeError, match=rf"M='{M}' .*no to_csr\(\)"):
        solve(L, b, M=M)


@pytest.mark.parametrize("case", sorted(CASES))
def test_apply_rejects_wrong_sizes(case):
    A, _ = gallery.poisson((6, 5))
    P = build(case, A)
    with pytest.raises(ValueError, match="r has 7 entries"):
        P.apply(np.ones(7))
    with pytest.raises(ValueError, match="out must be a NumPy array"):
        P.apply(np.ones(30), out=np.ones(29))


def test_amg_builds_the_same_hierarchy_every_time():
    # pyamg's set-up draws from NumPy's global RNG; the build seeds it and restores it
    pytest.importorskip("pyamg")
    from dcdm.problems import gallery
    from dcdm.solvers import as_operator, make_preconditioner

    A, b = gallery.smoke((32, 32), obstacles=4, seed=1)
    np.random.seed(123)  # noqa: NPY002
    before = np.random.get_state()[1].copy()  # noqa: NPY002
    P1 = make_preconditioner("amg", as_operator(A))
    assert np.array_equal(np.random.get_state()[1], before)  # noqa: NPY002 (untouched)
    np.random.rand(7)  # noqa: NPY002
    P2 = make_preconditioner("amg", as_operator(A))
    np.testing.assert_array_equal(P1.apply(b), P2.apply(b))
