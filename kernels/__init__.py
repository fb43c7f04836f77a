"""Stencil mat-vecs and fused vector updates behind one dispatch.

Back-ends
---------
``"numpy"``
    :mod:`dcdm.kernels.reference`, the oracle (NumPy arrays).
``"numba"``
    :mod:`dcdm.kernels.cpu` (and :mod:`dcdm.kernels.cpu_mg`), multi-threaded; used
    for NumPy arrays when numba is installed (the ``numba`` extra).
``"xp"``
    :mod:`dcdm.kernels.xp`, written once against the array API: any array library
    (torch tensors on any device, CuPy arrays, ...), on the array's own device.
``"cuda"``
    The CUDA kernels (:mod:`dcdm.kernels.cuda_kernels`, the sources in ``kernels/cuda/``
    loaded through CuPy by :mod:`dcdm.kernels.cuda_loader`), used when CuPy imports and
    a GPU is present (``available()``).

:func:`select` picks the back-end by the array's type:

- NumPy arrays: ``"numba"`` when it imports, else the reference;
  ``DCDM_KERNELS=numpy`` forces the reference (useful for debugging).
- CuPy arrays: ``"cuda"`` when available, else ``"xp"``.
- CUDA torch tensors: ``"cuda"`` through a zero-copy DLPack adapter
  (``cupy.from_dlpack``) when available, else ``"xp"`` (torch's own kernels).
- Everything else (CPU torch tensors, other array-API arrays): ``"xp"``.

The stencil arrays (padded flags, stencil code) must be on the array's device:
:meth:`dcdm.problems.Grid.kernel_arrays` converts them once per namespace and device.
torch and CuPy are never imported here unless such an array is passed.

Examples
--------
>>> import numpy as np
>>> from dcdm import kernels
>>> from dcdm.problems import Grid
>>> g = Grid(np.zeros((4, 4), dtype=np.int8))
>>> x = np.ones(g.shape)
>>> out = kernels.laplacian_matvec(g.padded_flags, x, np.empty_like(x), 1.0)
>>> float(out.sum())
0.0
"""

from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np

from . import arrays, reference
from .optional import maybe, require

__all__ = ["available_backends", "axpy", "cg_update", "coef_matvec", "dot", "laplacian_matvec",
    "laplacian_matvec_fluid", "mg_backend", "select", "xpby"]

_MODULES = {"numpy": "dcdm.kernels.reference", "numba": "dcdm.kernels.cpu",
            "xp": "dcdm.kernels.xp", "cuda": "dcdm.kernels.cuda_kernels"}
#: the functions of the vector/stencil and of the multigrid kernel sets
_VECTOR_FUNCS = ("laplacian_matvec", "laplacian_matvec_fluid", "coef_matvec", "cg_update",
                 "xpby", "dot", "axpy")
_MG_FUNCS = ("rbgs_sweep", "rbgs_pair", "residual_restrict", "prolong_add", "rbgs_cells",
             "coef_rbgs_sweep", "coef_rbgs_pair", "coef_residual_restrict", "coef_rbgs_cells")


@functools.cache
def _load(name: str) -> ModuleType | None:
    if name == "cuda":
        return _load_cuda()
    return maybe(_MODULES[name])


def _load_cuda() -> ModuleType | None:
    """The CUDA kernel module when it imports and reports a usable GPU, else None."""
    mod = maybe(_MODULES["cuda"])
    if mod is None:
        return None
    try:
        ok = bool(mod.available())
    except Exception:  # a broken driver or toolkit: fall back, never fail the solve
        ok = False
    return mod if ok else None


def available_backends() -> list[str]:
    """Names of the kernel back-ends that import (and, for ``"cuda"``, find a GPU) here."""
    return [name for name in _MODULES if _load(name) is not None]


def _kind(x) -> str:
    """``"cupy"``, ``"torch-cuda"``, ``"numpy"`` or ``"other"``, by type (imports nothing)."""
    lib = arrays.library(x)
    if lib in ("numpy", "cupy"):
        return lib
    return "torch-cuda" if arrays.is_cuda(x) else "other"


def _from_dlpack(a):
    import cupy

    return cupy.from_dlpack(a)


def _convert(arg):
    """torch CUDA tensors (also inside tuples) as zero-copy CuPy views; others unchanged."""
    if isinstance(arg, tuple):
        return tuple(_convert(a) for a in arg)
    if arrays.library(arg) == "torch" and arrays.is_cuda(arg):
        return _from_dlpack(arg)
    return arg


