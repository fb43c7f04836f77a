"""CUDA kernels on CuPy arrays: stencil mat-vecs, fused vector updates and multigrid.

Each function has the name, signature and result of its namesake in
:mod:`dcdm.kernels.cpu` / :mod:`dcdm.kernels.cpu_mg` and computes what
:mod:`dcdm.kernels.reference` computes (the tests use the reference as the oracle);
the arrays are C-contiguous CuPy arrays on the current device and every kernel runs
on the current stream. Reductions (:func:`cg_update`, :func:`dot`) accumulate in
float64, finish on the device in the same launch, deterministically, and bring only
the scalar to the host. The multigrid kernels take 3-D arrays (a 2-D grid as
``n0 x n1 x 1``, or 2-D arrays) and coarsening factors of 1 or 2 per axis. Results
agree with the reference to rounding (fused multiply-adds, summation order); float32
denormals flush to zero (``-ftz=true``, as CuPy compiles).

Loading
-------
The CUDA sources ship with the package (``kernels/cuda/*.cu``, one module each:
``stencil``, ``vector``, ``mg``). On first use in a process the loader takes, per
device:

1. the ahead-of-time fatbins ``<name>.fatbin`` in the folder named by the
   environment variable ``DCDM_CUDA_FATBIN`` (all three must be there);
2. else those of a source checkout's CMake build, ``build/cuda/`` beside the
   repository's ``CMakeLists.txt`` (``cmake -S . -B build && cmake --build build``),
   unless they are older than the sources;
3. else the sources, compiled at run time by NVRTC through ``cupy.RawModule``
   (CuPy caches the result on disk, ``~/.cupy/kernel_cache``).

A fatbin that does not load on the GPU at hand (no code for its architecture, a
driver older than the toolkit that built it) falls back to NVRTC with a warning.
``DCDM_CUDA_LOADER`` (``auto``, ``fatbin`` or ``nvrtc``) or :func:`set_loader`
forces one path. Importing this module needs neither CuPy nor a GPU; using a
kernel without them raises an error that says what to install.

Examples
--------
>>> from dcdm.kernels import cuda
>>> isinstance(cuda.available(), bool)
True
>>> sorted(cuda.SOURCES)
['mg', 'stencil', 'vector']
"""

from __future__ import annotations

import importlib
import logging
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

__all__ = [
    "available",
    "axpy",
    "cg_update",
    "coarse_solve",
    "dot",
    "find_fatbins",
    "laplacian_matvec",
    "laplacian_matvec_fluid",
    "loader",
    "nvrtc_source",
    "origins",
    "prolong_add",
    "rbgs_cells",
    "rbgs_sweep",
    "residual_restrict",
    "set_loader",
    "xpby",
]

logger = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent / "cuda"
"""Folder of the ``.cu``/``.cuh`` sources (package data)."""
SOURCES = ("stencil", "vector", "mg")
"""The CUDA modules, one per ``.cu`` file and fatbin."""
KERNELS = {
    "stencil": ("laplacian2", "laplacian3", "fluid3"),
    "vector": ("cg_update", "dot", "xpby", "axpy"),
    "mg": ("rbgs3", "restrict3", "prolong3", "rbgs_cells3"),
}
"""The kernels of each module; each exists as ``<name>_f32`` and ``<name>_f64``."""
SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
NVRTC_OPTIONS = ("--std=c++17", "-ftz=true")
"""NVRTC options of the run-time build (CuPy adds the architecture, and ``-ftz=true``
itself; the CMake build uses the same, so both paths compute the same numbers)."""
FATBIN_ENV = "DCDM_CUDA_FATBIN"
LOADER_ENV = "DCDM_CUDA_LOADER"
LOADERS = ("auto", "fatbin", "nvrtc")
BLOCK = 256  # DCDM_BLOCK in common.cuh
REDUCE_BLOCKS = 1024  # DCDM_REDUCE_BLOCKS in common.cuh
PLANE_MAX = 2**31  # the kernels index within one i-plane in 32 bits
_GRID_Y_MAX = 65535
_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$')
_KERNEL_SOURCE = {k: src for src, names in KERNELS.items() for k in names}


