"""How the geometric multigrid's coarse levels are made.

Two rules, both on blocks of ``2 x 2 x 2`` cells (``2 x 2 x 1`` for 2-D grids, one child
short at odd sizes), with piecewise-constant prolongation ``P`` (a coarse value copied to its
children):

``"galerkin"`` (the default)
    The coarse operator is ``A_c = beta P^T A P`` computed from the fine *coefficients*
    (:func:`coarsen_coefficients`): the coupling between two coarse cells is ``beta`` times
    the sum of the fine couplings that cross their common face, the diagonal ``beta`` times
    the children's diagonals less twice their couplings to one another. So a wall (a face or
    a SOLID cell the fine operator does not couple through) and a coefficient jump stay what
    the fine grid says on every level, and the coarse grids solve the fine problem restricted
    to piecewise-constant corrections. On the first coarsening, a block with an AIR child
    leaves the coarse space (:func:`drop_blocks`), as the flag rule makes such a block AIR:
    the free surface's cells are left to the smoother (measured at rtol 1e-6: 9 -> 8
    iterations on the 128^3 smoke tank, 23 -> 19 on the 48^3 two-phase tank, 11 -> 9 on the
    1024^2 smoke tank; dropping them on every level was worse on baffles). ``beta = 1/2``
    is the over-correction aggregation multigrid needs (Braess 1995; Notay's aggregation
    AMG): with ``beta = 1`` piecewise-constant corrections are too small by about 2x on
    smooth error (measured: beta 0.45 / 0.5 / 0.6 gave 11 / 10 / 10 iterations on the 32^3
    smoke tank at rtol 1e-8 and 12 / 10 / 12 on the 512^2 one at 1e-6); the re-discretised
    Laplacian of the flag rule below is the same factor in the open interior. A diagonal
    term ``D`` (shifted operators) coarsens as ``P^T D P``, unscaled.
``"flags"``
    McAdams, Sifakis & Teran (2010): a coarse cell is AIR if any child is AIR, else FLUID if
    any child is FLUID, else SOLID, and the operator is re-discretised from the coarse flags
    with spacing ``2 h``. Cheap and good in open tanks, but it erases one-cell walls and
    cannot see face weights; kept for comparison.

Examples
--------
>>> import numpy as np
>>> from dcdm.solvers.precond.coarsening import coarsen_coefficients
>>> diag = np.full((2, 1, 1), 1.0)                 # two cells joined by a face of weight 1
>>> k0 = np.array([[[1.0]], [[0.0]]])
>>> zero = np.zeros((2, 1, 1))
>>> dc, (kc0, _, _) = coarsen_coefficients(diag, (k0, zero, zero), (2, 1, 1))
>>> float(dc[0, 0, 0]), float(kc0[0, 0, 0])         # beta (1 + 1 - 2 * 1): no flux out
(0.0, 0.0)
"""

from __future__ import annotations

import numpy as np

from dcdm import kernels
from dcdm.kernels import codes
from dcdm.kernels.reference import block_sum

__all__ = ["band", "block_sum", "coarsen_coefficients", "coarsen_flags", "coefficients3",
           "drop_blocks", "padded3"]

#: the over-correction factor of the Galerkin rule (see the module docstring)
BETA = 0.5


