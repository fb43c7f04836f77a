"""Hard-constraint layers: batched LM, the implicit-function backward, PI-HC / MoE, the FNO."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dcdm.training.constraints.diffusion_sorption import solve_fv  # noqa: E402
from dcdm.training.constraints.fno import FNO2d  # noqa: E402
from dcdm.training.constraints.layer import HardConstraint, Partition  # noqa: E402
from dcdm.training.constraints.least_squares import (  # noqa: E402
    ImplicitGradientError,
    levenberg_marquardt,
    solve_least_squares,
)
from dcdm.training.constraints.sorption import (  # noqa: E402
    SorptionConstraint,
    grid_residual,
    retardation,
)

F64 = torch.float64


def exp_fit(w, x, y):
    return w[0] * torch.exp(w[1] * x) - y


def rational(w, x, y):
    """A nonlinear residual whose optimum moves smoothly with the data."""
    return w[0] * torch.exp(w[1] * x) + w[2] / (1.0 + x) - y


def _exp_data(batch=3, m=25, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(0, 1, m, dtype=F64).expand(batch, m).clone()
    a = 1 + torch.rand(batch, 1, generator=g, dtype=F64)
    k = -2 * torch.rand(batch, 1, generator=g, dtype=F64)
    return x, a * torch.exp(k * x), a[:, 0], k[:, 0]


# ---------------------------------------------------------------- Levenberg-Marquardt


def test_lm_recovers_exact_parameters_batched():
    x, y, a, k = _exp_data()
    w, info = levenberg_marquardt(exp_fit, torch.ones(3, 2, dtype=F64), (x, y), tol=1e-12)
    assert info.converged.all()
    np.testing.assert_allclose(w[:, 0], a, rtol=1e-9)
    np.testing.assert_allclose(w[:, 1], k, rtol=1e-9, atol=1e-10)
    # a consistent problem: the constraint residual at the points is at the tolerance's level
    assert float(exp_fit(w[0], x[0], y[0]).abs().max()) <= 1e-10
    assert (info.gradient_norm <= 1e-12).all()


def test_lm_overdetermined_stops_at_stationary_point():
    g = torch.Generator().manual_seed(1)
    x = torch.linspace(0.1, 3, 40, dtype=F64).expand(2, 40)
    y = torch.cos(x) + 0.1 * torch.randn(2, 40, generator=g, dtype=F64)
    w, info = levenberg_marquardt(rational, torch.ones(2, 3, dtype=F64), (x, y), tol=1e-10)
    assert float(info.objective.min()) > 0.01  # a residual problem, not an exact fit
    assert info.converged.all()
    J = torch.func.vmap(torch.func.jacfwd(rational))(w, x, y)
    r = torch.func.vmap(rational)(w, x, y)
    assert float(torch.einsum("bmn,bm->bn", J, r).abs().max()) <= 1e-10
    np.testing.assert_allclose(info.objective, 0.5 * (r * r).sum(1), rtol=1e-12)


def test_lm_items_stop_independently_and_report_maxiter():
    x, y, *_ = _exp_data(batch=2)
    _, info = levenberg_marquardt(exp_fit, torch.ones(2, 2, dtype=F64), (x, y), tol=1e-14,
                                  maxiter=2)
    assert not info.converged.any() and (info.iterations == 2).all()
    start = torch.stack([torch.tensor([1.0, 0.0], dtype=F64), torch.ones(2, dtype=F64)])
    _, info = levenberg_marquardt(exp_fit, start, (x, y), tol=1e-10)
    assert info.converged.all()


@pytest.mark.parametrize("bad, match", [
    (dict(omega0=torch.ones(2)), "omega0 must be a \\(batch, N\\) tensor"),
    (dict(omega0=torch.ones(3, 2, dtype=torch.long)), "floating-point"),
    (dict(omega0=torch.full((3, 2), float("nan"), dtype=F64)), "omega0 contains NaN"),
    (dict(terms=(torch.ones(2, 5, dtype=F64),)), "terms\\[0\\] must be a tensor with the batch"),
    (dict(terms=(torch.full((3, 5), float("inf"), dtype=F64),)), "terms\\[0\\] contains NaN"),
    (dict(tol=0.0), "tol must be > 0"),
    (dict(maxiter=0), "maxiter must be a positive integer"),
])
def test_lm_bad_input(bad, match):
    x, y, *_ = _exp_data()
    args = dict(omega0=torch.ones(3, 2, dtype=F64), terms=(x, y), tol=1e-8, maxiter=10)
    args.update(bad)
    with pytest.raises((ValueError, TypeError), match=match):
        levenberg_marquardt(exp_fit, args["omega0"], args["terms"], tol=args["tol"],
                            maxiter=args["maxiter"])


# ---------------------------------------------------------------- implicit-function backward


def test_ift_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(2)
    x = torch.linspace(0.1, 3, 8, dtype=F64)[None].clone().requires_grad_()
    y = (torch.cos(x.detach()) + 0.1 * torch.randn(1, 8, generator=g, dtype=F64))
    y.requires_grad_()

    def f(x, y):
        w, ok = solve_least_squares(rational, (x, y), torch.ones(1, 3, dtype=F64), tol=1e-12,
                                    maxiter=200)
        assert ok.all()
        return w

    assert torch.autograd.gradcheck(f, (x, y), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_ift_linear_least_squares_is_pseudo_inverse():
    g = torch.Generator().manual_seed(3)
    A = torch.randn(4, 9, 3, generator=g, dtype=F64, requires_grad=True)
    y = torch.randn(4, 9, generator=g, dtype=F64, requires_grad=True)
    w, _ = solve_least_squares(lambda w, A, y: A @ w - y, (A, y), torch.zeros(4, 3, dtype=F64))
    v = torch.randn(4, 3, generator=g, dtype=F64)
    (w * v).sum().backward()
    ref_A, ref_y = A.detach().clone().requires_grad_(), y.detach().clone().requires_grad_()
    (torch.linalg.lstsq(ref_A, ref_y[..., None]).solution[..., 0] * v).sum().backward()
    np.testing.assert_allclose(y.grad, ref_y.grad, atol=1e-10)
    np.testing.assert_allclose(A.grad, ref_A.grad, atol=1e-10)


def test_ift_singular_hessian_raises():
    # omega[1] never enters the residual: the Hessian is singular, no implicit gradient exists
    y = torch.ones(1, 4, dtype=F64, requires_grad=True)
    w, _ = solve_least_squares(lambda w, y: w[0] - y, (y,), torch.zeros(1, 2, dtype=F64))
    with pytest.raises(ImplicitGradientError, match="singular for batch item"):
        w.sum().backward()


def test_ift_no_gradient_needed_returns_none():
    x, y, *_ = _exp_data()
    w, _ = solve_least_squares(exp_fit, (x, y), torch.ones(3, 2, dtype=F64))
    assert not w.requires_grad


# ---------------------------------------------------------------- partition and layer


def test_partition_labels_sampling_and_combination():
    p = Partition((2, 3))
    labels = p.labels((4, 7))
    assert labels.tolist()[0] == [0, 0, 0, 1, 1, 2, 2] and labels[3, 6] == 5
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[:, 0] = False
    pts = p.sample(mask, 2, batch=3, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (3, 6, 2)
    flat = labels.reshape(-1)
    for k in range(6):
        assert (flat[pts[:, k]] == k).all() and mask.reshape(-1)[pts[:, k]].all()
        assert (pts[:, k, 0] != pts[:, k, 1]).all()  # without replacement
    fields = torch.arange(6, dtype=F64)[None, :, None, None].expand(2, 6, 4, 7)
    assert torch.equal(p.combine(fields), labels.to(F64).expand(2, 4, 7))


@pytest.mark.parametrize("blocks, match", [((0, 1), "two positive integers"),
                                           ((1, 2, 3), "two positive integers")])
def test_partition_bad(blocks, match):
    with pytest.raises(ValueError, match=match):
        Partition(blocks)


def test_partition_too_many_points():
    with pytest.raises(ValueError, match="points=9 exceeds the 8 admissible cells of expert 0"):
        Partition((1, 2)).sample(torch.ones(2, 8, dtype=torch.bool), 9, batch=1)
    with pytest.raises(ValueError, match="needs a grid at least that large"):
        Partition((1, 9)).labels((2, 8))


def _basis(B=2, N=4, nt=6, nx=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, nt, dtype=F64)[:, None]
    x = ((torch.arange(nx, dtype=F64) + 0.5) / nx)[None, :]
    funcs = [torch.ones(nt, nx, dtype=F64), torch.exp(-8 * x) + 0 * t, x * (1 - x) + 0 * t,
             torch.exp(-t) * torch.cos(3 * x)]
    base = torch.stack(funcs[:N])
    noise = 0.01 * torch.randn(B, N, nt, nx, generator=g, dtype=F64)
    return base[None] + noise


def _u0(B=2, nx=16):
    x = (torch.arange(nx, dtype=F64) + 0.5) / nx
    return (0.1 + 0.05 * torch.cos(torch.pi * x)).expand(B, nx).clone()


def test_moe_with_one_expert_equals_pi_hc():
    basis, u0 = _basis(), _u0()
    hc = HardConstraint(SorptionConstraint(), 20, generator=torch.Generator().manual_seed(5))
    moe = HardConstraint(SorptionConstraint(), 20, partition=Partition((1, 1)),
                         generator=torch.Generator().manual_seed(5))
    u1, i1 = hc(basis, u0)
    u2, i2 = moe(basis, u0)
    assert torch.equal(u1, u2) and torch.equal(i1["points"], i2["points"])


def test_moe_experts_fit_their_own_blocks():
    basis, u0 = _basis(), _u0()
    layer = HardConstraint(SorptionConstraint(), 12, partition=Partition((1, 2)), tol=1e-10,
                           generator=torch.Generator().manual_seed(6))
    u, info = layer(basis, u0)
    assert info["converged"].all() and info["omega"].shape == (2, 2, 4)
    problem = SorptionConstraint()
    for k in range(2):
        pts = info["points"][:, k]
        assert ((pts % 16) // 8 == k).all()  # in expert k's half of x
        terms = problem.terms(basis, u0, pts[:, None])
        w, _ = levenberg_marquardt(problem.residual, torch.ones(2, 4, dtype=F64), terms,
                                   tol=1e-10)
        np.testing.assert_allclose(info["omega"][:, k], w, rtol=1e-7, atol=1e-9)
        half = slice(8 * k, 8 * k + 8)
        np.testing.assert_allclose(u[..., half],
                                   torch.einsum("bnij,bn->bij", basis, w)[..., half], atol=1e-8)


def test_layer_gradient_matches_finite_differences():
    """d loss / d theta through LM + IFT, the basis moving along three fixed directions."""
    basis, u0 = _basis(B=1, N=3, nt=5, nx=10), _u0(B=1, nx=10)
    directions = 0.1 * torch.randn(3, *basis.shape, generator=torch.Generator().manual_seed(8),
                                   dtype=F64)
    theta = torch.zeros(3, dtype=F64, requires_grad=True)

    def f(theta):
        layer = HardConstraint(SorptionConstraint(), 8, partition=Partition((1, 2)),
                               tol=1e-12, maxiter=200,
                               generator=torch.Generator().manual_seed(7))
        u, info = layer(basis + torch.einsum("k,k...->...", theta, directions), u0)
        assert info["converged"].all()
        return grid_residual(u, u0).norm()

    assert torch.autograd.gradcheck(f, (theta,), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_layer_trains_a_network():
    torch.manual_seed(0)
    net = FNO2d(1, 3, width=4, modes=(2, 3), layers=1, padding=2).double()
    u0 = _u0(B=1, nx=12)
    layer = HardConstraint(SorptionConstraint(), 10, generator=torch.Generator().manual_seed(0))
    u, _ = layer(net(u0[:, None, None, :].expand(1, 1, 5, 12)), u0)
    grid_residual(u, u0).norm().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().max()) > 0 for g in grads)


def test_layer_bad_input():
    for bad in (0, 2.5, True, "4"):
        with pytest.raises(ValueError, match="points must be a positive integer"):
            HardConstraint(SorptionConstraint(), bad)
    layer = HardConstraint(SorptionConstraint(), 4)
    with pytest.raises(ValueError, match="basis must be \\(batch, N, n0, n1\\)"):
        layer(torch.ones(2, 3, 4, dtype=F64), _u0())
    with pytest.raises(ValueError, match="cond \\(the initial condition\\) must be \\(2, 16\\)"):
        layer(_basis(), _u0(nx=15))
    with pytest.raises(ValueError, match="ridge must be >= 0"):
        SorptionConstraint(ridge=-1.0)
    with pytest.raises(ValueError, match="weight must be > 0"):
        SorptionConstraint(weight=0.0)


# ---------------------------------------------------------------- the diffusion-sorption rows


def test_sampled_rows_equal_grid_rows():
    """The LM's residual at sampled points is the loss's residual at those cells."""
    basis, u0 = _basis(), _u0()
    omega = torch.tensor([0.3, 0.5, -0.2, 0.1], dtype=F64)
    problem = SorptionConstraint(ridge=0.0)
    mask = problem.interior((6, 16))
    pts = torch.nonzero(mask.reshape(-1))[:, 0][None, None].expand(2, 1, -1)
    terms = problem.terms(basis, u0, pts)
    rows = torch.func.vmap(problem.residual)(omega.expand(2, 4), *terms)
    u = torch.einsum("bnij,n->bij", basis, omega)
    full = grid_residual(u, u0)
    np.testing.assert_allclose(rows[:, :-4], full, rtol=1e-12, atol=1e-12)
    # the weight scales the initial and boundary rows alike in both
    heavy = SorptionConstraint(ridge=0.0, weight=10.0)
    rows10 = torch.func.vmap(heavy.residual)(omega.expand(2, 4), *heavy.terms(basis, u0, pts))
    full10 = grid_residual(u, u0, 10.0)
    np.testing.assert_allclose(rows10[:, :-4], full10, rtol=1e-12, atol=1e-12)
    pde_rows = pts.shape[-1]
    np.testing.assert_allclose(full10[:, :pde_rows], full[:, :pde_rows], rtol=0, atol=0)
    np.testing.assert_allclose(full10[:, pde_rows:], 10 * full[:, pde_rows:], rtol=1e-14)


def test_piecewise_rows_come_from_each_cells_expert():
    basis, u0 = _basis(B=1), _u0(B=1)
    a = torch.einsum("bnij,n->bij", basis, torch.tensor([0.3, 0.5, -0.2, 0.1], dtype=F64))
    b = torch.einsum("bnij,n->bij", basis, torch.tensor([0.2, 0.1, 0.4, -0.3], dtype=F64))
    labels = Partition((1, 2)).labels((6, 16))
    one = grid_residual(a[:, None], u0, 3.0, torch.zeros(6, 16, dtype=torch.long))
    np.testing.assert_array_equal(one, grid_residual(a, u0, 3.0))
    mixed = grid_residual(torch.stack([a, b], dim=1), u0, 3.0, labels)
    ra, rb = grid_residual(a, u0, 3.0), grid_residual(b, u0, 3.0)
    pde = 5 * 14  # rows (t = 1..5) x (x = 1..14), t-major
    cells_x = torch.cat([torch.arange(1, 15).repeat(5), torch.arange(16),
                         torch.zeros(6, dtype=torch.long), torch.full((6,), 15)])
    expected = torch.where(cells_x >= 8, rb, ra)
    np.testing.assert_array_equal(mixed, expected)
    assert mixed.shape[1] == pde + 16 + 12


def test_reference_solution_nearly_zeroes_the_rows():
    x = (np.arange(64) + 0.5) / 64
    u0 = 0.05 + 0.1 * np.cos(np.pi * x) ** 2
    ref = torch.from_numpy(solve_fv(u0, nt=51))[None]
    u0t = torch.from_numpy(u0)[None]
    r = grid_residual(ref, u0t)
    pde = r[0, : 50 * 62].reshape(50, 62)
    # rows away from the incompatible initial corner (x = 0, t = 0) are small ...
    assert float(pde[10:].abs().max()) < 0.05
    assert float(r[0, 50 * 62:50 * 62 + 64].abs().max()) == 0.0  # the initial rows exactly
    # ... and far smaller than for a field that drifts by 5% over the run
    tau = torch.linspace(0, 1, 51, dtype=F64)[:, None]
    drift = ref + 0.05 * tau * torch.from_numpy(np.sin(np.pi * x))[None, :]
    off = grid_residual(drift, u0t)[0, : 50 * 62].reshape(50, 62)
    assert float(off[10:].norm()) > 10 * float(pde[10:].norm())


def test_retardation_matches_numpy_reference():
    from dcdm.training.constraints import diffusion_sorption as ds

    u = np.array([1e-4, 0.01, 0.3, 1.0])
    np.testing.assert_allclose(retardation(torch.from_numpy(u)), ds.retardation(u), rtol=1e-13)


# ---------------------------------------------------------------- FNO


def test_fno_shapes_and_resolution_independence():
    net = FNO2d(3, 5, width=6, modes=(3, 4), layers=2, padding=3)
    assert net(torch.randn(2, 3, 9, 20)).shape == (2, 5, 9, 20)
    assert net(torch.randn(1, 3, 17, 40)).shape == (1, 5, 17, 40)  # same weights, finer grid


@pytest.mark.parametrize("kwargs, match", [
    (dict(width=0), "width must be a positive integer"),
    (dict(modes=(0, 2)), "modes must be two positive integers"),
    (dict(padding=-1), "padding must be >= 0"),
])
def test_fno_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FNO2d(3, 2, **kwargs)


def test_fno_bad_input():
    with pytest.raises(ValueError, match="x must be \\(batch, 3, n0, n1\\)"):
        FNO2d(3, 2, width=4, modes=(2, 2), layers=1)(torch.zeros(1, 2, 8, 8))
