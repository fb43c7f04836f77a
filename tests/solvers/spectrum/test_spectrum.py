"""dcdm.spectrum: Ritz values from PCG, preconditioned Lanczos, extremes, SLQ, traces,
iteration predictions, against dense eigensolvers and analytic spectra."""

import importlib

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

import dcdm
from dcdm import spectrum
from dcdm.problems import gallery, scenes
from dcdm.solvers import as_operator, make_preconditioner
from dcdm.solvers.precond.function import FunctionPreconditioner

LINEAR = ["jacobi", "ic0", "mic0", "amg", "mg"]


def _skip_missing(M):
    if M == "amg":
        pytest.importorskip("pyamg")


def _tank(shape=(24, 24), seed=3):
    g = scenes.smoke(shape, obstacles=3, seed=seed)
    return g.laplacian()


def _dense_preconditioned(A, M):
    """Eigenvalues (ascending) of ``M^-1 A`` on the support, from dense matrices."""
    A = as_operator(A)
    support = getattr(A, "support", None)
    support = np.ones(A.shape[0], dtype=bool) if support is None else np.asarray(support)
    idx = np.flatnonzero(support)
    Ad = A.to_csr().toarray()[np.ix_(idx, idx)] if hasattr(A, "to_csr") else None
    if M is None:
        return np.linalg.eigvalsh(Ad)
    P = make_preconditioner(M, A)
    cols = []
    for i in idx:
        e = np.zeros(A.shape[0])
        e[i] = 1.0
        cols.append(np.asarray(P.apply(e)).reshape(-1)[idx])
    Pd = np.column_stack(cols)
    Pd = 0.5 * (Pd + Pd.T)  # symmetric to rounding; the eigenproblem A x = l P^-1 x
    return np.sort(scipy.linalg.eigvals(Pd @ Ad).real)


def test_public_name_is_the_solvers_module():
    mod = importlib.import_module("dcdm.spectrum")
    assert mod is dcdm.spectrum is importlib.import_module("dcdm.solvers.spectrum")
    from dcdm.spectrum import slq

    assert slq is spectrum.slq


# -- Ritz values read off a PCG solve --------------------------------------------------------
@pytest.mark.parametrize("M", [None, *LINEAR])
def test_ritz_extremes_from_pcg_match_the_dense_eigenvalues(M):
    _skip_missing(M)
    name = M
    A = _tank((20, 20))
    rng = np.random.default_rng(0)
    b = rng.standard_normal(A.shape[0]) * A.support
    M = make_preconditioner(M, as_operator(A))  # one set-up for all (pyamg's varies)
    res = dcdm.cg(A, b, M=M, rtol=1e-13, maxiter=4000)
    assert res.converged and "residual_restarts" not in res.stats
    theta = spectrum.ritz_values(res)
    assert theta.size == res.iterations
    exact = _dense_preconditioned(A, M)
    if name == "amg":
        # pyamg's V-cycle is so close to exact that CG reaches 1e-13 in 9 iterations
        # without resolving the ends (hundreds of eigenvalues sit in (0.999, 1]): the free
        # estimates are good to the clusters' width (measured 3e-4 and 1e-3); Lanczos run
        # for the purpose gets both ends
        np.testing.assert_allclose([theta[0], theta[-1]], [exact[0], exact[-1]], rtol=2e-3)
        assert exact[0] * (1 - 1e-9) <= theta[0] and theta[-1] <= exact[-1] * (1 + 1e-9)
        ext = spectrum.extreme_eigenvalues(A, M=M, rtol=1e-10)
        np.testing.assert_allclose(ext, [exact[0], exact[-1]], rtol=1e-8)
        return
    np.testing.assert_allclose(theta[0], exact[0], rtol=1e-8)
    np.testing.assert_allclose(theta[-1], exact[-1], rtol=1e-8)
    kappa = spectrum.condition_number(res)
    np.testing.assert_allclose(kappa, exact[-1] / exact[0], rtol=1e-7)


