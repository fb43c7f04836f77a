"""Contract tests driven by the registries: every registered preconditioner and method.

A record must agree with what it names (linear, SPD, grid-only, CPU-only, options), and
the object must keep its side of the contract, checked numerically on a small grid with
obstacles and a free surface: ``apply`` never modifies ``r``, ``out=`` works, the
linearity and SPD claims hold, the support is honoured.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import dcdm
from dcdm.problems import gallery
from dcdm.solvers import METHODS, PRECONDITIONERS, make_preconditioner
from dcdm.solvers.compare import comparison_matrix

#: constructor options the contract tests pass (no network weights, no torch)
OPTIONS = {"neural": {"model": lambda r: r}}
COMMON = {"A", "b", "x0", "M", "rtol", "atol", "maxiter", "callback", "check",
          "precond_options"}


@pytest.fixture(scope="module")
def system():
    A, b = gallery.smoke((10, 9, 8), obstacles=2, seed=3)
    return A, b


def _built(name, A):
    try:
        return make_preconditioner(name, A, **OPTIONS.get(name, {}))
    except ImportError as exc:  # an optional extra (numba, pyamg) is not installed
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", sorted(PRECONDITIONERS))
def test_record_agrees_with_its_class(name):
    record = PRECONDITIONERS[name]
    cls = record.load()
    assert cls.name == name
    assert (cls.is_linear, cls.is_spd, cls.cpu_only) == (
        record.is_linear, record.is_spd, record.cpu_only)
    params = inspect.signature(cls).parameters
    assert set(record.options) == {p for p in params if p != "self"}


@pytest.mark.parametrize("name", sorted(PRECONDITIONERS))
def test_grid_only_ones_say_so(name, system):
    A, _ = system
    record = PRECONDITIONERS[name]
    if record.needs_grid:
        with pytest.raises(TypeError, match="needs a grid operator"):
            make_preconditioner(name, dcdm.solvers.as_operator(A.to_csr()),
                                **OPTIONS.get(name, {}))
    else:
        assert _built(name, dcdm.solvers.as_operator(A.to_csr())).built


@pytest.mark.parametrize("name", sorted(PRECONDITIONERS))
def test_apply_keeps_the_contract(name, system, rng):
    A, _ = system
    P = _built(name, A)
    fluid = A.support
    r = np.where(fluid, rng.standard_normal(A.shape[0]), 0.0)
    before = r.copy()
    z = P.apply(r)
    np.testing.assert_array_equal(r, before)  # r is never modified
    out = np.full_like(r, np.nan)
    assert P.apply(r, out=out) is out
    np.testing.assert_allclose(out, z, rtol=1e-12, atol=1e-14)
    if P.preserves_support:
        assert not np.any(z[~fluid])


@pytest.mark.parametrize("name", sorted(PRECONDITIONERS))
def test_linear_and_spd_claims_hold(name, system, rng):
    A, _ = system
    P = _built(name, A)
    fluid = A.support

    def M(v):
        z = P.apply(v)
        return np.where(fluid, z, 0.0)  # what the solvers iterate on

    u, v = (np.where(fluid, rng.standard_normal(A.shape[0]), 0.0) for _ in range(2))
    if P.is_linear:
        np.testing.assert_allclose(M(2.0 * u - 3.0 * v), 2.0 * M(u) - 3.0 * M(v),
                                   rtol=1e-9, atol=1e-9 * np.abs(M(u)).max())
    if P.is_spd:
        assert u @ M(u) > 0 and v @ M(v) > 0
        assert abs(u @ M(v) - v @ M(u)) <= 1e-9 * abs(u @ M(v))


def test_linear_claim_is_checked_numerically(system, rng):
    """The check above fails a preconditioner whose claim is false (a non-linear map)."""
    A, _ = system
    u = rng.standard_normal(A.shape[0])
    P = make_preconditioner(lambda r: r * np.abs(r), A)  # claims linear (the default)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(P.apply(2.0 * u), 2.0 * P.apply(u), rtol=1e-9)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_record_agrees_with_its_function(name):
    record = METHODS[name]
    params = inspect.signature(record.solve).parameters
    assert set(params) - COMMON == set(record.options)
    assert record.solve is getattr(dcdm.solvers, name)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_solves_a_known_system(name, system, rng):
    A, _ = system
    x_true = np.where(A.support, rng.standard_normal(A.shape[0]), 0.0)
    b = A.matvec(x_true)
    opts = {"model": lambda r: r} if name == "dcdm" else {}
    res = dcdm.solve(A, b, method=name, rtol=1e-10, **opts)
    assert res.converged and res.residual_norm <= 1e-10 * np.linalg.norm(b)
    np.testing.assert_allclose(res.x, x_true, atol=1e-6 * np.abs(x_true).max())
    if METHODS[name].needs_grid:
        with pytest.raises(TypeError, match="needs a grid operator"):
            dcdm.solve(A.to_csr(), b, method=name, **opts)
    if not METHODS[name].takes_M:
        with pytest.raises(ValueError, match="takes no preconditioner"):
            dcdm.solve(A, b, method=name, M="jacobi", **opts)


def test_comparison_matrix_pairs_each_preconditioner_with_its_method():
    combos = comparison_matrix()
    names = {(m, M or "none") for m, M, _ in combos if m != "dcdm"}
    assert names == {("cg" if r.for_cg else "fcg", n) for n, r in PRECONDITIONERS.items()}
    assert [o["variant"] for m, _, o in combos if m == "dcdm"] == ["robust", "paper"]
    assert comparison_matrix("neural") == [("fcg", "neural", {})]
