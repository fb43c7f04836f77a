"""The CUDA kernels against the NumPy reference (``gpu``: skipped without CuPy and a
device), through both loader paths; and the loader's choices and error messages (no GPU)."""

import logging
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dcdm.kernels import cuda_kernels, cuda_loader, reference
from dcdm.problems import CellType, Grid, faces
from tests.conftest import random_flags

ROOT = Path(__file__).resolve().parents[2]
SHAPES = [(1, 1), (5, 7), (33, 17), (300, 2), (1, 4, 3), (6, 5, 7), (16, 16, 16), (9, 31, 4),
          (9, 4, 1), (3, 1, 70)]
SHAPES3 = [(6, 5, 7), (9, 4, 1), (16, 16, 16), (3, 8, 5), (1, 1, 9), (17, 2, 33)]
DTYPES = [np.float32, np.float64]
BOUNDARIES = [CellType.SOLID, CellType.AIR]


def _tol(dtype) -> float:
    return 2e-5 if dtype == np.float32 else 1e-12


def _flags(rng, shape):
    return random_flags(rng, shape, p_solid=0.2, p_air=0.1)


# -- GPU fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cp():
    cp = pytest.importorskip("cupy", reason="needs CuPy: pip install 'dcdm[cuda]'")
    if not cuda_kernels.available():
        pytest.skip("no CUDA device")
    return cp


@pytest.fixture(scope="module")
def fatbin_dir(cp, tmp_path_factory):
    """Fatbins built by the repository's CMakeLists.txt: those in ``$DCDM_CUDA_FATBIN`` when
    it names a complete set (``bench/gpu_check.sh`` builds them once, before the tests),
    else a fresh build here (skips without nvcc/cmake)."""
    env = os.environ.get(cuda_loader.FATBIN_ENV)
    if env and all((Path(env) / f"{src}.fatbin").is_file() for src in cuda_loader.SOURCES):
        return Path(env)
    nvcc, cmake = shutil.which("nvcc"), shutil.which("cmake")
    if nvcc is None or cmake is None:
        pytest.skip("the fatbin path needs nvcc and cmake to build the fatbins")
    build = tmp_path_factory.mktemp("cuda-build")
    for cmd in ([cmake, "-S", str(ROOT), "-B", str(build), f"-DCMAKE_CUDA_COMPILER={nvcc}",
                 "-DDCDM_HOST_CHECK=OFF"],
                [cmake, "--build", str(build), "-j", str(os.cpu_count() or 2)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return build / "cuda"


@pytest.fixture(params=["nvrtc", "fatbin"])
def loader(request, cp, monkeypatch):
    """Run the test once per loader path; the modules are reloaded for each."""
    if request.param == "fatbin":
        monkeypatch.setenv(cuda_loader.FATBIN_ENV, str(request.getfixturevalue("fatbin_dir")))
    cuda_loader.set_loader(request.param)
    try:
        yield request.param
        assert all(o.startswith(request.param) for o in cuda_loader.origins().values())
    finally:
        cuda_loader.set_loader(None)


# -- GPU: every kernel against the reference -------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_matvecs_match_reference(cp, loader, rng, shape, dtype, boundary):
    g = Grid(_flags(rng, shape), spacing=0.5, boundary=boundary)
    x = rng.standard_normal(shape).astype(dtype)
    tol = _tol(dtype)
    ref = reference.laplacian_matvec(g.padded_flags, x, np.empty_like(x), 4.0)
    xd = cp.asarray(x)
    out = cuda_kernels.laplacian_matvec(cp.asarray(g.padded_flags), xd,
                                        cp.full(shape, np.nan, dtype), 4.0)
    np.testing.assert_allclose(cp.asnumpy(out), ref, rtol=tol, atol=tol * np.abs(ref).max())
    np.testing.assert_array_equal(cp.asnumpy(xd), x)

    xf = np.where(g.fluid, x, 0).astype(dtype)
    ref = reference.laplacian_matvec_fluid(g.stencil_code, xf, np.empty_like(xf), 4.0)
    out = cuda_kernels.laplacian_matvec_fluid(cp.asarray(g.stencil_code), cp.asarray(xf),
                                              cp.full(shape, np.nan, dtype), 4.0)
    np.testing.assert_allclose(cp.asnumpy(out), ref, rtol=tol, atol=tol * np.abs(ref).max())


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 7, 1000, 100_003, 3_000_001])
def test_vector_kernels_match_reference(cp, loader, rng, dtype, n):
    x, r, p, Ap = (rng.standard_normal(n).astype(dtype) for _ in range(4))
    tol = _tol(dtype)
    xr, rr = x.copy(), r.copy()
    rr_ref = reference.cg_update(xr, rr, p, Ap, 0.37)
    xd, rd, pd, Apd = (cp.asarray(a) for a in (x, r, p, Ap))
    rr_cuda = cuda_kernels.cg_update(xd, rd, pd, Apd, 0.37)
    assert isinstance(rr_cuda, float)
    np.testing.assert_allclose(cp.asnumpy(xd), xr, rtol=tol, atol=tol)
    np.testing.assert_allclose(cp.asnumpy(rd), rr, rtol=tol, atol=tol)
    r64 = cp.asnumpy(rd).astype(np.float64)
    assert rr_cuda == pytest.approx(float(r64 @ r64), rel=1e-12)
    assert rr_cuda == pytest.approx(rr_ref, rel=10 * tol)

    d = cuda_kernels.dot(cp.asarray(x), cp.asarray(p))
    assert isinstance(d, float)
    assert d == pytest.approx(float(x.astype(np.float64) @ p), rel=1e-12, abs=1e-12 * n)

    zd, pd = cp.asarray(x), cp.asarray(p)
    assert cuda_kernels.xpby(zd, -0.5, pd) is pd
    np.testing.assert_allclose(cp.asnumpy(pd), reference.xpby(x, -0.5, p.copy()), rtol=tol,
                               atol=tol)
    yd = cp.asarray(r)
    assert cuda_kernels.axpy(2.5, cp.asarray(x), yd) is yd
    np.testing.assert_allclose(cp.asnumpy(yd), reference.axpy(2.5, x, r.copy()), rtol=tol,
                               atol=tol)


