"""The finite-volume reference solver and data set for 1-D diffusion-sorption."""

import os
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

from dcdm.training.constraints import diffusion_sorption as ds


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def centres(nx):
    return (np.arange(nx) + 0.5) / nx


def smooth_ic(nx):
    x = centres(nx)
    return 0.1 + 0.05 * np.cos(np.pi * x) + 0.03 * np.sin(3 * np.pi * x)


# ---------------------------------------------------------------- retardation


def test_retardation_known_values():
    coef = 0.71 / 0.29 * 2880 * 3.5e-4 * 0.874
    assert ds.retardation(1.0) == pytest.approx(1 + coef * (1 + 1e-6) ** -0.126, rel=1e-14)
    assert ds.retardation(1.0) == pytest.approx(3.1569, abs=1e-4)
    assert ds.retardation(0.0) == pytest.approx(1 + coef * 1e-6**-0.126, rel=1e-14)
    # negative trial states are clipped to 0, so R stays real and bounded
    assert ds.retardation(-0.5) == ds.retardation(0.0)
    assert ds.retardation_prime(-0.5) == 0.0
    u = np.array([[0.01, 0.1], [0.5, 1.0]])
    assert ds.retardation(u).shape == (2, 2)
    assert np.all(np.diff(ds.retardation(np.linspace(0, 1, 50))) < 0)  # n_f < 1


def test_retardation_prime_matches_finite_differences():
    u = np.geomspace(1e-3, 1.0, 40)
    h = 1e-7 * u
    fd = (ds.retardation(u + h) - ds.retardation(u - h)) / (2 * h)
    np.testing.assert_allclose(ds.retardation_prime(u), fd, rtol=1e-6)


def test_retardation_rejects_non_real():
    with pytest.raises(TypeError, match="u must be an array of real numbers"):
        ds.retardation(np.array([1 + 1j]))
    with pytest.raises(TypeError, match="u must be an array of real numbers"):
        ds.retardation_prime(["a"])


# ---------------------------------------------------------------- solver


def coarsen(u, factor):
    return u.reshape(*u.shape[:-1], -1, factor).mean(-1)


def test_second_order_convergence():
    us = {nx: ds.solve_fv(smooth_ic(nx), nt=6, rtol=1e-10, atol=1e-12) for nx in (64, 128, 256)}
    e_coarse = np.abs(us[64] - coarsen(us[128], 2))[1:].max()
    e_fine = np.abs(us[128] - coarsen(us[256], 2))[1:].max()
    order = np.log2(e_coarse / e_fine)
    assert order > 1.5, (e_coarse, e_fine, order)