def _torch_adapter(fn, returns: int | None):
    """``fn`` (CuPy arrays) called on torch CUDA tensors through DLPack, zero-copy.

    ``returns`` is the index of the argument the kernel returns (its in-place output),
    so that the caller gets its own tensor back; None for kernels returning a float/None.
    """

    def call(*args, **kwargs):
        res = fn(*(_convert(a) for a in args), **{k: _convert(v) for k, v in kwargs.items()})
        return args[returns] if returns is not None else res

    call.__name__ = fn.__name__
    call.__doc__ = fn.__doc__
    return call


#: which argument each kernel returns (its output), for the torch adapter
_RETURNS = {"laplacian_matvec": 2, "laplacian_matvec_fluid": 2, "coef_matvec": 3, "xpby": 2,
            "axpy": 2}


@functools.cache
def _device_backend(kind: str, mg: bool) -> Any:
    """The kernel set for a non-NumPy array kind: CUDA where it is available (filled in
    with the generic kernels for any function it lacks), else the generic module."""
    generic = _load("xp")
    cuda = _load("cuda") if kind in ("cupy", "torch-cuda") else None
    if cuda is None:
        return generic
    funcs = {}
    for name in (_MG_FUNCS if mg else _VECTOR_FUNCS):
        fn = getattr(cuda, name, None)
        if fn is None:
            funcs[name] = getattr(generic, name)
        elif kind == "torch-cuda":
            funcs[name] = _torch_adapter(fn, _RETURNS.get(name))
        else:
            funcs[name] = fn
    return SimpleNamespace(__name__=f"{cuda.__name__}[{kind}]", **funcs)


def select(x, backend: str | None = None) -> Any:
    """Return the kernel module to use for array ``x``.

    Parameters
    ----------
    x : array
        The array the kernel will run on.
    backend : {"numpy", "numba", "xp", "cuda"}, optional
        Force a back-end; default picks the fastest available for ``x`` (see the
        module docstring).
    """
    if backend is not None:
        if backend not in _MODULES:
            raise ValueError(
                f"backend={backend!r} is not a kernel back-end; choose one of {sorted(_MODULES)}"
            )
        if backend == "cuda":
            if _load("cuda") is None:
                raise ImportError(
                    "kernel back-end 'cuda' is not available: it needs CuPy, the CUDA kernels "
                    "and a GPU; install the extra: pip install 'dcdm[cuda]'"
                )
            kind = _kind(x)
            return _device_backend(kind if kind == "torch-cuda" else "cupy", False)
        return _load(backend) or require(_MODULES[backend], f"kernel back-end {backend!r}")
    if type(x) is np.ndarray and os.environ.get("DCDM_KERNELS", "") != "numpy":
        mod = _load("numba")
        if mod is not None:
            return mod
    if isinstance(x, np.ndarray):
        return reference
    return _device_backend(_kind(x), False)


def mg_backend(x=None) -> Any:
    """The module with the multigrid kernels (``rbgs_sweep``, ``residual_restrict``,
    ``prolong_add``, ``rbgs_cells``) for arrays like ``x``: for NumPy (or ``x=None``)
    Numba when available (and not forced off), else the reference; for other arrays
    as :func:`select` (CUDA where available, else the generic :mod:`.xp` kernels)."""
    if x is not None and not isinstance(x, np.ndarray):
        return _device_backend(_kind(x), True)
    if os.environ.get("DCDM_KERNELS", "") != "numpy" and _load("numba") is not None:
        return importlib.import_module("dcdm.kernels.cpu_mg")
    return reference


def laplacian_matvec(fp, x, out, scale: float, backend: str | None = None):
    """Masked 5/7-point Laplacian ``out = L x`` on grid-shaped arrays (see :mod:`.reference`)."""
    return select(x, backend).laplacian_matvec(fp, x, out, scale)


def laplacian_matvec_fluid(code, x, out, scale: float, backend: str | None = None):
    """``out = L x`` for ``x`` zero off FLUID cells (see :mod:`.reference`); faster."""
    return select(x, backend).laplacian_matvec_fluid(code, x, out, scale)


def coef_matvec(diag, couplings, x, out, scale: float, backend: str | None = None):
    """``out = L x`` for a coefficient stencil (face weights; see :mod:`.reference`)."""
    return select(x, backend).coef_matvec(diag, couplings, x, out, scale)


def cg_update(x, r, p, Ap, alpha: float, backend: str | None = None) -> float:
    """Fused ``x += alpha p; r -= alpha Ap``; returns the new ``r . r``."""
    return select(x, backend).cg_update(x, r, p, Ap, alpha)


def xpby(z, beta: float, p, backend: str | None = None):
    """``p = z + beta p`` in place."""
    return select(p, backend).xpby(z, beta, p)


def dot(x, y, backend: str | None = None) -> float:
    """``x . y`` as a Python float."""
    return select(x, backend).dot(x, y)


def axpy(alpha: float, x, y, backend: str | None = None):
    """``y += alpha x`` in place."""
    return select(y, backend).axpy(alpha, x, y)