@pytest.mark.gpu
def test_reductions_are_deterministic_and_handle_empty(cp, loader, rng):
    x = cp.asarray(rng.standard_normal(2_000_003))
    assert len({cuda_kernels.dot(x, x) for _ in range(5)}) == 1
    e = cp.zeros(0)
    assert cuda_kernels.dot(e, e) == 0.0
    assert cuda_kernels.cg_update(e, e.copy(), e.copy(), e.copy(), 1.0) == 0.0


def _mg_level(rng, shape, dtype, boundary):
    code = reference.stencil_code(np.pad(_flags(rng, shape), 1, constant_values=boundary))
    x = np.where(code >= 0, rng.standard_normal(shape), 0).astype(dtype)
    b = np.where(code >= 0, rng.standard_normal(shape), 0).astype(dtype)
    return code, x, b


@pytest.mark.gpu
@pytest.mark.parametrize("shape", SHAPES3)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("shifted", [False, True])
def test_mg_kernels_match_reference(cp, loader, rng, shape, dtype, boundary, shifted):
    tol = _tol(dtype)
    code, x, b = _mg_level(rng, shape, dtype, boundary)
    cd, bd = cp.asarray(code), cp.asarray(b)
    shift = (np.where(code >= 0, rng.exponential(2.0, code.shape), 0).astype(dtype)
             if shifted else None)
    kw, kw_d = dict(shift=shift), dict(shift=None if shift is None else cp.asarray(shift))
    for color in (0, 1):
        x1, xd = x.copy(), cp.asarray(x)
        reference.rbgs_sweep(code, x1, b, 4.0, color, **kw)
        cuda_kernels.rbgs_sweep(cd, xd, bd, 4.0, color, **kw_d)
        np.testing.assert_allclose(cp.asnumpy(xd), x1, rtol=tol, atol=tol)

    cells = np.nonzero((code > 0) & (np.indices(shape).sum(axis=0) % 2 == 1))
    x1, xd = x.copy(), cp.asarray(x)
    reference.rbgs_cells(code, x1, b, 4.0, cells, **kw)
    cuda_kernels.rbgs_cells(cd, xd, bd, 4.0, tuple(cp.asarray(c.astype(np.int64)) for c in cells),
                            **kw_d)
    np.testing.assert_allclose(cp.asnumpy(xd), x1, rtol=tol, atol=tol)

    factors = tuple(2 if n > 1 else 1 for n in shape)
    cshape = tuple(-(-n // f) for n, f in zip(shape, factors, strict=True))
    ccode = reference.stencil_code(np.pad(_flags(rng, cshape), 1, constant_values=boundary))
    bc = np.full(cshape, np.nan, dtype=dtype)
    reference.residual_restrict(code, x, b, 4.0, ccode, bc, factors, 0.125, **kw)
    bcd = cp.full(cshape, np.nan, dtype=dtype)
    cuda_kernels.residual_restrict(cd, cp.asarray(x), bd, 4.0, cp.asarray(ccode), bcd, factors,
                                   0.125, **kw_d)
    np.testing.assert_allclose(cp.asnumpy(bcd), bc, rtol=10 * tol,
                               atol=10 * tol * max(np.abs(bc).max(), 1))

    xc = rng.standard_normal(cshape).astype(dtype)
    x1, xd = x.copy(), cp.asarray(x)
    reference.prolong_add(xc, code, x1, factors)
    cuda_kernels.prolong_add(cp.asarray(xc), cd, xd, factors)
    np.testing.assert_allclose(cp.asnumpy(xd), x1, rtol=tol, atol=tol)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(7, 9), (40, 33)])
