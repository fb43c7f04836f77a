"""The solvers on non-NumPy arrays: torch CPU tensors stand in for device arrays here (the
same code paths as CUDA tensors and CuPy arrays, less the CUDA kernels); the ``gpu`` tests
at the end run the same checks on a CUDA device when there is one."""

import numpy as np
import pytest
import scipy.sparse as sp

from dcdm import Reason, solve
from dcdm.problems import CellType, Grid, gallery, scenes
from dcdm.solvers import cg, dcdm, fcg
from dcdm.solvers.precond import Jacobi
from dcdm.solvers.precond.mg import GeometricMG

torch = pytest.importorskip("torch")

SOLVERS = {"cg": cg, "fcg": fcg}
PROBLEMS = {"smoke2d": ((33, 27), 3), "smoke3d": ((14, 11, 13), 2)}


def _problem(name, dtype=np.float64):
    shape, obstacles = PROBLEMS[name]
    A, b = gallery.smoke(shape, obstacles=obstacles, seed=1)
    return A.grid.laplacian(dtype), b.astype(dtype)


def _check_result(res, b_t, A, b, rtol):
    assert isinstance(res.x, torch.Tensor)
    assert res.x.device == b_t.device and res.x.dtype == b_t.dtype and res.x.shape == b_t.shape
    assert isinstance(res.residual_norm, float)
    x = res.x.cpu().numpy().astype(np.float64).reshape(-1)
    true = np.linalg.norm(b.reshape(-1) - A.grid.laplacian(np.float64).matvec(x))
    assert true <= 1.5 * rtol * np.linalg.norm(b)