def test_pcg_coefficients_are_the_lanczos_tridiagonal():
    # the same Krylov space from the same start: PCG's T equals Lanczos' T in M's product
    A, b = gallery.poisson((16, 16))
    res = dcdm.cg(A, b, M="ic0", rtol=1e-6)
    d, e = spectrum.pcg_tridiagonal(res)
    basis = spectrum.lanczos(A, res.iterations, M="ic0", v0=b)
    np.testing.assert_allclose(d, basis.alpha, rtol=1e-8)
    np.testing.assert_allclose(e, basis.beta, rtol=1e-8)


def test_coefficients_stop_at_the_first_restart():
    A, b = gallery.poisson((12, 12))
    A32 = A.to_csr().astype(np.float32)
    res = dcdm.cg(A32, b.astype(np.float32), rtol=1e-9, maxiter=500)
    assert res.stats.get("residual_restarts", 0) >= 1
    assert res.stats["cg_alpha"].size < res.iterations
    assert not res.stats["cg_alpha"].flags.writeable
    assert spectrum.ritz_values(res).size == res.stats["cg_alpha"].size


def test_ritz_values_errors():
    A, b = gallery.poisson((8, 8))
    with pytest.raises(ValueError, match=r"method='cg'.*got method='fcg'"):
        spectrum.ritz_values(dcdm.fcg(A, b))
    with pytest.raises(ValueError, match="took no iteration"):
        spectrum.ritz_values(dcdm.cg(A, np.zeros_like(b)))
    with pytest.raises(TypeError, match="result must be a SolveResult"):
        spectrum.ritz_values((1, 2))


# -- Lanczos in the preconditioner's inner product -------------------------------------------
@pytest.mark.parametrize("how", ["full", "selective", "none"])
@pytest.mark.parametrize("M", [None, "ic0"])
def test_preconditioned_lanczos_every_reorthogonalisation(M, how):
    A = _tank((14, 14), seed=1)
    n_fluid = int(A.support.sum())
    basis = spectrum.lanczos(A, n_fluid + 40 if how == "none" else n_fluid, M=M,
                             reorthogonalize=how)
    vals, _ = basis.ritz()
    exact = _dense_preconditioned(A, M)
    np.testing.assert_allclose([vals[0], vals[-1]], [exact[0], exact[-1]], rtol=1e-8)
    if how == "none":
        assert basis.Q is None
        with pytest.raises(ValueError, match="reorthogonalize='none'"):
            basis.ritz_vectors()
        return
    # P-orthonormal: U Z^T = I; the Ritz vectors are eigenvectors of P A
    Z = basis.Q if basis.Z is None else basis.Z
    # full: orthonormal to rounding; selective: semi-orthogonal (sqrt(eps)), by design
    np.testing.assert_allclose(basis.Q @ Z.T, np.eye(basis.m),
                               atol=1e-10 if how == "full" else 1e-6)
    top = basis.ritz_vectors([-1])[:, 0]
    P = make_preconditioner(M, as_operator(A)) if M else None
    PAy = A.matvec(top)
    PAy = PAy if P is None else np.asarray(P.apply(PAy))
    np.testing.assert_allclose(PAy[A.support], vals[-1] * top[A.support], atol=1e-6)


def test_lanczos_refuses_what_it_cannot_do():
    A, _ = gallery.poisson((8, 8))
    nonlinear = FunctionPreconditioner(lambda r: r, is_linear=False)
    with pytest.raises(ValueError, match=r"not a linear SPD preconditioner, which Lanczos"):
        spectrum.lanczos(A, 5, M=nonlinear)
    with pytest.raises(ValueError, match=r"not a linear SPD preconditioner"):
        spectrum.slq(A, M=nonlinear, steps=5, probes=2)
    skew = sp.csr_array(np.triu(np.ones((6, 6))))
    with pytest.raises(ValueError, match="A is not symmetric"):
        spectrum.extreme_eigenvalues(skew)
    with pytest.raises(ValueError, match="reorthogonalize must be one of"):
        spectrum.lanczos(A, 5, reorthogonalize="partial")
    with pytest.raises(ValueError, match=r"v0 must have 64 entries"):
        spectrum.lanczos(A, 5, v0=np.ones(3))
    with pytest.raises(ValueError, match="v0 is zero"):
        spectrum.lanczos(A, 5, v0=np.zeros(64))