def test_mg_kernels_take_2d_arrays_like_n0_n1_1(cp, loader, rng, shape):
    code, x, b = _mg_level(rng, shape, np.float64, CellType.SOLID)
    code3, x3, b3 = code[..., None], x[..., None], b[..., None]
    x1, xd = x3.copy(), cp.asarray(x)
    reference.rbgs_sweep(code3, x1, b3, 4.0, 1)
    cuda_kernels.rbgs_sweep(cp.asarray(code), xd, cp.asarray(b), 4.0, 1)
    np.testing.assert_allclose(cp.asnumpy(xd), x1[..., 0], rtol=1e-12, atol=1e-12)
    cshape = tuple(-(-n // 2) for n in shape)
    ccode = reference.stencil_code(np.pad(_flags(rng, cshape), 1, constant_values=1))
    bc = np.empty((*cshape, 1))
    reference.residual_restrict(code3, x3, b3, 4.0, ccode[..., None], bc, (2, 2, 1), 0.25)
    bcd = cp.empty(cshape)
    cuda_kernels.residual_restrict(cp.asarray(code), cp.asarray(x), cp.asarray(b), 4.0,
                                   cp.asarray(ccode), bcd, (2, 2), 0.25)
    np.testing.assert_allclose(cp.asnumpy(bcd), bc[..., 0], rtol=1e-11, atol=1e-11)


# -- GPU: the coefficient-stencil kernels (face weights) against the reference --------------


def _coef_level(rng, shape, dtype, boundary=CellType.SOLID):
    """``(diag, couplings)`` of a grid with random flags and random face weights (some 0)."""
    weights = tuple(np.where(rng.random(s) < 0.1, 0.0, rng.uniform(0.05, 3.0, s))
                    for s in faces.face_shapes(shape))
    g = Grid(_flags(rng, shape), boundary=boundary, face_weights=weights)
    diag, couplings = g.coefficients()
    return diag.astype(dtype), tuple(k.astype(dtype) for k in couplings)


def _dev(cp, couplings):
    return tuple(cp.asarray(k) for k in couplings)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_coef_matvec_matches_reference(cp, loader, rng, shape, dtype, boundary):
    diag, couplings = _coef_level(rng, shape, dtype, boundary)
    x = rng.standard_normal(shape).astype(dtype)
    tol = _tol(dtype)
    ref = reference.coef_matvec(diag, couplings, x, np.empty_like(x), 4.0)
    xd, out = cp.asarray(x), cp.full(shape, np.nan, dtype)
    assert cuda_kernels.coef_matvec(cp.asarray(diag), _dev(cp, couplings), xd, out, 4.0) is out
    np.testing.assert_allclose(cp.asnumpy(out), ref, rtol=tol,
                               atol=tol * max(np.abs(ref).max(), 1))
    np.testing.assert_array_equal(cp.asnumpy(xd), x)


# (3-D array shape, coarsening factors); odd sizes, n2 = 1 (a 2-D grid as n0 x n1 x 1)
COEF_MG_CASES = [((6, 5, 7), (2, 2, 2)), ((9, 4, 1), (2, 2, 1)), ((13, 5, 9), (2, 2, 1)),
                 ((3, 8, 5), (1, 2, 2)), ((1, 1, 9), (1, 1, 2)), ((17, 2, 33), (2, 2, 2))]


@pytest.mark.gpu
@pytest.mark.parametrize(("shape", "factors"), COEF_MG_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_coef_mg_kernels_match_reference(cp, loader, rng, shape, factors, dtype):
    tol = _tol(dtype)
    diag, couplings = _coef_level(rng, shape, dtype)
    sup = diag >= 0
    x = np.where(sup, rng.standard_normal(shape), 0).astype(dtype)
    b = np.where(sup, rng.standard_normal(shape), 0).astype(dtype)
    dd, kd, bd = cp.asarray(diag), _dev(cp, couplings), cp.asarray(b)
    parity = np.indices(shape).sum(axis=0) % 2
    for color in (0, 1):
        x1, xd = x.copy(), cp.asarray(x)
        reference.coef_rbgs_sweep(diag, couplings, x1, b, 4.0, color)
        cuda_kernels.coef_rbgs_sweep(dd, kd, xd, bd, 4.0, color)
        np.testing.assert_allclose(cp.asnumpy(xd), x1, rtol=tol, atol=tol * np.abs(x1).max())
        cells = np.nonzero(parity == color)  # cells with diag <= 0 among them stay
        x1, xd = x.copy(), cp.asarray(x)
        reference.coef_rbgs_cells(diag, couplings, x1, b, 4.0, cells)
        cuda_kernels.coef_rbgs_cells(dd, kd, xd, bd, 4.0,
                                     tuple(cp.asarray(c.astype(np.int64)) for c in cells))
        np.testing.assert_allclose(cp.asnumpy(xd), x1, rtol=tol, atol=tol * np.abs(x1).max())

    cshape = tuple(-(-n // f) for n, f in zip(shape, factors, strict=True))
    diag_c, _ = _coef_level(rng, cshape, dtype)
    bc = np.full(cshape, np.nan, dtype=dtype)
    reference.coef_residual_restrict(diag, couplings, x, b, 4.0, diag_c, bc, factors, 0.125)
    bcd = cp.full(cshape, np.nan, dtype=dtype)
    cuda_kernels.coef_residual_restrict(dd, kd, cp.asarray(x), bd, 4.0, cp.asarray(diag_c), bcd,
                                        factors, 0.125)
    np.testing.assert_allclose(cp.asnumpy(bcd), bc, rtol=10 * tol,
                               atol=10 * tol * max(np.abs(bc).max(), 1))

    xc = rng.standard_normal(cshape).astype(dtype)
    x1, xd = x.copy(), cp.asarray(x)
    reference.prolong_add(xc, diag, x1, factors)  # the fine diag in place of the code
    cuda_kernels.prolong_add(cp.asarray(xc), dd, xd, factors)
    np.testing.assert_allclose(cp.asnumpy(xd), x1, rtol=tol, atol=tol)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(7, 9), (40, 33)])
def test_coef_mg_kernels_take_2d_arrays_like_n0_n1_1(cp, loader, rng, shape):
    diag, couplings = _coef_level(rng, shape, np.float64)
    x = np.where(diag >= 0, rng.standard_normal(shape), 0)
    b = np.where(diag >= 0, rng.standard_normal(shape), 0)
    diag3, x3, b3 = diag[..., None], x[..., None], b[..., None]
    k3 = (*(k[..., None] for k in couplings), np.zeros_like(diag3))
    x1, xd = x3.copy(), cp.asarray(x)
    reference.coef_rbgs_sweep(diag3, k3, x1, b3, 4.0, 1)
    cuda_kernels.coef_rbgs_sweep(cp.asarray(diag), _dev(cp, couplings), xd, cp.asarray(b), 4.0, 1)
    np.testing.assert_allclose(cp.asnumpy(xd), x1[..., 0], rtol=1e-12, atol=1e-12)
    cshape = tuple(-(-n // 2) for n in shape)
    diag_c, _ = _coef_level(rng, cshape, np.float64)
    bc = np.empty((*cshape, 1))
    reference.coef_residual_restrict(diag3, k3, x3, b3, 4.0, diag_c[..., None], bc, (2, 2, 1),
                                     0.25)
    bcd = cp.empty(cshape)
    cuda_kernels.coef_residual_restrict(cp.asarray(diag), _dev(cp, couplings), cp.asarray(x),
                                        cp.asarray(b), 4.0, cp.asarray(diag_c), bcd, (2, 2), 0.25)
    np.testing.assert_allclose(cp.asnumpy(bcd), bc[..., 0], rtol=1e-11, atol=1e-11)


@pytest.mark.gpu
def test_fatbin_and_nvrtc_paths_agree(cp, fatbin_dir, rng, monkeypatch):
    g = Grid(_flags(rng, (20, 17, 23)), boundary=CellType.AIR)
    x = cp.asarray(np.where(g.fluid, rng.standard_normal(g.shape), 0))
    code, fp = cp.asarray(g.stencil_code), cp.asarray(g.padded_flags)
    results = {}
    monkeypatch.setenv(cuda_loader.FATBIN_ENV, str(fatbin_dir))
    try:
        for how in ("fatbin", "nvrtc"):
            cuda_loader.set_loader(how)
            a = cuda_kernels.laplacian_matvec_fluid(code, x, cp.empty_like(x), 3.0)
            m = cuda_kernels.laplacian_matvec(fp, x, cp.empty_like(x), 3.0)
            results[how] = (cp.asnumpy(a), cp.asnumpy(m), cuda_kernels.dot(a, m))
            assert set(cuda_loader.origins()) == {"stencil", "vector"}
            assert all(o.startswith(how) for o in cuda_loader.origins().values())
    finally:
        cuda_loader.set_loader(None)
    for u, v in zip(results["fatbin"], results["nvrtc"], strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-14, atol=1e-14)


@pytest.mark.gpu
def test_wrappers_reject_bad_arguments(cp):
    x = cp.zeros((4, 5))
    with pytest.raises(TypeError, match=r"x must be a CuPy array, got numpy\.ndarray"):
        cuda_kernels.dot(np.zeros(3), cp.zeros(3))
    with pytest.raises(TypeError, match="dtype int64; the CUDA kernels take float32 or float64"):
        cuda_kernels.axpy(1.0, cp.zeros(3, dtype=np.int64), cp.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"out \(\(4, 4\), float64\) does not match"):
        cuda_kernels.laplacian_matvec_fluid(cp.zeros((4, 5), np.int8), x, cp.zeros((4, 4)), 1.0)
    with pytest.raises(ValueError, match=r"fp must be an int8 CuPy array of shape \(6, 7\)"):
        cuda_kernels.laplacian_matvec(cp.zeros((4, 5), np.int8), x, cp.empty_like(x), 1.0)
    with pytest.raises(ValueError, match="must be C-contiguous"):
        cuda_kernels.xpby(x.T, 1.0, x.T.copy())
    with pytest.raises(ValueError, match="color must be 0 or 1"):
        cuda_kernels.rbgs_sweep(cp.zeros((4, 5), np.int8), x, x.copy(), 1.0, 2)


# -- no GPU needed: the loader's choices and errors ------------------------------------------


def test_import_needs_no_gpu_and_use_without_one_says_why():
    # the dispatch in dcdm.kernels asks the kernel module; it is the loader's check
    assert cuda_kernels.available is cuda_loader.available
    assert isinstance(cuda_kernels.available(), bool)
    if cuda_kernels.available():
        pytest.skip("a CUDA device is present")
    with pytest.raises((ImportError, RuntimeError), match=r"dcdm\[cuda\]|no CUDA device"):
        cuda_kernels.dot(np.zeros(2), np.zeros(2))


def test_without_cupy_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy now raises ImportError
    assert cuda_kernels.available() is False
    with pytest.raises(ImportError, match=r"needs CuPy: pip install 'dcdm\[cuda\]'"):
        cuda_kernels.laplacian_matvec(None, np.zeros((2, 2)), np.zeros((2, 2)), 1.0)


def _fake_cupy(error: Exception | None, count: int = 0):
    def get_device_count():
        if error is not None:
            raise error
        return count

    cp = types.ModuleType("cupy")
    cp.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=get_device_count))
    return cp


@pytest.mark.parametrize(("error", "count", "why"), [
    (RuntimeError("cudaErrorInsufficientDriver"), 0, "RuntimeError: cudaErrorInsufficientDriver"),
    (None, 0, "the CUDA runtime reports 0 devices"),
])
def test_without_a_device_the_error_says_so(monkeypatch, error, count, why):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(error, count))
    monkeypatch.setattr(cuda_loader._State, "device_ok", False)
    assert cuda_kernels.available() is False
    with pytest.raises(RuntimeError, match=rf"no CUDA device \({why}\); .* 'numba' or 'numpy'"):
        cuda_kernels.cg_update(*(np.zeros(3) for _ in range(4)), 1.0)


def test_loader_choice_is_validated(monkeypatch):
    with pytest.raises(ValueError, match=r"loader='jit' is not a loader; choose one of"):
        cuda_loader.set_loader("jit")
    monkeypatch.setenv(cuda_loader.LOADER_ENV, "ptx")
    with pytest.raises(ValueError, match=r"DCDM_CUDA_LOADER='ptx' is not a loader"):
        cuda_loader.loader()
    monkeypatch.setenv(cuda_loader.LOADER_ENV, "nvrtc")
    assert cuda_loader.loader() == "nvrtc"
    cuda_loader.set_loader("fatbin")
    try:
        assert cuda_loader.loader() == "fatbin"
    finally:
        cuda_loader.set_loader(None)
    assert cuda_loader.loader() == "nvrtc"


def _fake_fatbins(folder: Path, names=cuda_loader.SOURCES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.fatbin").write_bytes(b"\x50\xed\x55\xba")


def test_fatbin_env_folder_must_hold_every_fatbin(tmp_path, monkeypatch):
    _fake_fatbins(tmp_path, ["stencil"])
    monkeypatch.setenv(cuda_loader.FATBIN_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError,
                       match=r"DCDM_CUDA_FATBIN=.* lacks vector.fatbin, mg.fatbin: build the "
                             r"fatbins with `cmake -S . -B build && cmake --build build`"):
        cuda_loader.find_fatbins()
    _fake_fatbins(tmp_path)
    assert cuda_loader.find_fatbins() == {s: tmp_path / f"{s}.fatbin" for s in cuda_loader.SOURCES}


def test_checkout_fatbins_are_found_unless_stale(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(cuda_loader.FATBIN_ENV, raising=False)
    monkeypatch.setattr(cuda_loader, "_default_fatbin_dirs", lambda: [tmp_path / "build" / "cuda"])
    assert cuda_loader.find_fatbins() is None
    _fake_fatbins(tmp_path / "build" / "cuda")
    found = cuda_loader.find_fatbins()
    assert found is not None and found["mg"] == tmp_path / "build" / "cuda" / "mg.fatbin"
    os.utime(found["vector"], (0, 0))  # older than vector.cu: stale
    with caplog.at_level(logging.WARNING, logger="dcdm.kernels.cuda_loader"):
        assert cuda_loader.find_fatbins() is None
    assert "fatbins vector in" in caplog.text and "older than their sources" in caplog.text


def test_default_fatbin_folder_is_the_checkouts_build_cuda():
    if not (ROOT / "CMakeLists.txt").is_file():
        pytest.skip("not a source checkout")
    assert cuda_loader._default_fatbin_dirs() == [ROOT / "build" / "cuda"]


def test_fatbin_loader_without_fatbins_says_how_to_build(monkeypatch):
    monkeypatch.delenv(cuda_loader.FATBIN_ENV, raising=False)
    monkeypatch.setattr(cuda_loader, "_default_fatbin_dirs", list)
    cuda_loader.set_loader("fatbin")
    try:
        with pytest.raises(FileNotFoundError, match=r"no ahead-of-time fatbins .*`cmake -S \. "
                                                    r"-B build .* or use the 'nvrtc' loader"):
            cuda_loader._load(None, "stencil")
    finally:
        cuda_loader.set_loader(None)


def test_nvrtc_source_inlines_the_header_with_line_directives():
    text = cuda_loader.nvrtc_source("stencil")
    cu = (cuda_loader.SOURCE_DIR / "stencil.cu").read_text().splitlines()
    n = next(i for i, line in enumerate(cu, 1) if line.startswith('#include "common.cuh"'))
    assert '#include "common.cuh"' not in text
    assert '#line 1 "common.cuh"' in text and f'#line {n + 1} "stencil.cu"' in text
    assert "#define DCDM_BLOCK" in text and text.endswith(cu[-1] + "\n")
    with pytest.raises(ValueError, match=r"source='blas' is not a CUDA module"):
        cuda_loader.nvrtc_source("blas")


def test_kernel_table_and_constants_match_the_sources():
    for source, names in cuda_loader.KERNELS.items():
        text = (cuda_loader.SOURCE_DIR / f"{source}.cu").read_text()
        for name in names:
            assert f" {name}_##SUFFIX(" in text, (source, name)
    header = (cuda_loader.SOURCE_DIR / "common.cuh").read_text()
    assert f"#define DCDM_BLOCK {cuda_kernels.BLOCK}\n" in header
    assert f"#define DCDM_REDUCE_BLOCKS {cuda_kernels.REDUCE_BLOCKS}\n" in header
    sources = sorted(p.stem for p in cuda_loader.SOURCE_DIR.glob("*.cu"))
    assert sources == sorted(cuda_loader.SOURCES)


def test_coef_arguments_follow_the_axis_permutation_and_are_checked():
    fake_cp = SimpleNamespace(ndarray=np.ndarray)  # the checks need no GPU
    x, diag = np.zeros((4, 5)), np.ones((4, 5))
    k = (np.full((4, 5), 2.0), np.full((4, 5), 3.0))
    # a 2-D grid runs as (1, n0, n1): the size-1 axis first, with diag as its (unread) coupling
    dims, perm = cuda_kernels._as3d(x.shape)
    assert dims == (1, 4, 5)
    args = cuda_kernels._coef_args(fake_cp, x, diag, k, perm)
    assert [a is b for a, b in zip(args, (diag, diag, *k), strict=True)] == [True] * 4
    with pytest.raises(ValueError, match=r"couplings must hold one array per axis of x \(2\)"):
        cuda_kernels._coef_args(fake_cp, x, diag, k[:1], perm)
    with pytest.raises(ValueError, match=r"couplings\[1\] \(\(4, 4\), float64\) does not match"):
        cuda_kernels._coef_args(fake_cp, x, diag, (k[0], np.zeros((4, 4))), perm)
    with pytest.raises(TypeError, match="diag has dtype int8; the CUDA kernels take float32"):
        cuda_kernels._coef_args(fake_cp, x, diag.astype(np.int8), k, perm)


def test_mg_shapes_and_factors_are_checked():
    mg_dims = cuda_kernels._mg_dims
    with pytest.raises(ValueError, match=r"factors must be 1 or 2 per axis, got \(3, 2, 2\)"):
        mg_dims((6, 6, 6), (2, 3, 3), (3, 2, 2))
    with pytest.raises(ValueError, match=r"coarse shape \(3, 3, 4\) is not fine shape"):
        mg_dims((6, 6, 6), (3, 3, 4), (2, 2, 2))
    with pytest.raises(ValueError, match="must all be 2-D or all 3-D"):
        mg_dims((6, 6), (3, 3, 1), (2, 2))
    # a trailing size-1 axis moves to the front (same memory), factors with it
    assert mg_dims((7, 9, 1), (4, 5, 1), (2, 2, 1)) == ((1, 7, 9), (1, 4, 5), (0, 1, 1))
    assert mg_dims((7, 9), (4, 9), (2, 1)) == ((1, 7, 9), (1, 4, 9), (0, 1, 0))
    assert mg_dims((5, 6, 7), (3, 3, 7), (2, 2, 1)) == ((5, 6, 7), (3, 3, 7), (1, 1, 0))
    with pytest.raises(ValueError, match="exceeds the kernels' 2\\*\\*31 limit"):
        cuda_kernels._grid(2**31, 4)
