"""The pressure stencil, defined once: cell codes, stencil codes, diagonal, CSR assembly.

Every back-end (the NumPy reference, Numba, the array-API kernels, CUDA, the torch
operator of the training loss) computes the operator this module defines; the CSR
matrix assembled here is what the kernels are tested against.

Cell codes (:mod:`dcdm.kernels.codes`): ``FLUID = 0`` (an unknown), ``SOLID = 1`` (a
zero-flux wall), ``AIR = 2`` (Dirichlet ``p = 0``). The flags are padded by one cell of
the domain boundary's code (:func:`pad_flags`), so no kernel needs bounds checks.

For a FLUID cell ``c`` with face neighbours ``n``::

    (L x)_c = scale * (d_c x_c - sum_{n FLUID} x_n),   d_c = #{n : n not SOLID}

and a non-FLUID cell's row is the identity. ``d_c`` is the *stencil code* of ``c``
(:func:`stencil_code`, ``-1`` on non-FLUID cells): with it, a vector that vanishes off
the FLUID cells needs no neighbour flag at all (the fluid-supported mat-vec).

A face-connected FLUID region that touches no AIR cell (:func:`fluid_regions`) makes
the operator singular, with the constant on that region in its null space.

Examples
--------
>>> import numpy as np
>>> from dcdm.kernels import stencil
>>> fp = stencil.pad_flags(np.zeros((3, 3), dtype=np.int8), stencil.AIR)
>>> stencil.stencil_code(fp)[1].tolist()
[4, 4, 4]
>>> stencil.assemble_csr(fp, 1.0, np.float64).toarray()[4].tolist()
[0.0, -1.0, 0.0, -1.0, 4.0, -1.0, 0.0, -1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.ndimage as ndi
import scipy.sparse as sp

from .codes import AIR, FLUID, SOLID

__all__ = [
    "AIR",
    "FLUID",
    "SOLID",
    "assemble_csr",
    "diagonal",
    "fluid_regions",
    "neighbour_slices",
    "pad_flags",
    "stencil_code",
]


def pad_flags(flags: np.ndarray, boundary: int) -> np.ndarray:
    """``flags`` (``int8``) padded by one cell of ``boundary`` on every side."""
    return np.pad(np.asarray(flags, dtype=np.int8), 1, constant_values=int(boundary))


def neighbour_slices(ndim: int) -> Iterator[tuple[slice, ...]]:
    """For each of the ``2 * ndim`` face neighbours (axis by axis, lower then upper), the
    slice of a padded array that holds it for every interior cell."""
    inner = [slice(1, -1)] * ndim
    for axis in range(ndim):
        for lo, hi in ((0, -2), (2, None)):
            s = list(inner)
            s[axis] = slice(lo, hi)
            yield tuple(s)


def _open_faces(fp: np.ndarray) -> np.ndarray:
    """Per interior cell, the number of non-SOLID face neighbours (``d`` of the stencil)."""
    d = np.zeros(tuple(n - 2 for n in fp.shape), dtype=np.int8)
    for s in neighbour_slices(fp.ndim):
        d += fp[s] != SOLID
    return d


def stencil_code(fp: np.ndarray) -> np.ndarray:
    """Per-cell ``int8`` code for the fluid-supported mat-vec: the diagonal count
    ``d`` (non-SOLID neighbours) on FLUID cells, ``-1`` elsewhere (grid-shaped)."""
    inner = (slice(1, -1),) * fp.ndim
    return np.where(fp[inner] == FLUID, _open_faces(fp), -1).astype(np.int8)


def diagonal(fp: np.ndarray, dtype, scale: float) -> np.ndarray:
    """Diagonal of the operator, grid-shaped (``scale * d`` on FLUID cells, 1 elsewhere)."""
    dtype = np.dtype(dtype)
    inner = (slice(1, -1),) * fp.ndim
    d = _open_faces(fp).astype(dtype)
    return np.where(fp[inner] == FLUID, dtype.type(scale) * d, 1).astype(dtype, copy=False)


def assemble_csr(fp: np.ndarray, scale: float, dtype) -> sp.csr_array:
    """The operator on the padded flags ``fp`` as a ``scipy.sparse.csr_array``.

    Unknowns follow the C-order ravel of the grid (``fp`` without its padding). The
    diagonal is :func:`diagonal`; a FLUID cell couples with ``-scale`` to each FLUID face
    neighbour; non-FLUID rows are identity rows.
    """
    dtype = np.dtype(dtype)
    ndim = fp.ndim
    shape = tuple(n - 2 for n in fp.shape)
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    inner = (slice(1, -1),) * ndim
    fluid = fp[inner] == FLUID
    rows, cols = [idx.ravel()], [idx.ravel()]
    vals = [diagonal(fp, dtype, scale).reshape(-1)]
    for axis in range(ndim):
        for step in (-1, 1):
            s = list(inner)
            s[axis] = slice(1 + step, fp.shape[axis] - 1 + step)
            couple = fluid & (fp[tuple(s)] == FLUID)
            rows.append(idx[couple])
            cols.append(np.roll(idx, -step, axis=axis)[couple])
            vals.append(np.full(rows[-1].size, -scale, dtype=dtype))
    A = sp.coo_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    ).tocsr()
    A.sort_indices()
    return A


def fluid_regions(fp: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """The face-connected FLUID regions of the padded flags ``fp``.

    Returns ``(labels, n, open_region)``: ``labels`` grid-shaped (0 off FLUID cells,
    ``1..n`` on the regions), and ``open_region[k]`` whether region ``k`` touches an AIR
    cell (or an AIR domain boundary); a region that does not is a pure-Neumann region,
    singular with the constant in its null space. ``open_region[0]`` is unused.
    """
    ndim = fp.ndim
    inner = (slice(1, -1),) * ndim
    fluid = fp[inner] == FLUID
    structure = ndi.generate_binary_structure(ndim, 1)
    labels, n = ndi.label(fluid, structure=structure)
    near_air = ndi.binary_dilation(fp == AIR, structure=structure)[inner]
    open_region = np.zeros(n + 1, dtype=bool)
    open_region[np.unique(labels[near_air & fluid])] = True
    return labels, n, open_region
