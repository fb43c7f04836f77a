"""Hessian, Gauss-Newton and empirical-Fisher operators of torch models, and their spectra.

Every product is checked against a dense matrix built by an independent route
(``torch.autograd.functional.hessian`` / ``jacobian`` over the flattened parameters, or
per-sample gradients in a plain Python loop), on small float64 MLPs (a few hundred
parameters) so that the whole file stays fast.
"""

import itertools

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from dcdm.solvers import as_operator
from dcdm.solvers.spectrum.hessian import (
    KINDS,
    HessianEigen,
    HessianOperator,
    hessian_density,
    hessian_eigenvalues,
    hessian_operator,
    hessian_trace,
)
from dcdm.solvers.spectrum.lanczos import lanczos

torch = pytest.importorskip("torch")
F = torch.nn.functional
f64 = torch.float64


def mlp(seed=0, widths=(3, 10, 10, 2), dtype=f64, norm=False):
    torch.manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(itertools.pairwise(widths)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers += [torch.nn.BatchNorm1d(b)] if norm else []
            layers.append(torch.nn.Tanh())
    return torch.nn.Sequential(*layers).to(dtype)


def data(rng, n=40, d=3, out=2, classes=False):
    x = torch.tensor(rng.standard_normal((n, d)))
    if classes:
        return x, torch.tensor(rng.integers(0, out, n))
    return x, torch.tensor(rng.standard_normal((n, out)))


def unflatten(model, names, flat):
    found = dict(model.named_parameters())
    out, i = {}, 0
    for n in names:
        k = found[n].numel()
        out[n] = flat[i:i + k].reshape(found[n].shape)
        i += k
    return out


def flat_params(model, names):
    found = dict(model.named_parameters())
    return torch.cat([found[n].detach().reshape(-1) for n in names]).clone()


def outputs_of(model, names, x):
    return lambda flat: torch.func.functional_call(model, unflatten(model, names, flat), (x,))


def dense_hessian(model, loss_fn, x, y, names=None):
    names = names or [n for n, _ in model.named_parameters()]
    f = outputs_of(model, names, x)
    H = torch.autograd.functional.hessian(lambda t: loss_fn(f(t), y), flat_params(model, names),
                                          vectorize=True)
    return H.numpy()


def dense_gauss_newton(model, loss_fn, x, y):
    names = [n for n, _ in model.named_parameters()]
    f = outputs_of(model, names, x)
    theta = flat_params(model, names)
    out = f(theta).detach()
    J = torch.autograd.functional.jacobian(lambda t: f(t).reshape(-1), theta, vectorize=True)
    H_out = torch.autograd.functional.hessian(
        lambda o: loss_fn(o.reshape(out.shape), y), out.reshape(-1), vectorize=True)
    return (J.T @ H_out @ J).numpy()


def per_sample_gradients(model, loss_fn, x, y):
    rows = []
    for i in range(x.shape[0]):
        model.zero_grad()
        loss_fn(model(x[i:i + 1]), y[i:i + 1]).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone())
    model.zero_grad(set_to_none=True)
    return torch.stack(rows).numpy()


def dense(op):
    return np.column_stack([op.matvec(e) for e in np.eye(op.shape[0])])


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_unchanged(model, before):
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert all(p.grad is None for p in model.parameters())


@pytest.fixture(scope="module")
def net():
    """A float64 MLP (172 parameters), 40 samples and its dense Hessian, built once."""
    model = mlp()
    x, y = data(np.random.default_rng(20261127))
    return model, x, y, dense_hessian(model, F.mse_loss, x, y)


# ---------------------------------------------------------------- the products