# -- extremes ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(31, 31), (12, 12, 12)])
def test_extremes_match_the_analytic_poisson_spectrum(shape):
    A, _ = gallery.poisson(shape)
    n = shape[0]
    s = 4 * np.sin(np.array([1, n]) * np.pi / (2 * (n + 1))) ** 2
    lo, hi = spectrum.extreme_eigenvalues(A, rtol=1e-10)
    np.testing.assert_allclose([lo, hi], len(shape) * s, rtol=1e-8)
    ext = spectrum.extreme_eigenvalues(A, M="jacobi", reorthogonalize="none", rtol=1e-10)
    np.testing.assert_allclose(ext, len(shape) * s / (2 * len(shape)), rtol=1e-8)
    assert ext.condition_number == pytest.approx(s[1] / s[0], rel=1e-7)


def test_extremes_of_a_singular_system_are_on_its_range():
    g = scenes.tank((16, 16), open_top=False)  # all-Neumann: constant null space
    A = g.laplacian()
    assert A.nullspace is not None
    lo, hi = spectrum.extreme_eigenvalues(A)
    exact = np.linalg.eigvalsh(A.to_csr().toarray()[np.ix_(A.support, A.support)])
    np.testing.assert_allclose([lo, hi], [exact[1], exact[-1]], rtol=1e-7)


# -- SLQ and traces ---------------------------------------------------------------------------
def test_slq_trace_within_three_sigma():
    A = _tank((24, 24), seed=2)
    exact = A.to_csr().diagonal()[A.support].sum()
    d = spectrum.slq(A, steps=25, probes=30, seed=4)
    assert d.measure == "uniform" and d.n == A.support.sum()
    assert abs(d.trace() - exact) <= 3 * d.trace_std()
    np.testing.assert_allclose(d.weights.sum(), 1.0, rtol=1e-12)
    # Jacobi: the start is scaled by D^(1/2), so the measure is uniform: tr(D^-1 A) = n
    dj = spectrum.slq(A, M="jacobi", steps=25, probes=30, seed=4)
    assert dj.measure == "uniform"
    assert abs(dj.trace() - dj.n) <= 3 * dj.trace_std()
    # a function of the operator: tr(A^2) = ||A||_F^2
    Ad = A.to_csr()[A.support][:, A.support]
    fro2 = (Ad.multiply(Ad)).sum()
    assert abs(d.trace(np.square) - fro2) <= 3 * d.trace_std(np.square)


