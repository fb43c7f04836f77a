"""Stencil mat-vecs and fused vector updates behind one dispatch.

Back-ends
---------
``"numpy"``
    :mod:`dcdm.kernels.reference`, the oracle; works on any array-API array.
``"numba"``
    :mod:`dcdm.kernels.cpu`, multi-threaded; used for NumPy arrays when numba is
    installed (the ``numba`` extra).

:func:`select` picks the back-end for an array: NumPy arrays get ``"numba"`` when
it imports, everything else the reference. The environment variable
``DCDM_KERNELS=numpy`` forces the reference (useful for debugging).

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
from types import ModuleType

import numpy as np

from . import reference

__all__ = ["available_backends", "axpy", "cg_update", "dot", "laplacian_matvec",
    "laplacian_matvec_fluid", "mg_backend", "select", "xpby"]

_MODULES = {"numpy": "dcdm.kernels.reference", "numba": "dcdm.kernels.cpu"}


@functools.cache
def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(_MODULES[name])
    except ImportError:
        return None


def available_backends() -> list[str]:
    """Names of the kernel back-ends that import on this machine."""
    return [name for name in _MODULES if _load(name) is not None]


def select(x, backend: str | None = None) -> ModuleType:
    """Return the kernel module to use for array ``x``.

    Parameters
    ----------
    x : array
        The array the kernel will run on.
    backend : {"numpy", "numba"}, optional
        Force a back-end; default picks the fastest available for ``x``.
    """
    if backend is not None:
        if backend not in _MODULES:
            raise ValueError(
                f"backend={backend!r} is not a kernel back-end; choose one of {sorted(_MODULES)}"
            )
        mod = _load(backend)
        if mod is None:
            raise ImportError(
                f"kernel back-end {backend!r} is not available; install the extra: "
                f"pip install 'dcdm[{backend}]'"
            )
        return mod
    if type(x) is np.ndarray and os.environ.get("DCDM_KERNELS", "") != "numpy":
        mod = _load("numba")
        if mod is not None:
            return mod
    return reference


def mg_backend(x=None) -> ModuleType:
    """The module with the multigrid kernels (``rbgs_sweep``, ``residual_restrict``,
    ``prolong_add``): Numba when available (and not forced off), else the reference."""
    if os.environ.get("DCDM_KERNELS", "") != "numpy" and _load("numba") is not None:
        return importlib.import_module("dcdm.kernels.cpu_mg")
    return reference


def laplacian_matvec(fp, x, out, scale: float, backend: str | None = None):
    """Masked 5/7-point Laplacian ``out = L x`` on grid-shaped arrays (see :mod:`.reference`)."""
    return select(x, backend).laplacian_matvec(fp, x, out, scale)


def laplacian_matvec_fluid(code, x, out, scale: float, backend: str | None = None):
    """``out = L x`` for ``x`` zero off FLUID cells (see :mod:`.reference`); faster."""
    return select(x, backend).laplacian_matvec_fluid(code, x, out, scale)


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