def _coarse_shape(shape, factors) -> tuple[int, ...]:
    return tuple(-(-n // f) for n, f in zip(shape, factors, strict=True))


def coarsen_coefficients(diag: np.ndarray, couplings, factors: tuple[int, ...],
                         beta: float = BETA, shift: np.ndarray | None = None
                         ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The coarse coefficient stencil ``beta P^T A P (+ P^T D P)`` of a fine one.

    Parameters
    ----------
    diag, couplings
        The fine operator in coefficient form (:func:`dcdm.kernels.stencil.face_coefficients`;
        ``diag < 0`` marks inactive cells), one coupling array per axis of ``diag``.
    factors
        1 or 2 per axis.
    beta
        The over-correction factor on the operator's off-diagonal part and the flux it
        carries out of each block.
    shift
        A non-negative diagonal term (same units as ``diag``, included in ``diag``), coarsened
        as ``P^T D P`` without ``beta``; None for none.

    Returns
    -------
    (diag_c, couplings_c)
        ``diag_c`` is ``-1`` on coarse cells without an active child; couplings are exactly
        zero across coarse faces no fine coupling crosses.

    The work is :func:`dcdm.kernels.reference.galerkin_coarsen` (Numba's when available).
    """
    return kernels.mg_backend().galerkin_coarsen(diag, couplings, factors, beta, shift)


def drop_blocks(diag: np.ndarray, couplings, drop: np.ndarray
                ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The coefficient stencil without the cells ``drop`` (their rows and columns deleted:
    ``diag = -1``, no couplings to them; a neighbour's diagonal keeps the flux, so the face
    acts as a Dirichlet one). For a Galerkin operator this is the Galerkin operator of the
    coarse space without those blocks, still SPD."""
    diag = np.where(drop, -1.0, diag)
    out = []
    for axis, k in enumerate(couplings):
        gone = drop.copy()
        if drop.shape[axis] > 1:  # the coupling c -> c + 1 goes when c + 1 goes
            gone[(slice(None),) * axis + (slice(0, -1),)] |= drop[
                (slice(None),) * axis + (slice(1, None),)]
        out.append(np.where(gone, 0.0, k))
    return diag, tuple(out)


def coarsen_flags(flags: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """Coarsen a flag array by ``factors`` (1 or 2 per axis) with the AIR > FLUID > SOLID rule.

    Examples
    --------
    >>> import numpy as np
    >>> f = np.array([[0, 1, 1], [1, 1, 2]], dtype=np.int8)
    >>> coarsen_flags(f, (2, 2)).tolist()
    [[0, 2]]
    """
    coarse_shape = _coarse_shape(flags.shape, factors)
    padded = np.full(tuple(f * n for f, n in zip(factors, coarse_shape, strict=True)),
                     codes.SOLID, dtype=np.int8)
    padded[tuple(slice(0, n) for n in flags.shape)] = flags
    split = []
    for n, f in zip(coarse_shape, factors, strict=True):
        split += [n, f]
    blocks = padded.reshape(split)
    axes = tuple(range(1, 2 * flags.ndim, 2))
    any_air = (blocks == codes.AIR).any(axis=axes)
    any_fluid = (blocks == codes.FLUID).any(axis=axes)
    out = np.full(coarse_shape, codes.SOLID, dtype=np.int8)
    out[any_fluid] = codes.FLUID
    out[any_air] = codes.AIR
    return out


def padded3(flags3: np.ndarray, boundary: int, two_d: bool) -> np.ndarray:
    """3-D flags padded by the boundary's code; a 2-D grid's third axis walled off."""
    fp = np.pad(flags3, 1, constant_values=boundary)
    if two_d:  # the third axis of a 2-D grid is walled off: no flux, no extra diagonal
        fp[:, :, 0] = codes.SOLID
        fp[:, :, -1] = codes.SOLID
    return fp


def band(flags3: np.ndarray, code: np.ndarray, boundary: int) -> tuple[tuple, tuple]:
    """FLUID cells next to a SOLID or AIR cell (domain walls do not count), split by
    colour: ``(red (i, j, k), black (i, j, k))``."""
    pad = codes.AIR if boundary == codes.AIR else codes.FLUID
    fp = np.pad(flags3, 1, constant_values=pad)
    near = np.zeros(flags3.shape, dtype=bool)
    for axis in range(3):
        for lo in (0, 2):
            s = [slice(1, -1)] * 3
            s[axis] = slice(lo, lo + flags3.shape[axis])
            near |= fp[tuple(s)] != codes.FLUID
    cells = np.nonzero(near & (code > 0))
    colour = (cells[0] + cells[1] + cells[2]) % 2
    return (tuple(np.ascontiguousarray(c[colour == 0]) for c in cells),
            tuple(np.ascontiguousarray(c[colour == 1]) for c in cells))


def coefficients3(grid, shape3) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """The grid's coefficient form as 3-D arrays (a 2-D grid gets a zero third coupling)."""
    diag, couplings = grid.coefficients()
    diag = diag.reshape(shape3)
    couplings = tuple(k.reshape(shape3) for k in couplings)
    if len(couplings) == 2:
        couplings = (*couplings, np.zeros(shape3))
    return diag, couplings
