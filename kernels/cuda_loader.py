"""Loading the CUDA kernels: CuPy, the ahead-of-time fatbins or NVRTC, the kernel cache.

The kernels themselves (their Python wrappers) live in :mod:`dcdm.kernels.cuda_kernels`;
this module finds, compiles and caches the compiled modules they launch.

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

The cell codes (FLUID, SOLID, AIR) are defined once, in :mod:`dcdm.kernels.codes`; the
sources take them as the macros ``DCDM_FLUID``, ``DCDM_SOLID`` and ``DCDM_AIR``, which
both builds pass (:data:`CODE_DEFINES` here, ``CMakeLists.txt`` reading ``codes.py``).

Examples
--------
>>> from dcdm.kernels import cuda_loader
>>> isinstance(cuda_loader.available(), bool)
True
>>> sorted(cuda_loader.SOURCES)
['mg', 'stencil', 'vector']
>>> cuda_loader.CODE_DEFINES
('-DDCDM_FLUID=0', '-DDCDM_SOLID=1', '-DDCDM_AIR=2')
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

from . import codes

__all__ = [
    "available",
    "find_fatbins",
    "loader",
    "nvrtc_source",
    "origins",
    "set_loader",
]

logger = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent / "cuda"
"""Folder of the ``.cu``/``.cuh`` sources (package data)."""
SOURCES = ("stencil", "vector", "mg")
"""The CUDA modules, one per ``.cu`` file and fatbin."""
KERNELS = {
    "stencil": ("laplacian2", "laplacian3", "fluid3", "coef3"),
    "vector": ("cg_update", "dot", "xpby", "axpy"),
    "mg": ("rbgs3", "restrict3", "prolong3", "rbgs_cells3", "rbgs3_shift", "restrict3_shift",
           "rbgs_cells3_shift", "coef_rbgs3", "coef_restrict3", "coef_prolong3",
           "coef_rbgs_cells3"),
}
"""The kernels of each module; each exists as ``<name>_f32`` and ``<name>_f64``."""
SUFFIXES = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
CODE_NAMES = ("FLUID", "SOLID", "AIR")
"""The cell codes of :mod:`dcdm.kernels.codes` the sources take as ``DCDM_<name>`` macros."""
CODE_DEFINES = tuple(f"-DDCDM_{name}={int(getattr(codes, name))}" for name in CODE_NAMES)
"""The ``-D`` options that hand the cell codes to the sources (``common.cuh`` stops with
``#error`` without them)."""
NVRTC_OPTIONS = ("--std=c++17", "-ftz=true", *CODE_DEFINES)
"""NVRTC options of the run-time build (CuPy adds the architecture, and ``-ftz=true``
itself; the CMake build uses the same, so both paths compute the same numbers)."""
FATBIN_ENV = "DCDM_CUDA_FATBIN"
LOADER_ENV = "DCDM_CUDA_LOADER"
LOADERS = ("auto", "fatbin", "nvrtc")
_INCLUDE = re.compile(r'^\s*#include\s+"([^"]+)"\s*$')
_KERNEL_SOURCE = {k: src for src, names in KERNELS.items() for k in names}


class _State:
    """Per-process loader state: the forced loader, loaded modules and kernels."""

    override: ClassVar[str | None] = None
    device_ok: ClassVar[bool] = False
    # (source, device) -> cupy.RawModule, and where it came from ("fatbin:<path>", "nvrtc")
    modules: ClassVar[dict[tuple[str, int], Any]] = {}
    origins: ClassVar[dict[tuple[str, int], str]] = {}
    # (kernel, device) -> cupy.RawKernel
    functions: ClassVar[dict[tuple[str, int], Any]] = {}


# -- CuPy and the device ---------------------------------------------------------------------


def _import_cupy() -> ModuleType:
    try:
        return importlib.import_module("cupy")
    except ImportError as e:
        raise ImportError(
            "dcdm.kernels.cuda_kernels needs CuPy: pip install 'dcdm[cuda]' (CuPy for CUDA "
            "12); without a GPU use the 'numba' or 'numpy' kernels"
        ) from e


def _device_count(cp: ModuleType) -> tuple[int, str]:
    """Number of visible CUDA devices, and why there are none."""
    try:
        n = int(cp.cuda.runtime.getDeviceCount())
    except Exception as e:  # no driver, an old driver, CUDA_VISIBLE_DEVICES=""...
        return 0, f"{type(e).__name__}: {e}"
    return n, "the CUDA runtime reports 0 devices"


def available() -> bool:
    """Whether CuPy imports and sees a CUDA device (never raises).

    Examples
    --------
    >>> from dcdm.kernels.cuda_loader import available
    >>> available() in (True, False)
    True
    """
    try:
        cp = _import_cupy()
    except ImportError:
        return False
    return _device_count(cp)[0] > 0


def require_device() -> ModuleType:
    """CuPy, once a device is known to be there; else an error that says what is missing
    (for the kernel wrappers of :mod:`dcdm.kernels.cuda_kernels`)."""
    cp = _import_cupy()
    if not _State.device_ok:
        n, why = _device_count(cp)
        if n == 0:
            raise RuntimeError(
                f"dcdm.kernels.cuda_kernels: no CUDA device ({why}); run on a machine with an "
                "NVIDIA GPU and driver, or use the 'numba' or 'numpy' kernels"
            )
        _State.device_ok = True
    return cp


# -- the loader's choice ---------------------------------------------------------------------


def loader() -> str:
    """The loader in force: :func:`set_loader`'s, else ``$DCDM_CUDA_LOADER``, else ``auto``.

    Examples
    --------
    >>> from dcdm.kernels.cuda_loader import loader
    >>> loader() in ("auto", "fatbin", "nvrtc")
    True
    """
    how = _State.override or os.environ.get(LOADER_ENV) or "auto"
    if how not in LOADERS:
        raise ValueError(f"{LOADER_ENV}={how!r} is not a loader; choose one of {LOADERS}")
    return how


def set_loader(how: str | None) -> None:
    """Force the loader (``"auto"``, ``"fatbin"``, ``"nvrtc"``; ``None`` undoes) and drop
    the loaded modules, so that the next kernel call loads them again.

    Examples
    --------
    >>> from dcdm.kernels.cuda_loader import loader, set_loader
    >>> set_loader("nvrtc"); loader()
    'nvrtc'
    >>> set_loader(None)
    """
    if how is not None and how not in LOADERS:
        raise ValueError(f"loader={how!r} is not a loader; choose one of {LOADERS} or None")
    _State.override = how
    _State.modules.clear()
    _State.origins.clear()
    _State.functions.clear()
    _State.device_ok = False


def origins() -> dict[str, str]:
    """Where each loaded module came from on the current device: ``{"stencil":
    "fatbin:/path/stencil.fatbin" or "nvrtc", ...}`` (empty before the first call).

    Examples
    --------
    >>> from dcdm.kernels.cuda_loader import origins, set_loader
    >>> set_loader(None); origins()
    {}
    """
    if not _State.origins:
        return {}
    dev = require_device().cuda.runtime.getDevice()
    return {src: o for (src, d), o in _State.origins.items() if d == dev}


# -- fatbins and sources ---------------------------------------------------------------------


def _default_fatbin_dirs() -> list[Path]:
    root = SOURCE_DIR.parent.parent
    return [root / "build" / "cuda"] if (root / "CMakeLists.txt").is_file() else []


def _sources_mtime(source: str) -> float:
    # codes.py counts: the fatbins carry the cell codes it defines
    files = [SOURCE_DIR / f"{source}.cu", *SOURCE_DIR.glob("*.cuh"), Path(codes.__file__)]
    return max(f.stat().st_mtime for f in files)


def find_fatbins() -> dict[str, Path] | None:
    """The ahead-of-time fatbins the ``auto`` loader takes (see the module docstring), or
    ``None`` when there are none and the sources are compiled with NVRTC.

    Raises ``FileNotFoundError`` when ``$DCDM_CUDA_FATBIN`` names a folder without them.

    Examples
    --------
    >>> from dcdm.kernels.cuda_loader import find_fatbins
    >>> found = find_fatbins()
    >>> found is None or sorted(found) == ['mg', 'stencil', 'vector']
    True
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
    ``#include "..."`` headers inlined (``#line`` keeps the messages' file and line).

    Examples
    --------
    >>> from dcdm.kernels.cuda_loader import nvrtc_source
    >>> '#line 1 "common.cuh"' in nvrtc_source("vector")
    True
    """
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


# -- loading and the kernel cache ------------------------------------------------------------


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


def get_kernel(cp: ModuleType, name: str, x) -> Any:
    """The kernel ``<name>_<f32|f64>`` for ``x``'s dtype on the current device, loading its
    module on first use (for the wrappers of :mod:`dcdm.kernels.cuda_kernels`)."""
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
