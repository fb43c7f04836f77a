"""dcdm.training.sparse_solve (training/differentiable.py): the differentiable SPD solve.

Oracles: ``torch.linalg.solve`` (values and, through ``to_dense()``, its autograd gradient
at every stored entry), ``torch.autograd.gradcheck`` (finite differences) and SciPy's direct
solve for the adjoint of a grid operator.
"""

import importlib
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

torch = pytest.importorskip("torch")

import dcdm.training  # noqa: E402
from dcdm.problems import CellType, Grid  # noqa: E402
from dcdm.solvers import ConvergenceError  # noqa: E402
from dcdm.solvers.precond.base import Preconditioner  # noqa: E402

# the module object (the package attribute may hold the function before the first import)
ss = importlib.import_module("dcdm.training.differentiable")
sparse_solve, SparseSolveError = ss.sparse_solve, ss.SparseSolveError

F64 = torch.float64


@pytest.fixture(autouse=True)
def quiet_sparse_warnings():
    """torch warns that CSR support is beta and that invariant checks are off."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*", category=UserWarning)
        yield


def random_spd(rng, n, density=0.3):
    """A sparse, strictly diagonally dominant (so SPD) symmetric matrix, as dense NumPy."""
    S = sp.random_array((n, n), density=density, rng=rng).toarray() - 0.25 * (
        sp.random_array((n, n), density=density, rng=rng).toarray() != 0)
    S = np.triu(S, 1)
    S = S + S.T
    return S + np.diag(np.abs(S).sum(axis=1) + 0.5 + rng.random(n))


def torch_sparse(D, layout, values=None):
    """``D`` (dense NumPy) as a COO or CSR tensor; ``values`` replace the stored values."""
    coo = torch.tensor(D, dtype=F64).to_sparse()
    if values is not None:
        coo = torch.sparse_coo_tensor(coo.indices(), values, coo.shape)
    return coo.to_sparse_csr() if layout == "csr" else coo


@pytest.fixture
def system(rng):
    D = random_spd(rng, 8)
    return D, torch.tensor(D, dtype=F64).to_sparse().values()


# -- correctness --------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("M", [None, "jacobi", "ic0", "mic0", "amg"])
@pytest.mark.parametrize("shape", [(12,), (12, 3)])
def test_matches_torch_linalg_solve(rng, layout, M, shape):
    D = random_spd(rng, 12)
    b = torch.tensor(rng.standard_normal(shape), dtype=F64)
    x = sparse_solve(torch_sparse(D, layout), b, M=M)
    assert x.shape == b.shape and x.dtype == F64
    torch.testing.assert_close(x, torch.linalg.solve(torch.tensor(D), b), rtol=1e-9, atol=1e-12)


def test_float32_in_float32_out(rng):
    D = random_spd(rng, 10)
    A = torch.tensor(D, dtype=torch.float32).to_sparse()
    b = torch.tensor(rng.standard_normal(10), dtype=torch.float32, requires_grad=True)
    x = sparse_solve(A, b, M="ic0")
    x.sum().backward()
    assert x.dtype == b.grad.dtype == torch.float32
    expect = np.linalg.solve(D.astype(np.float32).astype(np.float64), b.detach().double())
    np.testing.assert_allclose(x.detach().numpy(), expect, rtol=1e-5)


@pytest.mark.parametrize("layout", ["coo", "csr"])
@pytest.mark.parametrize("k", [None, 3])
def test_gradcheck_values_and_b(system, rng, layout, k):
    D, values = system
    shape = (8,) if k is None else (8, k)
    b = torch.tensor(rng.standard_normal(shape), dtype=F64, requires_grad=True)
    v = values.clone().requires_grad_()

    def f(v, b):
        return sparse_solve(torch_sparse(D, layout, v), b, M="ic0", rtol=1e-14)

    # atol covers the central differences' own error (measured 5e-9 at eps=1e-6, entries of
    # the Jacobian up to 2); the exact check is the entry-by-entry test below (~1e-15)
    assert torch.autograd.gradcheck(f, (v, b), rtol=1e-12, atol=1e-7)


@pytest.mark.parametrize("k", [None, 2])
def test_gradcheck_b_only(system, rng, k):
    D, _ = system
    A = torch_sparse(D, "csr")
    shape = (8,) if k is None else (8, k)
    b = torch.tensor(rng.standard_normal(shape), dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda b: sparse_solve(A, b, rtol=1e-14), (b,),
                                    rtol=1e-12, atol=1e-7)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_value_gradient_is_minus_lambda_x_at_each_stored_entry(system, rng, layout):
    """Against torch's dense solve differentiated through ``to_dense()``, entry by entry;
    only ``A`` requires grad here."""
    D, values = system
    b = torch.tensor(rng.standard_normal((8, 2)), dtype=F64)
    c = torch.tensor(rng.standard_normal((8, 2)), dtype=F64)
    v1, v2 = values.clone().requires_grad_(), values.clone().requires_grad_()
    (sparse_solve(torch_sparse(D, layout, v1), b, M="jacobi") * c).sum().backward()
    dense = torch_sparse(D, layout, v2).to_dense()
    (torch.linalg.solve(dense, b) * c).sum().backward()
    torch.testing.assert_close(v1.grad, v2.grad, rtol=1e-10, atol=1e-14)


def test_nearly_symmetric_matrix_gets_the_gradient_of_the_matrix_as_given(system, rng):
    """A 1e-8 relative asymmetry passes the check; the adjoint then runs on the exact A^T,
    so each entry's gradient is torch's (using A instead would be off by ~1e-8)."""
    D, values = system
    D = D.copy()
    D[0, 3] *= 1 + 1e-8
    values = torch.tensor(D).to_sparse().values()
    b = torch.tensor(rng.standard_normal(8), dtype=F64)
    v1, v2 = values.clone().requires_grad_(), values.clone().requires_grad_()
    sparse_solve(torch_sparse(D, "coo", v1), b, rtol=1e-14).square().sum().backward()
    dense = torch_sparse(D, "coo", v2).to_dense()
    torch.linalg.solve(dense, b).square().sum().backward()
    torch.testing.assert_close(v1.grad, v2.grad, rtol=1e-12, atol=1e-15)


def test_uncoalesced_coo_duplicates_share_the_gradient(system, rng):
    D, values = system
    dense = torch.tensor(D, dtype=F64).to_sparse()
    idx = dense.indices()
    # split each stored value into two duplicates (a + b = value)
    half = values.clone().requires_grad_()
    twin = torch.cat([idx, idx], dim=1)
    A = torch.sparse_coo_tensor(twin, torch.cat([half * 0.25, half * 0.75]), dense.shape)
    assert not A.is_coalesced()
    b = torch.tensor(rng.standard_normal(8), dtype=F64)
    sparse_solve(A, b).square().sum().backward()
    ref = values.clone().requires_grad_()
    torch.linalg.solve(torch_sparse(D, "coo", ref).to_dense(), b).square().sum().backward()
    torch.testing.assert_close(half.grad, ref.grad, rtol=1e-9, atol=1e-13)


def test_leaf_sparse_tensor_gets_a_sparse_gradient_with_its_pattern(system, rng):
    D, _ = system
    A = torch_sparse(D, "csr").requires_grad_()
    b = torch.tensor(rng.standard_normal(8), dtype=F64)
    sparse_solve(A, b).sum().backward()
    assert A.grad.layout == torch.sparse_csr
    assert torch.equal(A.grad.col_indices(), A.col_indices())
    x = np.linalg.solve(D, b.numpy())
    lam = np.linalg.solve(D, np.ones(8))
    rows = np.repeat(np.arange(8), np.diff(A.crow_indices().numpy()))
    expect = -lam[rows] * x[A.col_indices().numpy()]
    np.testing.assert_allclose(A.grad.values().numpy(), expect, rtol=1e-9, atol=1e-14)


def grid_operator(rng, boundary):
    flags = np.zeros((9, 7), dtype=np.int8)
    flags[rng.random(flags.shape) < 0.15] = CellType.SOLID
    return Grid(flags, boundary=boundary).laplacian()


def test_grid_operator_with_mg_gradient_is_the_numpy_adjoint(rng):
    op = grid_operator(rng, CellType.AIR)
    n = op.shape[0]
    b = torch.tensor(rng.standard_normal(n), dtype=F64, requires_grad=True)
    c = rng.standard_normal(n)
    x = sparse_solve(op, b, M="mg")
    (x * torch.tensor(c)).sum().backward()
    csr = sp.csc_array(op.to_csr())
    np.testing.assert_allclose(x.detach().numpy(), spla.spsolve(csr, b.detach().numpy()),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.grad.numpy(), spla.spsolve(csr, c), rtol=1e-8, atol=1e-10)


def test_singular_grid_gradient_is_the_pseudo_inverse(rng):
    """All-Neumann (SOLID walls): x = A^+ b for a consistent b and dL/db = A^+ g."""
    op = Grid(np.zeros((5, 4), dtype=np.int8)).laplacian()
    pinv = np.linalg.pinv(op.to_csr().toarray())
    b0 = rng.standard_normal(20)
    b = torch.tensor(b0 - b0.mean(), requires_grad=True)
    c = rng.standard_normal(20)
    x = sparse_solve(op, b, M="mg")
    (x * torch.tensor(c)).sum().backward()
    np.testing.assert_allclose(x.detach().numpy(), pinv @ b.detach().numpy(), atol=1e-9)
    np.testing.assert_allclose(b.grad.numpy(), pinv @ c, atol=1e-9)


@pytest.mark.parametrize("offset", [1e-17, 1.0])
def test_singular_grid_ignores_the_null_space_part_of_b(rng, offset):
    """x = A^+ b whatever b's constant part: rounding (a divergence-free field's tiny b) or a
    real one; both the solution and the gradient are those of the pseudo-inverse."""
    op = Grid(np.zeros((5, 4), dtype=np.int8)).laplacian()
    pinv = np.linalg.pinv(op.to_csr().toarray())
    b0 = rng.standard_normal(20) * (1e-15 if offset < 1 else 1.0)
    b = torch.tensor(b0 - b0.mean() + offset, requires_grad=True)
    c = rng.standard_normal(20)
    x = sparse_solve(op, b, M="mg", rtol=1e-8, atol=1e-30)
    (x * torch.tensor(c)).sum().backward()
    np.testing.assert_allclose(x.detach().numpy(), pinv @ b.detach().numpy(),
                               atol=1e-9 * max(np.abs(b0).max(), 1e-30))
    np.testing.assert_allclose(b.grad.numpy(), pinv @ c, atol=1e-9)


def test_scipy_matrix_is_an_operator_without_gradient(system, rng):
    D, _ = system
    b = torch.tensor(rng.standard_normal(8), dtype=F64, requires_grad=True)
    x = sparse_solve(sp.csr_array(D), b, M="ic0")
    x.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), np.linalg.solve(D, np.ones(8)), rtol=1e-9)


# -- preconditioner reuse and the adjoint's warm start -------------------------------------
class Spy:
    """Wraps the module's ``cg``: records each call's ``M``, ``x0`` and result."""

    def __init__(self):
        self.calls = []

    def __call__(self, A, b, x0=None, **kw):
        res = ss_cg(A, b, x0, **kw)
        self.calls.append((kw["M"], x0, res))
        return res


ss_cg = ss.cg


@pytest.mark.parametrize("M", ["ic0", "amg", "jacobi"])
def test_preconditioner_built_once_and_reused_by_backward(system, rng, monkeypatch, M):
    D, values = system
    builds = []
    original = Preconditioner.build

    def counting_build(self, A):
        builds.append(self)
        return original(self, A)

    spy = Spy()
    monkeypatch.setattr(Preconditioner, "build", counting_build)
    monkeypatch.setattr(ss, "cg", spy)
    v = values.clone().requires_grad_()
    b = torch.tensor(rng.standard_normal((8, 3)), dtype=F64, requires_grad=True)
    x = sparse_solve(torch_sparse(D, "coo", v), b, M=M)
    assert len(builds) == 1 and len(spy.calls) == 3
    (x * torch.tensor(rng.standard_normal((8, 3)))).sum().backward()
    assert len(builds) == 1 and len(spy.calls) == 6  # 3 forward + 3 adjoint columns
    assert all(P is builds[0] for P, _, _ in spy.calls)


def test_grid_mg_built_once(rng, monkeypatch):
    builds = []
    original = Preconditioner.build
    monkeypatch.setattr(Preconditioner, "build",
                        lambda self, A: builds.append(self) or original(self, A))
    op = grid_operator(rng, CellType.AIR)
    b = torch.tensor(rng.standard_normal((op.shape[0], 2)), dtype=F64, requires_grad=True)
    sparse_solve(op, b, M="mg").square().sum().backward()
    assert len(builds) == 1 and builds[0].name == "mg"


def test_adjoint_is_warm_started_from_the_forward_solutions(system, rng, monkeypatch):
    """For L = x . b the adjoint solution is x itself: the Galerkin guess from span{x} is
    exact and the adjoint solve takes no iteration."""
    D, _ = system
    spy = Spy()
    monkeypatch.setattr(ss, "cg", spy)
    b = torch.tensor(rng.standard_normal(8), dtype=F64, requires_grad=True)
    x = sparse_solve(torch_sparse(D, "coo"), b, rtol=1e-8)
    (x * b.detach()).sum().backward()
    _, x0, res = spy.calls[-1]
    assert x0 is not None and res.iterations == 0
    np.testing.assert_allclose(b.grad.numpy(), x.detach().numpy(), rtol=1e-7)


def test_backward_is_deterministic(system, rng):
    D, values = system
    v = values.clone().requires_grad_()
    b = torch.tensor(rng.standard_normal((8, 2)), dtype=F64, requires_grad=True)
    x = sparse_solve(torch_sparse(D, "csr", v), b, M="ic0")
    g = torch.tensor(rng.standard_normal((8, 2)))
    first = torch.autograd.grad(x, (v, b), g, retain_graph=True)
    second = torch.autograd.grad(x, (v, b), g)
    assert all(torch.equal(p, q) for p, q in zip(first, second, strict=True))


def test_inputs_are_not_modified(system, rng):
    D, values = system
    v = values.clone().requires_grad_()
    b = torch.tensor(rng.standard_normal(8), dtype=F64, requires_grad=True)
    x0 = torch.tensor(rng.standard_normal(8), dtype=F64)
    saved = (v.detach().clone(), b.detach().clone(), x0.clone())
    x = sparse_solve(torch_sparse(D, "coo", v), b, x0=x0, M="ic0")
    x.sum().backward()
    x.detach().zero_()  # the output owns its memory: changing it touches nothing else
    for now, before in zip((v, b, x0), saved, strict=True):
        assert torch.equal(now.detach(), before)


def test_the_package_exports_the_function(system, rng):
    D, _ = system
    b = torch.tensor(rng.standard_normal(8), dtype=F64)
    A = torch_sparse(D, "coo")
    assert dcdm.training.sparse_solve is sparse_solve
    torch.testing.assert_close(dcdm.training.sparse_solve(A, b), sparse_solve(A, b))


# -- failures -----------------------------------------------------------------------------
def test_forward_non_convergence_raises(rng):
    D = random_spd(rng, 40)
    b = torch.tensor(rng.standard_normal(40), dtype=F64, requires_grad=True)
    with pytest.raises(SparseSolveError, match=r"forward solve .*MAX_ITERATIONS") as info:
        sparse_solve(torch_sparse(D, "coo"), b, maxiter=1, rtol=1e-12)
    assert isinstance(info.value, ConvergenceError) and isinstance(info.value, RuntimeError)
    assert info.value.phase == "forward" and "||residual||" in str(info.value)


def test_batched_forward_failure_names_the_column(rng):
    D = random_spd(rng, 40)
    b = torch.zeros((40, 2), dtype=F64)
    b[:, 1] = torch.tensor(rng.standard_normal(40))  # column 0 (zero) converges at once
    with pytest.raises(SparseSolveError, match="column 1 of 2"):
        sparse_solve(torch_sparse(D, "csr"), b, maxiter=1)


def test_backward_non_convergence_raises(rng):
    """An honest way to make only the adjoint fail: ``maxiter`` limits both solves, and the
    forward one starts at the exact solution (x0 from a dense solve, 0 iterations), while
    the adjoint of a random incoming gradient starts from a one-vector Galerkin guess."""
    D = random_spd(rng, 40)
    b = torch.tensor(rng.standard_normal(40), dtype=F64, requires_grad=True)
    x0 = torch.linalg.solve(torch.tensor(D), b.detach())
    x = sparse_solve(torch_sparse(D, "coo"), b, maxiter=1, rtol=1e-10, x0=x0)
    g = torch.tensor(rng.standard_normal(40), dtype=F64)
    with pytest.raises(SparseSolveError, match=r"backward \(adjoint\) solve .*MAX_ITERATIONS"):
        x.backward(g)


def test_indefinite_matrix_is_reported_as_such(rng):
    A = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64).to_sparse()
    with pytest.raises(ValueError, match="A is not positive definite: CG found"):
        sparse_solve(A, torch.tensor([1.0, -1.0], dtype=F64))


def test_nan_incoming_gradient_raises(system, rng):
    D, _ = system
    b = torch.tensor(rng.standard_normal(8), dtype=F64, requires_grad=True)
    x = sparse_solve(torch_sparse(D, "coo"), b)
    with pytest.raises(ValueError, match="incoming gradient"):
        x.backward(torch.full((8,), float("nan"), dtype=F64))


def test_no_double_backward(system, rng):
    D, _ = system
    b = torch.tensor(rng.standard_normal(8), dtype=F64, requires_grad=True)
    x = sparse_solve(torch_sparse(D, "coo"), b)
    (g,) = torch.autograd.grad(x.square().sum(), b, create_graph=True)
    with pytest.raises(RuntimeError, match=r"differentiate twice .*once_differentiable"):
        g.sum().backward()


def _bad_cases():
    D = random_spd(np.random.default_rng(0), 4)
    A = torch.tensor(D).to_sparse()
    b = torch.ones(4, dtype=F64)
    nonsym = D.copy()
    nonsym[0, 1] += 1.0
    negdiag = D.copy()
    negdiag[2, 2] = -1.0
    nan = A.clone().coalesce()
    nan.values()[0] = float("nan")
    singular = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=F64).to_sparse().requires_grad_()
    return [
        ((A, b.numpy()), {}, TypeError, "b must be a torch.Tensor"),
        ((A, torch.ones(4, dtype=torch.int64)), {}, TypeError, "b must be float32 or float64"),
        ((A, torch.ones((4, 1, 1), dtype=F64)), {}, ValueError, r"b must be \(n,\)"),
        ((A, torch.ones(5, dtype=F64)), {}, ValueError, r"b has shape \(5,\) but A"),
        ((A, b * float("inf")), {}, ValueError, "b contains NaN or Inf"),
        ((torch.tensor(D), b), {}, TypeError, "A is a dense torch tensor"),
        ((torch.ones((4, 3), dtype=F64).to_sparse(), b), {}, ValueError, "A must be square"),
        ((A.float(), b), {}, TypeError, "b has dtype torch.float64 but A has dtype"),
        ((A.to(torch.int64), b), {}, TypeError, "A must be float32 or float64"),
        ((nan, b), {}, ValueError, "A contains NaN or Inf"),
        ((torch.tensor(nonsym).to_sparse(), b), {}, ValueError, "A is not symmetric"),
        ((torch.tensor(negdiag).to_sparse(), b), {}, ValueError,
         r"A is not positive definite: its diagonal entry A\[2, 2\]"),
        ((singular, torch.tensor([1.0, -1.0], dtype=F64)), {}, ValueError, "A is singular"),
        ((A, b), {"x0": torch.ones(3, dtype=F64)}, ValueError, r"x0 has shape \(3,\)"),
        ((A, b), {"x0": b * float("nan")}, ValueError, "x0 contains NaN"),
        ((A, b), {"M": "nope"}, ValueError, "M='nope' is not a known preconditioner"),
        ((A, b), {"M": "neural"}, ValueError, "M='neural' is not a linear SPD"),
        ((A, b), {"M": "mg"}, TypeError, "needs a grid operator"),
        ((A, b), {"rtol": -1.0}, ValueError, "rtol must be"),
        ((A, b), {"maxiter": 0}, ValueError, "maxiter must be"),
        ((A, b), {"nu": 2}, TypeError, "preconditioner options need M"),
        ((A, b), {"M": "ic0", "nu": 2}, TypeError, "M='ic0' got unexpected keyword"),
        ((object(), b), {}, TypeError, "A must be"),
    ]


@pytest.mark.parametrize(("args", "kwargs", "error", "match"), _bad_cases())
def test_bad_inputs_name_the_argument(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        sparse_solve(*args, **kwargs)


def test_device_mismatch_names_b():
    A = torch.eye(3, dtype=F64).to_sparse().to("meta")
    with pytest.raises(ValueError, match="b is on device cpu but A is on device meta"):
        sparse_solve(A, torch.ones(3, dtype=F64))


@pytest.mark.gpu
def test_cuda_tensors_come_back_on_cuda(rng):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    D = random_spd(rng, 16)
    values = torch.tensor(D).to_sparse().values().cuda().requires_grad_()
    idx = torch.tensor(D).to_sparse().indices().cuda()
    A = torch.sparse_coo_tensor(idx, values, (16, 16))
    b = torch.tensor(rng.standard_normal((16, 2)), device="cuda", requires_grad=True)
    x = sparse_solve(A, b, M="ic0")
    x.sum().backward()
    assert x.is_cuda and b.grad.is_cuda and values.grad.is_cuda
    torch.testing.assert_close(x.cpu(), torch.linalg.solve(torch.tensor(D), b.detach().cpu()))