def test_linear_diffusion_matches_matrix_exponential():
    """sorption=False: the semi-discrete system is u' = D (L u + b), solved exactly by expm."""
    nx = 40
    dx, c = 1 / nx, 2 * ds.D * nx
    L = (np.diag(np.full(nx - 1, 1.0), -1) + np.diag(np.full(nx - 1, 1.0), 1)
         - 2 * np.eye(nx))
    L[0, 0] = -3  # Dirichlet face at dx/2
    L[-1, -1] = -1 - 2 / (1 - c)  # Cauchy face: u_b = -c/(1-c) u_{N-1}
    L /= dx**2
    b = np.zeros(nx)
    b[0] = 2 / dx**2
    u0 = smooth_ic(nx)
    steady = np.linalg.solve(L, -b)
    times = np.linspace(0, 300, 4)
    exact = np.array([steady + scipy.linalg.expm(ds.D * L * t) @ (u0 - steady) for t in times])
    u = ds.solve_fv(u0, t_end=300, nt=4, sorption=False, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(u, exact, atol=1e-8)


def test_linear_steady_state_is_exact():
    """Finite volumes are exact on the linear steady state 1 - x / (1 - D) of the PDE."""
    nx = 50
    u = ds.solve_fv(np.full(nx, 0.3), t_end=1e5, nt=2, sorption=False)
    np.testing.assert_allclose(u[-1], 1 - centres(nx) / (1 - ds.D), atol=1e-7)


def test_positive_bounded_row0_and_left_boundary(rng):
    u0 = ds.random_initial_conditions(3, 128, rng=rng, low=0.01, high=1.0)
    for v in u0:
        u = ds.solve_fv(v, nt=11)
        assert u.shape == (11, 128)
        assert np.array_equal(u[0], v)
        assert u.min() > 0 and u.max() <= 1
        # the inflow cell moves towards the Dirichlet value 1 (not monotonically: once full,
        # it follows its draining right neighbour a little)
        assert u[-1, 0] > max(0.99, v[0])
        assert np.all(u[1:, 0] > v[0])


def test_analytic_jacobian_matches_finite_differences(monkeypatch, rng):
    captured = {}
    real = scipy.integrate.solve_ivp

    def spy(fun, t_span, y0, **kwargs):
        captured.update(fun=fun, jac=kwargs["jac"])
        return real(fun, t_span, y0, **kwargs)

    monkeypatch.setattr(ds, "solve_ivp", spy)
    ds.solve_fv(smooth_ic(12), t_end=1.0, nt=2)
    u = rng.uniform(0.05, 0.9, 12)
    J = captured["jac"](0.0, u).toarray()
    h = 1e-7
    fd = np.column_stack([(captured["fun"](0.0, u + h * e) - captured["fun"](0.0, u - h * e))
                          / (2 * h) for e in np.eye(12)])
    np.testing.assert_allclose(J, fd, rtol=1e-6, atol=1e-9)
    assert np.count_nonzero(J) == 3 * 12 - 2


def test_integrator_failure_raises(monkeypatch):
    monkeypatch.setattr(ds, "solve_ivp",
                        lambda *a, **k: SimpleNamespace(success=False, message="step too small"))
    with pytest.raises(RuntimeError, match="BDF integrator failed: step too small"):
        ds.solve_fv(smooth_ic(8))
    monkeypatch.setattr(ds, "solve_ivp", lambda *a, **k: SimpleNamespace(
        success=True, message="", y=np.full((8, 2), np.nan)))
    with pytest.raises(RuntimeError, match="non-finite"):
        ds.solve_fv(smooth_ic(8), nt=2)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"u0": np.ones((2, 4))}, ValueError, "u0 must be 1-D"),
    ({"u0": np.ones(2)}, ValueError, "u0 must have 3 <= nx <= 999"),
    ({"u0": np.full(1000, 0.1)}, ValueError, "nx = 1000"),
    ({"u0": np.array([0.1, np.nan, 0.1])}, ValueError, "u0 must be finite"),
    ({"u0": np.array([0.1, 0.0, 0.1])}, ValueError, "u0 must be > 0"),
    ({"u0": np.array(["a", "b", "c"])}, TypeError, "u0 must be an array of real numbers"),
    ({"u0": np.array([True, True, True])}, TypeError, "u0 must be an array of real"),
    ({"t_end": 0.0}, ValueError, "t_end must be finite and > 0"),
    ({"t_end": np.inf}, ValueError, "t_end must be finite"),
    ({"t_end": "1"}, TypeError, "t_end must be a real number"),
    ({"nt": 1}, ValueError, "nt must be >= 2"),
    ({"nt": 5.0}, TypeError, "nt must be an int"),
    ({"rtol": -1e-6}, ValueError, "rtol must be finite and > 0"),
    ({"atol": -1.0}, ValueError, "atol must be finite and >= 0"),
    ({"sorption": 1}, TypeError, "sorption must be a bool"),
])
def test_solve_fv_errors(kwargs, exc, match):
    args = {"u0": np.full(8, 0.1)} | kwargs
    with pytest.raises(exc, match=match):
        ds.solve_fv(args.pop("u0"), **args)


# ---------------------------------------------------------------- initial conditions


def test_random_initial_conditions():
    a = ds.random_initial_conditions(5, 64, rng=np.random.default_rng(7))
    b = ds.random_initial_conditions(5, 64, rng=np.random.default_rng(7))
    c = ds.random_initial_conditions(5, 64, rng=np.random.default_rng(8))
    assert a.shape == (5, 64)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    np.testing.assert_allclose(a.min(axis=1), 0.02)
    np.testing.assert_allclose(a.max(axis=1), 0.2)
    assert np.abs(np.diff(a, 2, axis=1)).max() < 0.02  # smooth: small second differences
    d = ds.random_initial_conditions(2, 16, rng=np.random.default_rng(0), low=0.5, high=0.6)
    assert d.min() >= 0.5 - 1e-15 and d.max() <= 0.6 + 1e-15


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"n": 0}, ValueError, "n must be >= 1"),
    ({"n": 2.0}, TypeError, "n must be an int"),
    ({"nx": 2}, ValueError, "nx must be >= 3"),
    ({"modes": 1}, ValueError, "modes must be >= 2"),
    ({"rng": 0}, TypeError, "rng must be a numpy.random.Generator"),
    ({"low": 0.0}, ValueError, "low must be finite and > 0"),
    ({"high": np.nan}, ValueError, "high must be finite and > 0"),
    ({"low": 0.3, "high": 0.2}, ValueError, "low must be < high"),
])
def test_random_initial_conditions_errors(kwargs, exc, match):
    args = {"n": 2, "nx": 8, "rng": np.random.default_rng(0)} | kwargs
    with pytest.raises(exc, match=match):
        ds.random_initial_conditions(**args)