@pytest.mark.parametrize("method", sorted(SOLVERS))
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("M", [None, "jacobi", "mg", "rbgs"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_krylov_on_torch_matches_numpy(method, problem, M, dtype):
    A, b = _problem(problem, dtype)
    rtol = 1e-8 if dtype == np.float64 else 1e-5
    ref = SOLVERS[method](A, b, M=M, rtol=rtol)
    b_t = torch.from_numpy(b.copy())
    res = SOLVERS[method](A, b_t, M=M, rtol=rtol)
    assert res.converged and ref.converged
    slack = 0 if dtype == np.float64 else 1
    assert abs(res.iterations - ref.iterations) <= slack
    _check_result(res, b_t, A, b, rtol)
    assert torch.equal(b_t, torch.from_numpy(b))  # not modified
    np.testing.assert_allclose(res.x.numpy(), ref.x, rtol=0,
                               atol=(1e-9 if dtype == np.float64 else 1e-4) * np.abs(ref.x).max())


def test_grid_shaped_b_x0_and_callback_on_torch():
    A, b = _problem("smoke2d")
    shape = A.grid.shape
    x0 = A.grid.mask(np.random.default_rng(0).standard_normal(A.grid.size)).reshape(shape)
    b_t, x0_t = torch.from_numpy(b.reshape(shape).copy()), torch.from_numpy(x0.copy())
    seen = []
    res = solve(A, b_t, x0=x0_t, M="mg", rtol=1e-8, callback=lambda xk: seen.append(type(xk)))
    ref = solve(A, b.reshape(shape), x0=x0, M="mg", rtol=1e-8)
    assert res.iterations == ref.iterations and res.x.shape == shape
    assert res.stats["preconditioner"] == "mg"  # M="auto" would pick it too
    assert seen and all(t is torch.Tensor for t in seen)
    assert torch.equal(x0_t, torch.from_numpy(x0)) and torch.equal(b_t, torch.from_numpy(
        b.reshape(shape)))


def test_solve_auto_picks_mg_on_torch():
    A, b = _problem("smoke3d")
    res = solve(A, torch.from_numpy(b), rtol=1e-6)
    assert res.converged and res.stats["preconditioner"] == "mg"
    assert res.iterations == solve(A, b, rtol=1e-6).iterations


def _compartments(n, k):
    """``n x n`` grid split by SOLID walls into ``k x k`` closed FLUID compartments."""
    flags = np.zeros((n, n), dtype=np.int8)
    step = n // k
    for w in range(step - 1, n - 1, step):
        flags[w, :] = CellType.SOLID
        flags[:, w] = CellType.SOLID
    return Grid(flags)


@pytest.mark.parametrize("grid", [
    scenes.tank((12, 10, 9), open_top=False),  # one closed region: a mean
    _compartments(18, 3),  # 9 closed regions: per-region scatter-add
    _compartments(12, 2),  # 4 closed regions: one masked sum each
], ids=["one-region", "nine-regions", "four-regions"])
@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_singular_systems_project_on_torch(grid, method, rng):
    assert grid.is_singular
    A = grid.laplacian()
    b = grid.mask(rng.standard_normal(grid.size))  # inconsistent
    ref = SOLVERS[method](A, b, M="jacobi", rtol=1e-8)
    res = SOLVERS[method](A, torch.from_numpy(b), M="jacobi", rtol=1e-8)
    assert res.reason == ref.reason == Reason.INCONSISTENT_RHS
    assert res.iterations == ref.iterations
    assert res.residual_norm == pytest.approx(ref.residual_norm, rel=1e-8)
    assert res.stats["nullspace_dimension"] == ref.stats["nullspace_dimension"]
    assert res.stats["rhs_nullspace_component"] == pytest.approx(
        ref.stats["rhs_nullspace_component"], rel=1e-10)
    np.testing.assert_allclose(res.x.numpy(), ref.x, atol=1e-9 * np.abs(ref.x).max())


@pytest.mark.parametrize("layout", ["dense", "sparse_coo", "sparse_csr"])
def test_torch_matrices_as_operators(layout):
    A, b = gallery.smoke((12, 10), obstacles=1, seed=1)
    C = A.to_csr().toarray()
    T = torch.from_numpy(C.copy())
    if layout == "sparse_coo":
        T = T.to_sparse()
    elif layout == "sparse_csr":
        T = T.to_sparse_csr()
    b_t = torch.from_numpy(b.copy())
    for M in (None, "jacobi"):
        ref = cg(C, b, M=M, rtol=1e-8)
        res = cg(T, b_t, M=M, rtol=1e-8)
        assert res.converged and abs(res.iterations - ref.iterations) <= 1
        np.testing.assert_allclose(res.x.numpy(), ref.x, atol=1e-8 * np.abs(ref.x).max())
    if layout == "dense":
        np.testing.assert_array_equal(T.numpy(), C)  # not modified


def test_float32_torch_matrix_with_float64_b():
    C = np.array([[4.0, 1.0], [1.0, 3.0]])
    res = cg(torch.tensor(C, dtype=torch.float32), torch.tensor([1.0, 2.0], dtype=torch.float64),
             rtol=1e-12)
    assert res.x.dtype == torch.float64
    np.testing.assert_allclose(res.x.numpy(), np.linalg.solve(C, [1.0, 2.0]), rtol=1e-6)


def test_jacobi_and_mg_apply_keep_torch_arrays():
    A, b = _problem("smoke3d")
    r = torch.from_numpy(A.grid.mask(b))
    for P in (Jacobi().build(A), GeometricMG().build(A)):
        z = P.apply(r)
        assert isinstance(z, torch.Tensor) and z.dtype == r.dtype
        np.testing.assert_allclose(z.numpy(), P.apply(r.numpy()), rtol=1e-10, atol=1e-12)
        z32 = P.apply(r.float())
        assert z32.dtype == torch.float32
        np.testing.assert_allclose(z32.numpy(), P.apply(r.numpy()), rtol=1e-3, atol=1e-5)


# -- DCDM and the neural preconditioner --------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_2d():
    pytest.importorskip("safetensors")
    from dcdm.training.weights import WeightsNotFoundError, load_network

    # one torch thread: on the shared 2-core machine a second, descheduled thread makes a
    # 32^2 forward pass ~100x slower (reference/perf-notes.md); restored afterwards
    threads = torch.get_num_threads()
    try:
        yield load_network(None, dim=2, threads=1)
    except WeightsNotFoundError:
        pytest.skip("the shipped 2-D weights are not installed")
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("variant", ["robust", "paper"])
def test_dcdm_with_shipped_weights_on_torch(shipped_2d, variant):
    g = scenes.smoke((32, 32), obstacles=3, seed=4242)
    A = g.laplacian()
    b = g.mask(np.random.default_rng(3).standard_normal(g.size))
    ref = dcdm(A, b, model=shipped_2d, variant=variant, rtol=1e-6, maxiter=30)
    b_t = torch.from_numpy(b.copy())
    res = dcdm(A, b_t, model=shipped_2d, variant=variant, rtol=1e-6, maxiter=30)
    assert res.reason == ref.reason and abs(res.iterations - ref.iterations) <= 1
    assert isinstance(res.x, torch.Tensor) and res.x.dtype == torch.float64
    assert res.stats["network_calls"] == ref.stats["network_calls"]
    if ref.converged:
        _check_result(res, b_t, A, b, 1e-6)
    assert torch.equal(b_t, torch.from_numpy(b))


def test_neural_preconditioner_and_network_on_torch(shipped_2d):
    g = scenes.smoke((24, 24), obstacles=2, seed=7)
    A = g.laplacian()
    b = g.mask(np.random.default_rng(1).standard_normal(g.size))
    opts = dict(method="fcg", M="neural", model=shipped_2d, rtol=1e-6, maxiter=12)
    ref = solve(A, b, **opts)
    res = solve(A, torch.from_numpy(b), **opts)
    assert res.reason == ref.reason and res.iterations == ref.iterations
    np.testing.assert_allclose(res.residual_history, ref.residual_history, rtol=1e-6)
    r = torch.from_numpy(b)
    q = shipped_2d(r, g)  # the Network takes tensors and gives tensors
    assert isinstance(q, torch.Tensor) and q.dtype == r.dtype and q.shape == r.shape
    np.testing.assert_allclose(q.numpy(), shipped_2d(b, g), rtol=1e-5, atol=1e-6)
    assert bool(torch.all(q[~torch.from_numpy(g.fluid.reshape(-1).copy())] == 0))
    assert bool(torch.all(shipped_2d(torch.zeros(g.size, dtype=torch.float64), g) == 0))


def test_dcdm_with_a_callable_model_on_torch():
    A, b = gallery.smoke((20, 20), obstacles=2)
    seen = []

    def model(r):
        seen.append(type(r))
        return r

    res = dcdm(A, torch.from_numpy(b), model=model, rtol=1e-6)
    assert res.converged and set(seen) == {torch.Tensor}
    assert res.iterations == dcdm(A, b, model=lambda r: r, rtol=1e-6).iterations


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ic0", "mic0", "amg"])
@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_cpu_only_preconditioners_refuse_non_numpy(name, method):
    if name == "amg":
        pytest.importorskip("pyamg")
    A, b = _problem("smoke2d")
    with pytest.raises(TypeError, match=f"M='{name}' is CPU-only.*torch Tensor.*M='jacobi'"):
        SOLVERS[method](A, torch.from_numpy(b), M=name)


@pytest.mark.parametrize("name", ["ic0", "mic0", "amg"])
def test_cpu_only_preconditioners_apply_refuses_non_numpy(name):
    if name == "amg":
        pytest.importorskip("pyamg")
    from dcdm.solvers.precond import make_preconditioner

    A, b = _problem("smoke2d")
    P = make_preconditioner(name, A)
    with pytest.raises(TypeError, match=f"M='{name}' is CPU-only: it runs on the CPU"):
        P.apply(torch.from_numpy(b))


def test_host_matrix_preconditioner_refuses_non_numpy():
    A, b = _problem("smoke2d")
    with pytest.raises(TypeError, match="M \\(a csr_array\\) is CPU-only"):
        cg(A, torch.from_numpy(b), M=sp.csr_array(sp.identity(A.shape[0])))


def test_mixed_namespaces_are_refused():
    A, b = _problem("smoke2d")
    b_t = torch.from_numpy(b)
    with pytest.raises(TypeError, match="x0 is a torch Tensor but b is a NumPy array"):
        cg(A, b, x0=torch.zeros(A.shape[0], dtype=torch.float64))
    with pytest.raises(TypeError, match="x0 is a NumPy array but b is a torch Tensor"):
        cg(A, b_t, x0=np.zeros(A.shape[0]))
    with pytest.raises(ValueError, match="x0 is on device meta but b is on device cpu"):
        cg(A, b_t, x0=torch.zeros(A.shape[0], dtype=torch.float64, device="meta"))
    with pytest.raises(TypeError, match="A is a SparseOperator over NumPy/SciPy arrays but b "
                                        "is a torch Tensor"):
        cg(sp.csr_array(A.to_csr()), b_t)
    with pytest.raises(TypeError, match="b is a NumPy array but A is a torch Tensor"):
        cg(torch.eye(3), np.ones(3))


def test_validation_messages_name_the_argument_for_torch():
    A, b = _problem("smoke2d")
    n = A.shape[0]
    with pytest.raises(ValueError, match="b contains NaN or Inf"):
        cg(A, torch.full((n,), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match=r"b has shape \(3,\) but A has shape"):
        cg(A, torch.ones(3))
    with pytest.raises(TypeError, match="b has complex dtype"):
        cg(A, torch.ones(n, dtype=torch.complex64))
    with pytest.raises(ValueError, match="x0 contains NaN or Inf"):
        cg(A, torch.from_numpy(b), x0=torch.full((n,), float("inf"), dtype=torch.float64))
    res = cg(A, torch.ones(n, dtype=torch.int64) * 0, rtol=1e-6)  # integer b: float64 work
    assert res.x.dtype == torch.float64 and res.iterations == 0
    b_grad = torch.from_numpy(b.copy()).requires_grad_()  # autograd history is dropped
    res = cg(A, b_grad, M="mg", rtol=1e-6)
    assert res.converged and not res.x.requires_grad and b_grad.grad is None


def test_importing_the_solvers_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, numpy as np, dcdm; from dcdm.problems import gallery; "
            "A, b = gallery.smoke((8, 8, 8)); dcdm.solve(A, b, M='mg'); "
            "print('torch' in sys.modules, 'cupy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- the same on a GPU -------------------------------------------------------------------------


def _cuda_torch():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")


def _cupy():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except Exception:
        pytest.skip("no CUDA device")
    return cupy


@pytest.mark.gpu
@pytest.mark.parametrize("M", [None, "jacobi", "mg"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_krylov_on_cuda_tensors(M, dtype, method):
    dev = _cuda_torch()
    A, b = _problem("smoke3d", dtype)
    rtol = 1e-8 if dtype == np.float64 else 1e-5
    ref = SOLVERS[method](A, b, M=M, rtol=rtol)
    b_t = torch.from_numpy(b.copy()).to(dev)
    res = SOLVERS[method](A, b_t, M=M, rtol=rtol)
    assert res.converged and abs(res.iterations - ref.iterations) <= 1
    _check_result(res, b_t, A, b, rtol)
    assert torch.equal(b_t.cpu(), torch.from_numpy(b))


@pytest.mark.gpu
@pytest.mark.parametrize("M", [None, "jacobi", "mg"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", sorted(SOLVERS))
def test_krylov_on_cupy_arrays(M, dtype, method):
    cupy = _cupy()
    A, b = _problem("smoke3d", dtype)
    rtol = 1e-8 if dtype == np.float64 else 1e-5
    ref = SOLVERS[method](A, b, M=M, rtol=rtol)
    b_c = cupy.asarray(b)
    res = SOLVERS[method](A, b_c, M=M, rtol=rtol)
    assert res.converged and abs(res.iterations - ref.iterations) <= 1
    assert isinstance(res.x, cupy.ndarray) and res.x.dtype == b.dtype
    x = cupy.asnumpy(res.x).astype(np.float64)
    assert np.linalg.norm(b - A.grid.laplacian().matvec(x)) <= 1.5 * rtol * np.linalg.norm(b)
    np.testing.assert_array_equal(cupy.asnumpy(b_c), b)


@pytest.mark.gpu
def test_singular_system_and_dense_matrix_on_cuda():
    dev = _cuda_torch()
    g = _compartments(18, 3)
    A = g.laplacian()
    b = g.mask(np.random.default_rng(0).standard_normal(g.size))
    ref = cg(A, b, M="jacobi", rtol=1e-8)
    res = cg(A, torch.from_numpy(b).to(dev), M="jacobi", rtol=1e-8)
    assert res.converged and res.iterations == ref.iterations and res.x.is_cuda
    C = torch.from_numpy(A.to_csr().toarray()).to(dev)
    res = cg(C + torch.eye(C.shape[0], device=dev, dtype=C.dtype), torch.from_numpy(b).to(dev),
             rtol=1e-8)
    assert res.converged and res.x.is_cuda


@pytest.mark.gpu
def test_dcdm_on_cuda_tensors_and_cupy(shipped_2d):
    dev = _cuda_torch()
    g = scenes.smoke((32, 32), obstacles=3, seed=4242)
    A = g.laplacian()
    b = g.mask(np.random.default_rng(3).standard_normal(g.size))
    ref = dcdm(A, b, model=shipped_2d, rtol=1e-6, maxiter=60)
    res = dcdm(A, torch.from_numpy(b).to(dev), model=shipped_2d, rtol=1e-6, maxiter=60)
    assert res.reason == ref.reason and abs(res.iterations - ref.iterations) <= 1
    assert res.x.is_cuda
    cupy = _cupy()
    res = dcdm(A, cupy.asarray(b), model=shipped_2d, rtol=1e-6, maxiter=60)
    assert res.reason == ref.reason and abs(res.iterations - ref.iterations) <= 1
    assert isinstance(res.x, cupy.ndarray)


@pytest.mark.gpu
@pytest.mark.parametrize("network_dtype", ["bfloat16", "float16"])
def test_reduced_precision_network_on_cuda(shipped_2d, network_dtype):
    """bf16/fp16 forward pass on the GPU, float64 iteration: about the float32 count."""
    dev = _cuda_torch()
    g = scenes.smoke((64, 64), obstacles=3, seed=4242)
    A = g.laplacian()
    b = torch.from_numpy(g.mask(np.random.default_rng(3).standard_normal(g.size))).to(dev)
    ref = dcdm(A, b, model=shipped_2d, rtol=1e-6, maxiter=60)
    res = dcdm(A, b, model=shipped_2d, rtol=1e-6, maxiter=60, network_dtype=network_dtype)
    assert res.converged and res.x.is_cuda and res.x.dtype == torch.float64
    assert abs(res.iterations - ref.iterations) <= 3, (res.iterations, ref.iterations)
    assert res.stats["network_dtype"] == network_dtype


@pytest.mark.gpu
def test_cpu_only_preconditioners_refuse_cuda_tensors():
    dev = _cuda_torch()
    A, b = _problem("smoke2d")
    with pytest.raises(TypeError, match="M='mic0' is CPU-only"):
        cg(A, torch.from_numpy(b).to(dev), M="mic0")
    with pytest.raises(ValueError, match="x0 is on device cpu but b is on device cuda"):
        cg(A, torch.from_numpy(b).to(dev), x0=torch.zeros(A.shape[0], dtype=torch.float64))