def test_hvp_matches_dense_hessian_and_finite_differences(rng, net):
    model, x, y, exact = net
    H = hessian_operator(model, F.mse_loss, x, y)
    P = H.num_parameters
    assert H.shape == (P, P) == (sum(p.numel() for p in model.parameters()),) * 2
    v = rng.standard_normal(P)
    Hv = H.matvec(v)
    assert Hv.dtype == np.float64 and Hv.shape == (P,)
    np.testing.assert_allclose(Hv, exact @ v, rtol=1e-10, atol=1e-12 * np.abs(exact).max())

    # central difference of gradients: error O(eps^2) ~ 1e-10 of the scale
    names = H.names
    f = outputs_of(model, names, x)
    theta = flat_params(model, names)

    def grad(t):
        t = t.clone().requires_grad_()
        return torch.autograd.grad(F.mse_loss(f(t), y), t)[0].numpy()

    eps = 1e-5
    step = torch.tensor(v)
    fd = (grad(theta + eps * step) - grad(theta - eps * step)) / (2 * eps)
    np.testing.assert_allclose(Hv, fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())
    u = rng.standard_normal(P)
    assert u @ Hv == pytest.approx(v @ H.matvec(u), rel=1e-12)
    assert H.n_products == 2


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_gauss_newton_equals_dense_JtHJ(rng, loss):
    model = mlp(seed=1, widths=(3, 8, 3))
    x, y = data(rng, n=16, out=3, classes=loss == "cross_entropy")
    loss_fn = F.mse_loss if loss == "mse" else F.cross_entropy
    G = hessian_operator(model, loss_fn, x, y, kind="gauss_newton")
    exact = dense_gauss_newton(model, loss_fn, x, y)
    np.testing.assert_allclose(dense(G), exact, rtol=1e-10, atol=1e-12 * np.abs(exact).max())
    # PSD (H_out is: MSE, softmax cross-entropy), unlike the exact Hessian in general
    assert np.linalg.eigvalsh(exact).min() > -1e-10 * np.abs(exact).max()