class _State:
    """Per-process loader state: the forced loader, loaded modules and kernels."""

    override: ClassVar[str | None] = None
    device_ok: ClassVar[bool] = False
    # (source, device) -> cupy.RawModule, and where it came from ("fatbin:<path>", "nvrtc")
    modules: ClassVar[dict[tuple[str, int], Any]] = {}
    origins: ClassVar[dict[tuple[str, int], str]] = {}
    # (kernel, device) -> cupy.RawKernel; (device, stream) -> reduction buffers
    functions: ClassVar[dict[tuple[str, int], Any]] = {}
    workspaces: ClassVar[dict[tuple[int, int], tuple]] = {}


# -- loader ----------------------------------------------------------------------------------


def _import_cupy() -> ModuleType:
    try:
        return importlib.import_module("cupy")
    except ImportError as e:
        raise ImportError(
            "dcdm.kernels.cuda needs CuPy: pip install 'dcdm[cuda]' (CuPy for CUDA 12); "
            "without a GPU use the 'numba' or 'numpy' kernels"
        ) from e


def _device_count(cp: ModuleType) -> tuple[int, str]:
    """Number of visible CUDA devices, and why there are none."""
    try:
        n = int(cp.cuda.runtime.getDeviceCount())
    except Exception as e:  # no driver, an old driver, CUDA_VISIBLE_DEVICES=""...
        return 0, f"{type(e).__name__}: {e}"
    return n, "the CUDA runtime reports 0 devices"


def available() -> bool:
    """Whether CuPy imports and sees a CUDA device (never raises)."""
    try:
        cp = _import_cupy()
    except ImportError:
        return False
    return _device_count(cp)[0] > 0


def _cupy() -> ModuleType:
    """CuPy, once a device is known to be there; else a clear error."""
    cp = _import_cupy()
    if not _State.device_ok:
        n, why = _device_count(cp)
        if n == 0:
            raise RuntimeError(
                f"dcdm.kernels.cuda: no CUDA device ({why}); run on a machine with an NVIDIA "
                "GPU and driver, or use the 'numba' or 'numpy' kernels"
            )
        _State.device_ok = True
    return cp


def loader() -> str:
    """The loader in force: :func:`set_loader`'s, else ``$DCDM_CUDA_LOADER``, else ``auto``."""
    how = _State.override or os.environ.get(LOADER_ENV) or "auto"
    if how not in LOADERS:
        raise ValueError(f"{LOADER_ENV}={how!r} is not a loader; choose one of {LOADERS}")
    return how


def set_loader(how: str | None) -> None:
    """Force the loader (``"auto"``, ``"fatbin"``, ``"nvrtc"``; ``None`` undoes) and drop
    the loaded modules, so that the next kernel call loads them again."""
    if how is not None and how not in LOADERS:
        raise ValueError(f"loader={how!r} is not a loader; choose one of {LOADERS} or None")
    _State.override = how
    _State.modules.clear()
    _State.origins.clear()
    _State.functions.clear()
    _State.device_ok = False


def origins() -> dict[str, str]:
    """Where each loaded module came from on the current device: ``{"stencil":
    "fatbin:/path/stencil.fatbin" or "nvrtc", ...}`` (empty before the first call)."""
    if not _State.origins:
        return {}
    dev = _cupy().cuda.runtime.getDevice()
    return {src: o for (src, d), o in _State.origins.items() if d == dev}


def _default_fatbin_dirs() -> list[Path]:
    root = SOURCE_DIR.parent.parent
    return [root / "build" / "cuda"] if (root / "CMakeLists.txt").is_file() else []


def _sources_mtime(source: str) -> float:
    files = [SOURCE_DIR / f"{source}.cu", *SOURCE_DIR.glob("*.cuh")]
    return max(f.stat().st_mtime for f in files)


