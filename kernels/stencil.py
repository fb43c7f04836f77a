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

Face weights
------------
With ``face_weights = (W_0, ..., W_{d-1})`` (``W_a`` shaped like the grid but one longer
along axis ``a``: ``W_a[..., i, ...]`` is the face between cells ``i - 1`` and ``i``, both
domain-boundary faces included; finite, ``>= 0``) the operator is ``-div(w grad p) / h**2``::

    (L x)_c = scale * (sum_{f: n not SOLID} w_f x_c - sum_{f: n FLUID} w_f x_n)

and ``face_weights=None`` is ``w = 1`` everywhere (the operator above). A zero weight closes
its face. Every kernel takes this operator in *coefficient form* (:func:`face_coefficients`):
a diagonal ``diag`` (``-1`` marks the identity rows of non-FLUID cells) and one coupling array
per axis, ``couplings[a][c]`` the weight between ``c`` and ``c + e_a`` when both are FLUID
(0 otherwise, and at the upper end of each axis). The multigrid's coarse levels are
coefficient stencils of the same form.

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
    "assemble_coefficients",
    "assemble_csr",
    "diagonal",
    "face_coefficients",
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


def _weights(fp: np.ndarray, face_weights, axis: int) -> np.ndarray:
    """``W_axis`` (float64), ones when ``face_weights`` is None."""
    if face_weights is None:
        return np.ones(tuple(n - 2 + (a == axis) for a, n in enumerate(fp.shape)))
    return np.asarray(face_weights[axis], dtype=np.float64)


def _axis_faces(fp: np.ndarray, face_weights):
    """Per axis: ``(axis, w_below, w_above, flags_below, flags_above)`` for every interior
    cell (the weights of its lower and upper faces, the flags across them)."""
    slices = list(neighbour_slices(fp.ndim))
    for axis in range(fp.ndim):
        w = _weights(fp, face_weights, axis)
        n = fp.shape[axis] - 2
        yield (axis, w[(slice(None),) * axis + (slice(0, n),)],
               w[(slice(None),) * axis + (slice(1, n + 1),)], fp[slices[2 * axis]],
               fp[slices[2 * axis + 1]])


