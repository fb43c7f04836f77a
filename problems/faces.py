"""Face weights of a grid: layout, checks and the usual ways to make them.

A grid of shape ``(n_0, ..., n_{d-1})`` has one weight array per axis, ``W_a`` of shape
``(n_0, ..., n_a + 1, ..., n_{d-1})``: ``W_a[..., i, ...]`` is the face between cells
``i - 1`` and ``i`` along axis ``a``, so ``i = 0`` and ``i = n_a`` are the domain-boundary
faces. Weights are dimensionless multipliers of the face's flux, finite and ``>= 0``;
the operator is ``-div(w grad p) / h**2`` on the FLUID cells (see
:mod:`dcdm.kernels.stencil`), and ``w = 1`` everywhere is the plain Laplacian.

- Variable density (two-phase flow): ``w = 1 / rho`` on each face, ``rho`` the mean of the
  densities of the cells the face joins (:func:`from_density`); the pressure system is
  then ``-div(grad p / rho) = -div(u*) / dt`` and the velocity update ``u -= dt grad p / rho``.
- Cut cells (variational pressure projection, Batty, Bertails & Bridson 2007): ``w`` is the
  open fraction of each face, 0 where a solid closes it (:func:`from_fractions`).

Examples
--------
>>> import numpy as np
>>> from dcdm.problems import faces
>>> rho = np.array([[1.0, 1000.0]])
>>> [w.round(6).tolist() for w in faces.from_density(rho)]
[[[1.0, 0.001], [1.0, 0.001]], [[1.0, 0.001998, 0.001]]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["check", "face_shapes", "from_density", "from_fractions"]


def face_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shape of ``W_a`` for each axis ``a`` of a grid of ``shape``."""
    return [tuple(n + (b == a) for b, n in enumerate(shape)) for a in range(len(shape))]


def check(face_weights, shape: tuple[int, ...], name: str = "face_weights"
          ) -> tuple[np.ndarray, ...] | None:
    """``face_weights`` checked against a grid of ``shape`` and copied as read-only float64
    arrays (``None`` stays ``None``). Raises ``TypeError``/``ValueError`` naming the array."""
    if face_weights is None:
        return None
    if isinstance(face_weights, np.ndarray) or not isinstance(face_weights, (tuple, list)):
        raise TypeError(f"{name} must be a tuple of {len(shape)} arrays (one per axis), got "
                        f"{type(face_weights).__name__}")
    if len(face_weights) != len(shape):
        raise ValueError(f"{name} must hold one array per axis ({len(shape)}), got "
                         f"{len(face_weights)}")
    out = []
    for a, (w, want) in enumerate(zip(face_weights, face_shapes(shape), strict=True)):
        arr = np.asarray(w)
        if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(f"{name}[{a}] must be a real array, got dtype {arr.dtype}")
        if arr.shape != want:
            raise ValueError(f"{name}[{a}] must have shape {want} (the grid's shape with "
                             f"axis {a} one longer: every face, both boundary faces "
                             f"included), got {arr.shape}")
        arr = arr.astype(np.float64, copy=True)
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}[{a}] must be finite (it holds NaN or Inf)")
        if (arr < 0).any():
            raise ValueError(f"{name}[{a}] must be >= 0 (0 closes a face), got min "
                             f"{arr.min():.3g}")
        arr.flags.writeable = False
        out.append(arr)
    return tuple(out)


def from_density(rho) -> tuple[np.ndarray, ...]:
    """Face weights ``1 / rho_f`` for cell densities ``rho`` (grid-shaped, finite, > 0):
    ``rho_f`` is the mean of the two cells' densities, and a boundary face takes its cell's.

    This is the variable-density pressure operator of two-phase solvers: with a density
    ratio of 1000 the weights span three decades.
    """
    rho = np.asarray(rho, dtype=np.float64)
    if not (np.isfinite(rho).all() and (rho > 0).all()):
        raise ValueError("rho must be finite and > 0 in every cell")
    weights = []
    for a in range(rho.ndim):
        first = np.take(rho, [0], axis=a)
        last = np.take(rho, [-1], axis=a)
        padded = np.concatenate([first, rho, last], axis=a)
        n = rho.shape[a]
        lo = np.take(padded, np.arange(0, n + 1), axis=a)
        hi = np.take(padded, np.arange(1, n + 2), axis=a)
        weights.append(2.0 / (lo + hi))
    return tuple(weights)


def from_fractions(fractions) -> tuple[np.ndarray, ...]:
    """Face weights from open face fractions (one array per axis, laid out as the module
    says, each entry in ``[0, 1]``): the cut-cell operator of a variational pressure
    projection. The grid checks the shapes."""
    ws = tuple(np.asarray(f, dtype=np.float64) for f in fractions)
    for a, w in enumerate(ws):
        if not (np.isfinite(w).all() and (w >= 0).all() and (w <= 1).all()):
            raise ValueError(f"fractions[{a}] must lie in [0, 1]")
    return ws