def find_fatbins() -> dict[str, Path] | None:
    """The ahead-of-time fatbins the ``auto`` loader takes (see the module docstring), or
    ``None`` when there are none and the sources are compiled with NVRTC.

    Raises ``FileNotFoundError`` when ``$DCDM_CUDA_FATBIN`` names a folder without them.
    """
    env = os.environ.get(FATBIN_ENV)
    folders = [Path(env)] if env else _default_fatbin_dirs()
    for folder in folders:
        paths = {src: folder / f"{src}.fatbin" for src in SOURCES}
        missing = [p.name for p in paths.values() if not p.is_file()]
        if missing and env:
            raise FileNotFoundError(
                f"{FATBIN_ENV}={env!r} lacks {', '.join(missing)}: build the fatbins with "
                f"`cmake -S . -B build && cmake --build build` and set {FATBIN_ENV} to "
                f"build/cuda, or unset {FATBIN_ENV} to compile the sources with NVRTC"
            )
        if missing:
            continue
        stale = [s for s in SOURCES if paths[s].stat().st_mtime < _sources_mtime(s)]
        if stale:
            logger.warning("fatbins %s in %s are older than their sources; rebuild them with "
                           "`cmake --build`", ", ".join(stale), folder)
            if not env:
                continue
        return paths
    return None


def nvrtc_source(source: str) -> str:
    """The text NVRTC compiles for module ``source``: the ``.cu`` file with its local
    ``#include "..."`` headers inlined (``#line`` keeps the messages' file and line)."""
    if source not in SOURCES:
        raise ValueError(f"source={source!r} is not a CUDA module; choose one of {SOURCES}")
    name = f"{source}.cu"
    lines = []
    for n, line in enumerate((SOURCE_DIR / name).read_text().splitlines(), start=1):
        m = _INCLUDE.match(line)
        if m is None:
            lines.append(line)
            continue
        header = (SOURCE_DIR / m[1]).read_text().rstrip("\n")
        lines += [f'#line 1 "{m[1]}"', header, f'#line {n + 1} "{name}"']
    return "\n".join(lines) + "\n"


def _load(cp: ModuleType, source: str) -> tuple[Any, str]:
    how = loader()
    if how != "nvrtc":
        paths = find_fatbins()
        if paths is None and how == "fatbin":
            raise FileNotFoundError(
                f"loader 'fatbin': no ahead-of-time fatbins ({FATBIN_ENV} unset, none in a "
                "source checkout's build/cuda); build them with `cmake -S . -B build && "
                f"cmake --build build` or set {FATBIN_ENV}, or use the 'nvrtc' loader"
            )
        if paths is not None:
            path = paths[source]
            try:
                mod = cp.RawModule(path=str(path))
                mod.get_function(f"{KERNELS[source][0]}_f64")  # loads it on this device
                return mod, f"fatbin:{path}"
            except Exception as e:  # CUDADriverError: no code for this GPU, old driver...
                if how == "fatbin":
                    raise RuntimeError(
                        f"{path} does not load on this GPU ({e}); rebuild it with its "
                        "architecture in DCDM_CUDA_ARCHS, or use the 'nvrtc' loader"
                    ) from e
                logger.warning("%s does not load on this GPU (%s); compiling %s.cu with NVRTC",
                               path, e, source)
    mod = cp.RawModule(code=nvrtc_source(source), options=NVRTC_OPTIONS)
    mod.compile()
    return mod, "nvrtc"


def _kernel(cp: ModuleType, name: str, x) -> Any:
    """The kernel ``<name>_<f32|f64>`` for ``x``'s dtype on the current device."""
    dev = cp.cuda.runtime.getDevice()
    full = f"{name}_{SUFFIXES[x.dtype]}"
    fn = _State.functions.get((full, dev))
    if fn is None:
        source = _KERNEL_SOURCE[name]
        mod = _State.modules.get((source, dev))
        if mod is None:
            mod, origin = _load(cp, source)
            _State.modules[source, dev], _State.origins[source, dev] = mod, origin
            logger.info("dcdm CUDA module %s on device %d: %s", source, dev, origin)
        fn = _State.functions[full, dev] = mod.get_function(full)
    return fn


# -- argument checks and launch geometry -----------------------------------------------------