def test_gauss_newton_is_the_hessian_for_a_linear_model_with_mse(rng):
    model = mlp(seed=2, widths=(5, 3))
    x, y = data(rng, n=30, d=5, out=3)
    H = dense(hessian_operator(model, F.mse_loss, x, y))
    G = dense(hessian_operator(model, F.mse_loss, x, y, kind="gauss_newton"))
    np.testing.assert_allclose(G, H, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(H, dense_hessian(model, F.mse_loss, x, y), atol=1e-13)


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_empirical_fisher_equals_per_sample_outer_products(rng, loss):
    model = mlp(seed=3, widths=(3, 6, 3))
    x, y = data(rng, n=12, out=3, classes=loss == "cross_entropy")
    loss_fn = F.mse_loss if loss == "mse" else F.cross_entropy
    Fop = hessian_operator(model, loss_fn, x, y, kind="fisher")
    G = per_sample_gradients(model, loss_fn, x, y)
    exact = G.T @ G / x.shape[0]
    V = rng.standard_normal((Fop.shape[0], 3))
    for v in V.T:
        np.testing.assert_allclose(Fop.matvec(v), exact @ v, rtol=1e-10,
                                   atol=1e-12 * np.abs(exact).max())


@pytest.mark.parametrize("kind", KINDS)
def test_a_dataloader_of_batches_equals_one_batch(rng, kind):
    model = mlp(seed=4)
    x, y = data(rng, n=40)
    one = hessian_operator(model, F.mse_loss, x, y, kind=kind)
    # uneven batches (16, 16, 8): each weighted by its size, as the mean loss over all
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    many = hessian_operator(model, F.mse_loss, data=loader, kind=kind)
    v = rng.standard_normal(one.shape[0])
    expected = one.matvec(v)
    np.testing.assert_allclose(many.matvec(v), expected, rtol=1e-10,
                               atol=1e-13 * np.abs(expected).max())
    # a one-shot generator is kept: the second product sees the same data
    gen = hessian_operator(model, F.mse_loss, data=((x[i:i + 10], y[i:i + 10])
                                                    for i in range(0, 40, 10)), kind=kind)
    for _ in range(2):
        np.testing.assert_allclose(gen.matvec(v), expected, rtol=1e-10,
                                   atol=1e-13 * np.abs(expected).max())


def test_a_parameter_subset_is_the_block_of_the_full_hessian(net):
    model, x, y, full = net
    names = [n for n, _ in model.named_parameters()]
    sub = hessian_operator(model, F.mse_loss, x, y, params=[model[4].weight, "0.bias"])
    assert sub.names == ["0.bias", "4.weight"]  # named_parameters() order, not the given one
    assert sub.shapes == [(10,), (2, 10)] and sub.num_parameters == 30
    sizes = [p.numel() for p in model.parameters()]
    starts = np.cumsum([0, *sizes])
    index = np.concatenate([np.arange(starts[names.index(n)], starts[names.index(n) + 1])
                            for n in sub.names])
    np.testing.assert_allclose(dense(sub), full[np.ix_(index, index)], rtol=1e-10,
                               atol=1e-12 * np.abs(full).max())
    # parameters that do not require grad are left out by default
    model[0].weight.requires_grad_(False)
    try:
        assert hessian_operator(model, F.mse_loss, x, y).names == names[1:]
    finally:
        model[0].weight.requires_grad_(True)


def test_float32_model_keeps_its_dtype(rng):
    model = mlp(seed=6, dtype=torch.float32)
    x, y = data(rng)
    H = hessian_operator(model, F.mse_loss, x.float(), y.float())
    v = rng.standard_normal(H.shape[0])
    Hv = H.matvec(v)
    assert Hv.dtype == np.float64
    assert all(p.dtype == torch.float32 for p in model.parameters())
    exact = dense_hessian(mlp(seed=6), F.mse_loss, x, y)
    np.testing.assert_allclose(Hv, exact @ v, rtol=1e-4, atol=1e-4 * np.abs(exact @ v).max())


# ------------------------------------------------------------- the spectrum


def test_top_eigenvalues_match_the_dense_hessian(net):
    model, x, y, full = net
    exact = np.linalg.eigvalsh(full)[::-1][:5]
    top = hessian_eigenvalues(model, F.mse_loss, x, y, k=5, return_vectors=True)
    assert isinstance(top, HessianEigen) and top.converged
    np.testing.assert_allclose(top.values, exact, rtol=1e-6)
    assert np.all(np.diff(top.values) <= 0)
    P = sum(p.numel() for p in model.parameters())
    assert 0 < top.n_products < P  # Lanczos stopped early, not a dense build
    # the eigenvectors: unit, orthonormal, H w = lambda w
    W = top.vectors
    assert W.shape == (P, 5)
    np.testing.assert_allclose(W.T @ W, np.eye(5), atol=1e-8)
    H = hessian_operator(model, F.mse_loss, x, y)
    for lam, w in zip(top.values, W.T, strict=True):
        np.testing.assert_allclose(H.matvec(w), lam * w, atol=1e-6 * abs(top.values[0]))


def test_same_seed_same_eigenvalues_and_nothing_changes(rng):
    model = mlp(seed=8, widths=(3, 8, 2), norm=True)  # batch norm: running statistics
    x, y = data(rng)
    for train in (True, False):
        model.train(train)
        before = snapshot(model)
        a = hessian_eigenvalues(model, F.mse_loss, x, y, k=3, seed=11)
        b = hessian_eigenvalues(model, F.mse_loss, x, y, k=3, seed=11)
        np.testing.assert_array_equal(a.values, b.values)
        assert a.n_products == b.n_products
        if not train:
            c = hessian_eigenvalues(model, F.mse_loss, x, y, k=3, seed=12)
            np.testing.assert_allclose(c.values, a.values, rtol=1e-6)
        # the Fisher calls the model on one sample: not with batch norm in training mode
        for kind in ("gauss_newton",) if train else ("gauss_newton", "fisher"):
            op = hessian_operator(model, F.mse_loss, x, y, kind=kind)
            assert np.all(np.isfinite(op.matvec(np.ones(op.shape[0]))))
        assert model.training is train
        assert_unchanged(model, before)


def test_repeated_eigenvalues_are_found_by_deflation(rng):
    # H = (2/N) X^T X with X = I: one eigenvalue, 2/N, of multiplicity N
    model = torch.nn.Linear(6, 1, bias=False).to(f64)
    x, y = torch.eye(6, dtype=f64), torch.zeros(6, 1, dtype=f64)
    top = hessian_eigenvalues(model, F.mse_loss, x, y, k=4, return_vectors=True)
    np.testing.assert_allclose(top.values, np.full(4, 2 / 6), rtol=1e-12)
    np.testing.assert_allclose(top.vectors.T @ top.vectors, np.eye(4), atol=1e-12)
    # a rank-2 empirical Fisher (two samples): two eigenvalues, then zeros
    model = mlp(seed=9, widths=(3, 4, 2))
    x, y = data(rng, n=2)
    exact = per_sample_gradients(model, F.mse_loss, x, y)
    exact = np.linalg.eigvalsh(exact.T @ exact / 2)[::-1][:5]
    top = hessian_eigenvalues(model, F.mse_loss, x, y, k=5, kind="fisher")
    np.testing.assert_allclose(top.values, exact, rtol=1e-8, atol=1e-10 * exact[0])
    assert top.converged


@pytest.mark.parametrize("kind", KINDS)
def test_a_loss_linear_in_the_parameters_has_a_zero_operator(rng, kind):
    model = mlp(seed=14, widths=(3, 2))
    x, _ = data(rng, n=6)
    H = hessian_operator(model, lambda out, t: (out * t).mean(), x, torch.ones(6, 2, dtype=f64),
                         kind=kind)
    if kind != "fisher":  # the per-sample gradients do not vanish: a rank-one Fisher
        assert not np.any(H.matvec(rng.standard_normal(8)))
        top = hessian_eigenvalues(H, k=3)  # three deflations of the zero operator
        np.testing.assert_allclose(top.values, np.zeros(3), atol=1e-15)  # shifts round
        assert top.converged


def test_the_operator_follows_the_contract(rng, net):
    model, x, y, _ = net
    H = hessian_operator(model, F.mse_loss, x, y)
    assert isinstance(H, HessianOperator) and as_operator(H) is H
    v = rng.standard_normal(H.shape[0])
    out = np.empty(H.shape[0])
    assert H.matvec(v, out=out) is out
    np.testing.assert_array_equal(out, H.matvec(v))
    np.testing.assert_array_equal(H.matvec(v[:, None])[:, 0], out)
    with torch.no_grad():  # the products make their own graphs
        np.testing.assert_array_equal(H.matvec(v), out)
    # scipy's eigsh on it agrees with hessian_eigenvalues; given the operator, the
    # products this call spends are counted on it
    L = sla.aslinearoperator(H)
    top_scipy = np.sort(sla.eigsh(L, k=3, which="LA", tol=1e-12)[0])[::-1]
    before = H.n_products
    top = hessian_eigenvalues(H, k=3)
    assert top.n_products == H.n_products - before > 0
    np.testing.assert_allclose(top.values, top_scipy, rtol=1e-8)
    basis = lanczos(H, 10, seed=0)
    assert basis.m == 10


# ------------------------------------------------------ trace and density


def test_traces_agree_with_the_dense_hessian(net):
    model, x, y, full = net
    exact = np.trace(full)
    est = hessian_trace(model, F.mse_loss, x, y, method="hutchinson", probes=60)
    assert abs(est.value - exact) <= 3 * est.std
    # Hutch++ on the Gauss-Newton matrix of 8 samples x 2 outputs (rank <= 16): its 20
    # sketch vectors capture the whole range, so the trace is exact to rounding
    x, y = x[:8], y[:8]
    exact = np.trace(dense_gauss_newton(model, F.mse_loss, x, y))
    est = hessian_trace(model, F.mse_loss, x, y, kind="gauss_newton", probes=60)
    assert est.value == pytest.approx(exact, rel=1e-8)


def test_the_density_lies_in_the_spectrum(net):
    model, x, y, full = net
    eig = np.linalg.eigvalsh(full)
    d = hessian_density(model, F.mse_loss, x, y, steps=20, probes=4)
    spread = eig[-1] - eig[0]
    assert d.nodes.min() >= eig[0] - 1e-8 * spread and d.nodes.max() <= eig[-1] + 1e-8 * spread
    assert abs(d.trace() - eig.sum()) <= 4 * d.trace_std()
    # the top Ritz value over 20 steps has converged to the largest eigenvalue
    assert d.nodes.max() == pytest.approx(eig[-1], rel=1e-6)


# ------------------------------------------------------------------ errors


def test_every_bad_input_is_named(rng):
    model = mlp(seed=13, widths=(3, 2))
    x, y = data(rng, n=8)
    mse = F.mse_loss
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        hessian_operator(lambda t: t, mse, x, y)
    with pytest.raises(ValueError, match="model has no parameters"):
        hessian_operator(torch.nn.Tanh(), mse, x, y)
    with pytest.raises(TypeError, match="loss_fn must be callable"):
        hessian_operator(model, "mse", x, y)
    with pytest.raises(ValueError, match="kind must be one of"):
        hessian_operator(model, mse, x, y, kind="newton")
    with pytest.raises(ValueError, match="params: 'nope' is not a parameter of the model"):
        hessian_operator(model, mse, x, y, params=["0.weight", "nope"])
    with pytest.raises(ValueError, match="params: a Tensor is not a parameter of the model"):
        hessian_operator(model, mse, x, y, params=[torch.zeros(2)])
    with pytest.raises(ValueError, match="params selects no parameters"):
        hessian_operator(model, mse, x, y, params=[])
    with pytest.raises(ValueError, match="no data: pass inputs and targets"):
        hessian_operator(model, mse)
    with pytest.raises(ValueError, match="not both"):
        hessian_operator(model, mse, x, y, data=[(x, y)])
    with pytest.raises(ValueError, match="targets is missing"):
        hessian_operator(model, mse, x)
    with pytest.raises(TypeError, match="data must be an iterable of"):
        hessian_operator(model, mse, data=x)
    with pytest.raises(ValueError, match="loss_fn must return a scalar tensor"):
        hessian_operator(model, lambda o, t: F.mse_loss(o, t, reduction="none"), x, y).matvec(
            np.ones(8))
    H = hessian_operator(model, mse, x, y)
    with pytest.raises(ValueError, match="v must be a vector of length 8"):
        H.matvec(np.ones(7))
    with pytest.raises(ValueError, match="data yielded no samples"):
        hessian_operator(model, mse, data=[]).matvec(np.ones(8))
    with pytest.raises(ValueError, match="each batch of data must be a pair"):
        hessian_operator(model, mse, data=[x]).matvec(np.ones(8))
    with pytest.raises(TypeError, match="inputs must be a batched torch tensor"):
        hessian_operator(model, mse, x.numpy(), y).matvec(np.ones(8))
    with pytest.raises(TypeError, match="needs the model to return one tensor"):
        hessian_operator(torch.nn.LSTM(3, 2).to(f64), mse, x[None], y,
                         kind="gauss_newton").matvec(np.ones(56))
    for k in (0, 9, 2.5, True):
        with pytest.raises(ValueError, match=r"k must be an integer in 1\.\.8"):
            hessian_eigenvalues(H, k=k)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        hessian_eigenvalues(H, k=2, steps=0)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        hessian_eigenvalues(H, k=2, tol=-1.0)
    with pytest.raises(ValueError, match=r"already a HessianOperator: drop \['loss_fn'\]"):
        hessian_eigenvalues(H, mse)
    with pytest.raises(ValueError, match=r"already a HessianOperator: drop \['kind'\]"):
        hessian_trace(H, kind="fisher")
    with pytest.raises(ValueError, match="method must be 'hutch\\+\\+' or 'hutchinson'"):
        hessian_trace(H, method="exact")