# ---------------------------------------------------------------- data set


def test_make_dataset():
    data = ds.make_dataset(3, nx=24, nt=4, seed=5, progress=True)
    assert {k: v.shape for k, v in data.items()} == {
        "u0": (3, 24), "u": (3, 4, 24), "x": (24,), "t": (4,)}
    np.testing.assert_allclose(data["x"], centres(24))
    np.testing.assert_allclose(data["t"], [0, 500 / 3, 1000 / 3, 500])
    assert np.array_equal(data["u"][:, 0], data["u0"])
    again = ds.make_dataset(3, nx=24, nt=4, seed=5)
    assert np.array_equal(data["u"], again["u"])
    u0 = ds.random_initial_conditions(3, 24, rng=np.random.default_rng(5))
    assert np.array_equal(data["u0"], u0)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"n": 0}, ValueError, "n must be >= 1"),
    ({"nx": 1000}, ValueError, "nx must be <= 999"),
    ({"nt": 1}, ValueError, "nt must be >= 2"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": None}, TypeError, "seed must be an int"),
    ({"progress": "yes"}, TypeError, "progress must be a bool"),
])
def test_make_dataset_errors(kwargs, exc, match):
    args = {"n": 1, "nx": 8, "nt": 2} | kwargs
    with pytest.raises(exc, match=match):
        ds.make_dataset(args.pop("n"), **args)


def test_load_or_make_dataset(tmp_path, monkeypatch):
    calls = []
    real = ds.make_dataset

    def counting(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ds, "make_dataset", counting)
    path = tmp_path / "sub" / "ds.npz"
    a = ds.load_or_make_dataset(path, 2, nx=16, nt=3, seed=1)
    assert path.exists() and len(calls) == 1
    assert os.listdir(path.parent) == ["ds.npz"]  # no temporary left behind
    b = ds.load_or_make_dataset(str(path), 2, nx=16, nt=3, seed=1)
    assert len(calls) == 1  # reloaded, not regenerated
    for k in ("u0", "u", "x", "t"):
        assert np.array_equal(a[k], b[k])
    for change in ({"nx": 12}, {"nt": 4}, {"seed": 2}):
        args = {"nx": 16, "nt": 3, "seed": 1} | change
        c = ds.load_or_make_dataset(path, 2, **args)
        assert c["u"].shape == (2, args["nt"], args["nx"])
    assert len(calls) == 4
    c = ds.load_or_make_dataset(path, 3, nx=16, nt=3, seed=1)  # n changed
    assert c["u0"].shape == (3, 16) and len(calls) == 5
    path.write_bytes(b"not a zip file")  # a foreign, corrupt file is replaced
    d = ds.load_or_make_dataset(path, 3, nx=16, nt=3, seed=1)
    assert np.array_equal(c["u"], d["u"]) and len(calls) == 6
    ds.load_or_make_dataset(path, 3, nx=16, nt=3, seed=1)
    assert len(calls) == 6


def test_load_or_make_dataset_errors(tmp_path):
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        ds.load_or_make_dataset(3, 1, nx=8, nt=2, seed=0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        ds.load_or_make_dataset(tmp_path / "x.npz", 0)
    with pytest.raises(TypeError, match="seed must be an int"):
        ds.load_or_make_dataset(tmp_path / "x.npz", 1, seed=1.5)
    assert not list(tmp_path.iterdir())


def test_blended_initial_conditions_meet_the_boundary_values():
    u0 = ds.random_initial_conditions(3, 256, rng=np.random.default_rng(1), blend=0.1)
    plain = ds.random_initial_conditions(3, 256, rng=np.random.default_rng(1))
    assert np.all(u0 > 0) and np.all(u0 <= 1)
    assert np.all(u0[:, 0] > 0.98) and np.all(u0[:, -1] < 0.03)  # 1 at x = 0, ~low at x = 1
    np.testing.assert_allclose(u0[:, 100:140], plain[:, 100:140], atol=0.02)  # middle kept
    with pytest.raises(ValueError, match="blend"):
        ds.random_initial_conditions(1, 16, rng=np.random.default_rng(0), blend=-1.0)
    data = ds.make_dataset(2, nx=16, nt=3, blend=0.1)
    assert data["u0"][:, 0].min() > 0.7