def _arrays(cp: ModuleType, like, **arrays) -> None:
    """Check that ``like`` and every named array are C-contiguous CuPy arrays of
    ``like``'s shape and (float32/float64) dtype."""
    for name, a in arrays.items():
        if not isinstance(a, cp.ndarray):
            raise TypeError(
                f"{name} must be a CuPy array, got {type(a).__module__}.{type(a).__name__}; "
                "move it with cupy.asarray or use dcdm.kernels.cpu for NumPy arrays"
            )
        if a.dtype not in SUFFIXES:
            raise TypeError(f"{name} has dtype {a.dtype}; the CUDA kernels take float32 or "
                            "float64")
        if a.dtype != like.dtype or a.shape != like.shape:
            raise ValueError(f"{name} ({a.shape}, {a.dtype}) does not match "
                             f"({like.shape}, {like.dtype})")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous; pass cupy.ascontiguousarray({name})")


def _codes(cp: ModuleType, shape: tuple[int, ...], **arrays) -> None:
    """Check int8 flag/code arrays of the given shape."""
    for name, a in arrays.items():
        if not isinstance(a, cp.ndarray) or a.dtype != np.int8 or a.shape != shape:
            got = getattr(a, "dtype", type(a).__name__), getattr(a, "shape", None)
            raise ValueError(f"{name} must be an int8 CuPy array of shape {shape}, got {got}")
        if not a.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")