def test_slq_density_and_its_limits():
    A, _ = gallery.poisson((16, 16))
    d = spectrum.slq(A, M="ic0", steps=20, probes=3)
    assert d.measure == "residual" and d.preconditioner == "ic0"
    with pytest.raises(ValueError, match=r"trace\(\) needs the uniform spectral measure"):
        d.trace()
    grid, values = d.density(points=2000)
    np.testing.assert_allclose(np.trapezoid(values, grid), 1.0, rtol=1e-3)
    lgrid, lvalues = d.relative_log_density(points=2000, sigma=0.02)  # log10(l / l_max)
    assert lgrid[-1] == pytest.approx(0.1) and lgrid[0] < np.log10(d.extremes[0] / d.extremes[1])
    np.testing.assert_allclose(np.trapezoid(lvalues, lgrid), 1.0, rtol=1e-3)
    lo, hi = d.extremes
    exact = _dense_preconditioned(A, "ic0")
    assert exact[0] <= lo * (1 + 1e-8) and hi <= exact[-1] * (1 + 1e-8)
    with pytest.raises(ValueError, match="steps must be at most the number of unknowns"):
        spectrum.slq(A, steps=257)
    with pytest.raises(ValueError, match="probes must be an integer >= 1, got 0"):
        spectrum.slq(A, probes=0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        d.density(sigma=0.0)


def test_hutchinson_and_hutchpp_for_any_linear_preconditioner():
    A = _tank((16, 16), seed=5)
    exact = _dense_preconditioned(A, "ic0").sum()
    est = spectrum.hutchinson(A, M="ic0", probes=200, seed=1)
    assert abs(est.value - exact) <= 3 * est.std and est.matvecs == 200
    pp = spectrum.hutchpp(A, M="ic0", matvecs=150, seed=1)
    assert abs(pp.value - exact) <= 0.02 * exact  # Hutch++: O(1/m) relative error
    assert pp.matvecs <= 150
    with pytest.raises(ValueError, match="matvecs must be an integer >= 3"):
        spectrum.hutchpp(A, matvecs=2)
    with pytest.raises(ValueError, match="probes must be an integer >= 1"):
        spectrum.hutchinson(A, probes=0)


# -- predicted iterations ---------------------------------------------------------------------
CASES = {
    "poisson-32^2": lambda: gallery.poisson((32, 32))[0],
    "tank-48^2": lambda: _tank((48, 48), seed=7),
    "tank-16^3": lambda: _tank((16, 16, 16), seed=2),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("M", LINEAR)
def test_predicted_iterations_within_one_and_a_half_times_actual(case, M):
    _skip_missing(M)
    A = CASES[case]()
    rng = np.random.default_rng(11)
    b = rng.standard_normal(A.shape[0]) * getattr(A, "support", 1.0)
    actual = dcdm.cg(A, b, M=M, rtol=1e-6).iterations
    pred = spectrum.predict_iterations(A, b, M=M, rtol=1e-6, steps=300)
    assert not pred.extrapolated
    assert actual / 1.5 <= pred.iterations <= 1.5 * actual
    generic = spectrum.predict_iterations(A, M=M, rtol=1e-6, steps=300, probes=3)
    assert actual / 1.5 <= generic.iterations <= 1.5 * actual


def test_prediction_beyond_the_lanczos_steps_is_flagged():
    A, b = gallery.poisson((32, 32))
    pred = spectrum.predict_iterations(A, b, M="jacobi", rtol=1e-8, steps=20)
    assert pred.extrapolated and pred.steps == 20 and pred.iterations > 20
    with pytest.raises(ValueError, match=r"rtol must be a number in \(0, 1\)"):
        spectrum.predict_iterations(A, b, rtol=0)
    with pytest.raises(ValueError, match="b must have 1024 entries"):
        spectrum.predict_iterations(A, b[:5])


# -- the survey (dcdm spectrum, the scaling report) -------------------------------------------
def test_survey_rows_and_refusals():
    A, b = gallery.poisson((20, 20))
    rows = spectrum.survey(A.to_csr(), b, ("jacobi", "mg"), steps=10, probes=2)
    assert rows[1] == {"M": "mg", "skipped": rows[1]["skipped"]}  # no grid: MG cannot build
    assert "grid" in rows[1]["skipped"]
    jac = rows[0]
    assert jac["actual"] == dcdm.cg(A, b, M="jacobi", rtol=1e-6).iterations
    assert jac["extremes_converged"] and jac["kappa"] == pytest.approx(
        jac["kappa_from_solve"], rel=1e-3)
    assert "jacobi" in spectrum.format_survey(rows) and "skipped" in spectrum.format_survey(rows)
    with pytest.raises(ValueError, match=r"linear SPD preconditioners .*got \['neural'\]"):
        spectrum.survey(A, b, ("neural",))
    with pytest.raises(ValueError, match="predict_steps must be an integer >= 1"):
        spectrum.survey(A, b, ("jacobi",), predict_steps=0)


def test_unconverged_extremes_say_so(caplog):
    A, _ = gallery.poisson((40, 40))
    ext = spectrum.extreme_eigenvalues(A, maxiter=10)
    assert not ext.converged and ext.steps == 10
    assert "not converged" in caplog.text and "not converged" in repr(ext)
    lo, hi = ext  # still a pair
    exact = 8 * np.sin(np.array([1, 40]) * np.pi / 82) ** 2
    assert lo >= exact[0] and hi <= exact[1] * (1 + 1e-12)