def face_coefficients(fp: np.ndarray, face_weights=None, dtype=np.float64
                      ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The operator on the padded flags ``fp`` in coefficient form ``(diag, couplings)``.

    ``diag`` (grid-shaped): the sum of the weights of a FLUID cell's faces to non-SOLID
    neighbours, ``-1`` on non-FLUID cells (identity rows). ``couplings[a]`` (grid-shaped):
    the weight of the face between ``c`` and ``c + e_a`` where both are FLUID, else 0. Both
    in stencil units (multiply by ``scale = 1 / h**2`` for the operator).
    """
    ndim = fp.ndim
    inner = (slice(1, -1),) * ndim
    fluid = fp[inner] == FLUID
    diag = np.zeros(fluid.shape)
    couplings = []
    for _, below, above, lower, upper in _axis_faces(fp, face_weights):
        diag += np.where(lower != SOLID, below, 0.0) + np.where(upper != SOLID, above, 0.0)
        couplings.append(np.where(fluid & (upper == FLUID), above, 0.0).astype(dtype))
    diag = np.where(fluid, diag, -1.0).astype(dtype)
    return diag, tuple(couplings)


def diagonal(fp: np.ndarray, dtype, scale: float, face_weights=None) -> np.ndarray:
    """Diagonal of the operator, grid-shaped (``scale * d`` on FLUID cells, 1 elsewhere)."""
    dtype = np.dtype(dtype)
    inner = (slice(1, -1),) * fp.ndim
    if face_weights is None:
        d = _open_faces(fp).astype(dtype)
    else:
        d = face_coefficients(fp, face_weights)[0].astype(dtype)
    return np.where(fp[inner] == FLUID, dtype.type(scale) * d, 1).astype(dtype, copy=False)


def assemble_coefficients(diag: np.ndarray, couplings, scale: float, dtype) -> sp.csr_array:
    """A coefficient stencil (:func:`face_coefficients`) as a ``csr_array``: ``scale * diag``
    on the diagonal (1 where ``diag < 0``), ``-scale * couplings[a][c]`` between ``c`` and
    ``c + e_a`` (both ways; zero couplings are not stored)."""
    dtype = np.dtype(dtype)
    shape = diag.shape
    n = int(np.prod(shape))
    idx = np.arange(n).reshape(shape)
    rows, cols = [idx.ravel()], [idx.ravel()]
    vals = [np.where(diag < 0, 1, dtype.type(scale) * diag.astype(dtype)).reshape(-1)]
    for axis, k in enumerate(couplings):
        lo = (slice(None),) * axis + (slice(0, shape[axis] - 1),)
        hi = (slice(None),) * axis + (slice(1, None),)
        keep = k[lo] != 0
        a, b = idx[lo][keep], idx[hi][keep]
        v = -(dtype.type(scale) * k[lo][keep].astype(dtype))
        rows += [a, b]
        cols += [b, a]
        vals += [v, v]
    A = sp.coo_array(
        (np.concatenate(vals).astype(dtype), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n)).tocsr()
    A.sort_indices()
    return A


def assemble_csr(fp: np.ndarray, scale: float, dtype, face_weights=None) -> sp.csr_array:
    """The operator on the padded flags ``fp`` as a ``scipy.sparse.csr_array``.

    Unknowns follow the C-order ravel of the grid (``fp`` without its padding). The
    diagonal is :func:`diagonal`; a FLUID cell couples with ``-scale * w_f`` to each FLUID
    face neighbour (``w_f = 1`` without ``face_weights``); non-FLUID rows are identity rows.
    """
    diag, couplings = face_coefficients(fp, face_weights)
    return assemble_coefficients(diag, couplings, scale, dtype)


def fluid_regions(fp: np.ndarray, face_weights=None) -> tuple[np.ndarray, int, np.ndarray]:
    """The face-connected FLUID regions of the padded flags ``fp``.

    Returns ``(labels, n, open_region)``: ``labels`` grid-shaped (0 off FLUID cells,
    ``1..n`` on the regions), and ``open_region[k]`` whether region ``k`` touches an AIR
    cell (or an AIR domain boundary); a region that does not is a pure-Neumann region,
    singular with the constant in its null space. ``open_region[0]`` is unused. With
    ``face_weights``, only faces of positive weight connect (or reach the AIR).
    """
    ndim = fp.ndim
    inner = (slice(1, -1),) * ndim
    fluid = fp[inner] == FLUID
    if face_weights is None:
        structure = ndi.generate_binary_structure(ndim, 1)
        labels, n = ndi.label(fluid, structure=structure)
        near_air = ndi.binary_dilation(fp == AIR, structure=structure)[inner]
    else:
        labels, n = _weighted_regions(fp, face_weights, fluid)
        near_air = np.zeros(fluid.shape, dtype=bool)  # an AIR face of positive weight
        for _, below, above, lower, upper in _axis_faces(fp, face_weights):
            near_air |= ((lower == AIR) & (below > 0)) | ((upper == AIR) & (above > 0))
    open_region = np.zeros(n + 1, dtype=bool)
    open_region[np.unique(labels[near_air & fluid])] = True
    return labels, n, open_region


def _weighted_regions(fp: np.ndarray, face_weights, fluid: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of the FLUID cells joined by faces of positive weight."""
    from scipy.sparse.csgraph import connected_components

    graph = assemble_coefficients(*face_coefficients(fp, face_weights), 1.0, np.float64)
    n_comp, comp = connected_components(graph, directed=False)
    comp = comp.reshape(fluid.shape)
    ids = np.unique(comp[fluid])
    labels = np.zeros(fluid.shape, dtype=np.int32)
    lookup = np.zeros(n_comp, dtype=np.int32)
    lookup[ids] = np.arange(1, ids.size + 1)
    labels[fluid] = lookup[comp[fluid]]
    return labels, int(ids.size)