def _grid(plane: int, rows: int) -> tuple[int, int]:
    """Blocks of the stencil kernels: ``plane`` cells along x, ``rows`` planes along y."""
    if plane >= PLANE_MAX:
        raise ValueError(f"a grid plane of {plane} cells exceeds the kernels' 2**31 limit")
    return -(-plane // BLOCK), min(rows, _GRID_Y_MAX)


def _as3d(shape: tuple[int, ...]) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Dimensions the 3-D kernels see for ``shape``, and the axis permutation used.

    A size-1 axis can move without changing a C-order array's memory; moving the last one
    to the front lets one plane hold the whole grid (better use of the threads)."""
    s = tuple(shape) + (1,) * (3 - len(shape))
    perm = (2, 0, 1) if s[2] == 1 and s[0] * s[1] < PLANE_MAX else (0, 1, 2)
    return (s[perm[0]], s[perm[1]], s[perm[2]]), perm


def _workspace(cp: ModuleType) -> tuple:
    """Reduction buffers (partials, counter, result) of the current device and stream."""
    key = (cp.cuda.runtime.getDevice(), cp.cuda.get_current_stream().ptr)
    ws = _State.workspaces.get(key)
    if ws is None:
        ws = _State.workspaces[key] = (cp.zeros(REDUCE_BLOCKS, dtype=np.float64),
                                       cp.zeros(1, dtype=np.uint32),
                                       cp.zeros(1, dtype=np.float64))
    return ws


def _reduce(cp: ModuleType, name: str, like, *args) -> float:
    n = like.size
    if n == 0:
        return 0.0
    ws = _workspace(cp)
    blocks = min(-(-n // BLOCK), REDUCE_BLOCKS)
    _kernel(cp, name, like)((blocks,), (BLOCK,), (*args, np.int64(n), *ws))
    return float(ws[2].item())  # the one value that crosses to the host


def _elementwise(cp: ModuleType, name: str, like, *args) -> None:
    n = like.size
    if n:
        blocks = min(-(-n // BLOCK), 65536)
        _kernel(cp, name, like)((blocks,), (BLOCK,), (*args, np.int64(n)))


# -- stencil mat-vecs ------------------------------------------------------------------------


def laplacian_matvec(fp, x, out, scale: float):
    """CUDA version of :func:`dcdm.kernels.reference.laplacian_matvec` (2-D or 3-D)."""
    cp = _cupy()
    _arrays(cp, x, x=x, out=out)
    _codes(cp, tuple(n + 2 for n in x.shape), fp=fp)
    T = x.dtype.type
    if x.size == 0:
        return out
    if x.ndim == 3:
        n0, n1, n2 = x.shape
        _kernel(cp, "laplacian3", x)(_grid(n1 * n2, n0), (BLOCK,),
                                     (fp, x, out, np.int64(n0), np.uint32(n1), np.uint32(n2),
                                      T(scale)))
    elif x.ndim == 2:
        n0, n1 = x.shape
        rows, plane = (1, n0 * n1) if n0 * n1 < PLANE_MAX else (n0, n1)
        _kernel(cp, "laplacian2", x)(_grid(plane, rows), (BLOCK,),
                                     (fp, x, out, np.int64(rows), np.uint32(plane),
                                      np.uint32(n1), T(scale)))
    else:
        raise ValueError(f"x must be a 2-D or 3-D grid-shaped array, got shape {x.shape}")
    return out


def laplacian_matvec_fluid(code, x, out, scale: float):
    """CUDA version of :func:`dcdm.kernels.reference.laplacian_matvec_fluid` (2-D or 3-D)."""
    cp = _cupy()
    _arrays(cp, x, x=x, out=out)
    _codes(cp, x.shape, code=code)
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be a 2-D or 3-D grid-shaped array, got shape {x.shape}")
    if x.size == 0:
        return out
    (n0, n1, n2), _ = _as3d(x.shape)
    _kernel(cp, "fluid3", x)(_grid(n1 * n2, n0), (BLOCK,),
                             (code, x, out, np.int64(n0), np.uint32(n1), np.uint32(n2),
                              x.dtype.type(scale)))
    return out


# -- fused vector updates --------------------------------------------------------------------


def cg_update(x, r, p, Ap, alpha: float) -> float:
    """Fused ``x += alpha p; r -= alpha Ap; return r . r`` in one pass (one launch)."""
    cp = _cupy()
    _arrays(cp, x, x=x, r=r, p=p, Ap=Ap)
    return _reduce(cp, "cg_update", x, x, r, p, Ap, x.dtype.type(alpha))


def xpby(z, beta: float, p):
    """``p = z + beta p`` in place, one pass; returns ``p``."""
    cp = _cupy()
    _arrays(cp, p, z=z, p=p)
    _elementwise(cp, "xpby", p, z, p.dtype.type(beta), p)
    return p


def dot(x, y) -> float:
    """``x . y`` accumulated in float64, as a Python float."""
    cp = _cupy()
    _arrays(cp, x, x=x, y=y)
    return _reduce(cp, "dot", x, x, y)


def axpy(alpha: float, x, y):
    """``y += alpha x`` in place, one pass; returns ``y``."""
    cp = _cupy()
    _arrays(cp, y, x=x, y=y)
    _elementwise(cp, "axpy", y, y.dtype.type(alpha), x, y)
    return y


# -- multigrid -------------------------------------------------------------------------------


def rbgs_sweep(code, x, b, scale: float, color: int) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.rbgs_sweep` (in place on ``x``)."""
    cp = _cupy()
    _arrays(cp, x, x=x, b=b)
    _codes(cp, x.shape, code=code)
    if color not in (0, 1):
        raise ValueError(f"color must be 0 or 1, got {color!r}")
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be a 2-D or 3-D grid-shaped array, got shape {x.shape}")
    if x.size == 0:
        return
    (n0, n1, n2), _ = _as3d(x.shape)
    _kernel(cp, "rbgs3", x)(_grid(n1 * ((n2 + 1) // 2), n0), (BLOCK,),
                            (code, x, b, x.dtype.type(1.0 / scale), np.int32(color),
                             np.int64(n0), np.uint32(n1), np.uint32(n2)))


def _mg_dims(fine: tuple[int, ...], coarse: tuple[int, ...], factors) -> tuple:
    """3-D fine and coarse dimensions and factor shifts for the transfer kernels."""
    factors = tuple(int(f) for f in factors)
    if len(fine) not in (2, 3) or len(coarse) != len(fine) or len(factors) != len(fine):
        raise ValueError(f"fine shape {fine}, coarse shape {coarse} and factors {factors} "
                         "must all be 2-D or all 3-D")
    if any(f not in (1, 2) for f in factors):
        raise ValueError(f"factors must be 1 or 2 per axis, got {factors}")
    if any(c != -(-n // f) for n, c, f in zip(fine, coarse, factors, strict=True)):
        raise ValueError(f"coarse shape {coarse} is not fine shape {fine} coarsened by "
                         f"{factors}")
    dims_f, perm = _as3d(fine)
    c3 = tuple(coarse) + (1,) * (3 - len(coarse))
    f3 = factors + (1,) * (3 - len(factors))
    return dims_f, tuple(c3[a] for a in perm), tuple(int(f3[a] == 2) for a in perm)


def residual_restrict(code_f, x_f, b_f, scale_f: float, code_c, b_c, factors, weight: float,
                      work=None) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.residual_restrict`.

    The fine residual is computed inside the restriction, once per fine cell, so
    ``work`` is not needed (accepted for the common signature, unused).
    """
    cp = _cupy()
    _arrays(cp, x_f, x_f=x_f, b_f=b_f)
    _arrays(cp, b_c, b_c=b_c)
    if b_c.dtype != x_f.dtype:
        raise ValueError(f"b_c has dtype {b_c.dtype}, x_f {x_f.dtype}; they must match")
    _codes(cp, x_f.shape, code_f=code_f)
    _codes(cp, b_c.shape, code_c=code_c)
    (n0, n1, n2), (N0, N1, N2), shifts = _mg_dims(x_f.shape, b_c.shape, factors)
    if b_c.size == 0:
        return
    T = x_f.dtype.type
    _kernel(cp, "restrict3", x_f)(_grid(N1 * N2, N0), (BLOCK,),
                                  (code_f, x_f, b_f, T(scale_f), np.int64(n0), np.uint32(n1),
                                   np.uint32(n2), code_c, b_c, np.int64(N0), np.uint32(N1),
                                   np.uint32(N2), *(np.int32(s) for s in shifts), T(weight)))


def prolong_add(x_c, code_f, x_f, factors) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.prolong_add` (``x_f += P x_c``)."""
    cp = _cupy()
    _arrays(cp, x_f, x_f=x_f)
    _arrays(cp, x_c, x_c=x_c)
    if x_c.dtype != x_f.dtype:
        raise ValueError(f"x_c has dtype {x_c.dtype}, x_f {x_f.dtype}; they must match")
    _codes(cp, x_f.shape, code_f=code_f)
    (n0, n1, n2), (_, N1, N2), shifts = _mg_dims(x_f.shape, x_c.shape, factors)
    if x_f.size == 0:
        return
    _kernel(cp, "prolong3", x_f)(_grid(n1 * n2, n0), (BLOCK,),
                                 (x_c, code_f, x_f, np.int64(n0), np.uint32(n1), np.uint32(n2),
                                  np.uint32(N1), np.uint32(N2),
                                  *(np.int32(s) for s in shifts)))


def rbgs_cells(code, x, b, scale: float, cells) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.rbgs_cells`: Gauss-Seidel update of the
    listed cells ``cells = (ii, jj, kk)`` (int64 CuPy arrays, all cells of one colour)."""
    cp = _cupy()
    _arrays(cp, x, x=x, b=b)
    _codes(cp, x.shape, code=code)
    if x.ndim != 3:
        raise ValueError(f"x must be a 3-D grid-shaped array, got shape {x.shape}")
    if len(cells) != 3:
        raise ValueError(f"cells must be three index arrays (ii, jj, kk), got {len(cells)}")
    for name, a in zip(("ii", "jj", "kk"), cells, strict=True):
        if (not isinstance(a, cp.ndarray) or a.dtype != np.int64 or a.ndim != 1
                or a.shape != cells[0].shape):
            raise TypeError(f"cells ({name}) must be 1-D int64 CuPy arrays of one length")
    m = cells[0].size
    if m == 0:
        return
    n0, n1, n2 = x.shape
    _kernel(cp, "rbgs_cells3", x)((min(-(-m // BLOCK), 65536),), (BLOCK,),
                                  (code, x, b, x.dtype.type(1.0 / scale),
                                   *(cp.ascontiguousarray(a) for a in cells), np.int64(m),
                                   np.int64(n0), np.uint32(n1), np.uint32(n2)))


def coarse_solve(kind: str, F, b, x) -> None:
    """CuPy version of :func:`dcdm.kernels.cpu_mg.coarse_solve` (cuBLAS through CuPy):
    ``kind == "cholesky"``: ``F`` is the lower Cholesky factor of the coarsest matrix,
    else ``x = F b`` with a dense (pseudo-)inverse ``F``."""
    cp = _cupy()
    _arrays(cp, x, b=b, x=x)
    if kind == "cholesky":
        from cupyx.scipy.linalg import solve_triangular

        y = solve_triangular(F, b, lower=True)
        x[...] = solve_triangular(F, y, trans="T", lower=True)
    else:
        x[...] = F @ b
