"""Compile each Numba kernel twice, serial and parallel, and pick by problem size.

Threads pay off only on large arrays: a parallel region costs a fork/join, and
on a loaded 2-core machine a region whose second thread is not scheduled waits
a whole time slice (measured here: ~8 ms per call, which made a CG iteration
on a 2,000-cell grid 100x slower). Arrays with fewer than
:data:`PARALLEL_MIN` entries (environment ``DCDM_PARALLEL_MIN``) run serially.
"""

from __future__ import annotations

import os
import types

import numba as nb

__all__ = ["PARALLEL_MIN", "Kernel", "kernel"]

PARALLEL_MIN = int(os.environ.get("DCDM_PARALLEL_MIN", "65536"))
_FLAGS = dict(cache=True, nogil=True, boundscheck=False)


def _copy(fn, suffix: str):
    g = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__,
                           fn.__closure__)
    # distinct names give the two variants distinct on-disk cache entries
    g.__qualname__ = fn.__qualname__ + suffix
    g.__module__ = fn.__module__
    g.__doc__ = fn.__doc__
    return g


class Kernel:
    """A serial and a parallel compilation of one function; ``kernel(size)(*args)``."""

    def __init__(self, fn):
        self.serial = nb.njit(parallel=False, **_FLAGS)(_copy(fn, "_serial"))
        self.parallel = nb.njit(parallel=True, **_FLAGS)(_copy(fn, "_parallel"))
        self.__doc__ = fn.__doc__

    def __call__(self, size: int):
        return self.parallel if size >= PARALLEL_MIN else self.serial


def kernel(fn) -> Kernel:
    """Decorator: compile ``fn`` (which uses ``numba.prange``) both ways."""
    return Kernel(fn)
