"""NumPy reference kernels: the oracle every fast kernel is tested against.

Everything here is written for clarity, not speed. The stencil is the one
:mod:`dcdm.kernels.stencil` defines (``stencil_code`` and ``laplacian_diagonal`` are
that module's, re-exported here): a FLUID cell's row is ``scale * (d * x_c - sum of
x over FLUID face neighbours)`` with ``d`` the number of non-SOLID face
neighbours (AIR neighbours and an AIR domain boundary count, SOLID ones and a
SOLID boundary do not); a non-FLUID cell's row is the identity.

The flag array ``fp`` is padded by one cell on every side with the domain
boundary's cell type, so no kernel needs bounds checks.
"""

from __future__ import annotations

import numpy as np

from .codes import FLUID, SOLID
from .stencil import diagonal as laplacian_diagonal
from .stencil import neighbour_slices as _neighbour_slices
from .stencil import stencil_code
from .sweeps import half_sweep_pairs

__all__ = [
    "axpy",
    "block_sum",
    "cg_update",
    "coef_matvec",
    "coef_rbgs_cells",
    "coef_rbgs_pair",
    "coef_rbgs_sweep",
    "coef_residual_restrict",
    "dot",
    "galerkin_coarsen",
    "galerkin_coarsen_code",
    "laplacian_diagonal",
    "laplacian_matvec",
    "laplacian_matvec_fluid",
    "rbgs_pair",
    "stencil_code",
    "xpby",
]


def laplacian_matvec(fp: np.ndarray, x: np.ndarray, out: np.ndarray, scale: float) -> np.ndarray:
    """``out = L x`` for the masked 5/7-point Laplacian on grid-shaped ``x``.

    Parameters
    ----------
    fp : ndarray of int8, shape ``x.shape + 2``
        Padded cell flags.
    x, out : ndarray, grid shape
        Input and output; must not overlap.
    scale : float
        ``1 / spacing**2``.
    """
    ndim = x.ndim
    inner = (slice(1, -1),) * ndim
    xp = np.pad(x, 1)
    diag = np.zeros(x.shape, dtype=x.dtype)
    acc = np.zeros(x.shape, dtype=x.dtype)
    for s in _neighbour_slices(ndim):
        nb = fp[s]
        diag += nb != SOLID
        acc += np.where(nb == FLUID, xp[s], 0)
    fluid = fp[inner] == FLUID
    out[...] = np.where(fluid, x.dtype.type(scale) * (diag * x - acc), x)
    return out


def laplacian_matvec_fluid(code: np.ndarray, x: np.ndarray, out: np.ndarray,
                           scale: float) -> np.ndarray:
    """``out = L x`` for ``x`` that is zero on every non-FLUID cell.

    Then a FLUID neighbour's value is ``x`` itself and every other neighbour
    (and the outside of the domain) contributes 0, so no neighbour flag is
    needed: ``out = scale * (d x - sum of the neighbours)`` on FLUID cells and
    ``0`` (which equals ``x``) elsewhere. ``code`` is :func:`stencil_code`.
    For an ``x`` with non-zero entries off FLUID cells the result is wrong;
    use :func:`laplacian_matvec`.
    """
    ndim = x.ndim
    xp = np.pad(x, 1)
    acc = np.zeros(x.shape, dtype=x.dtype)
    for s in _neighbour_slices(ndim):
        acc += xp[s]
    fluid = code >= 0
    out[...] = x.dtype.type(scale) * (np.maximum(code, 0) * x - fluid * acc)
    return out


def cg_update(x, r, p, Ap, alpha: float) -> float:
    """``x += alpha p``, ``r -= alpha Ap``, return the new ``r . r`` (in place)."""
    x += alpha * p
    r -= alpha * Ap
    return float(r @ r)


def xpby(z, beta: float, p):
    """``p = z + beta p`` in place; returns ``p``."""
    p *= beta
    p += z
    return p


def dot(x, y) -> float:
    """``x . y`` as a Python float."""
    return float(x @ y)


def axpy(alpha: float, x, y):
    """``y += alpha x`` in place; returns ``y``."""
    y += alpha * x
    return y


# -- multigrid (3-D arrays; a 2-D grid is run as n0 x n1 x 1 with SOLID k-padding) ------------


def _neighbour_sum(x: np.ndarray) -> np.ndarray:
    """Sum of the 2*ndim face neighbours of every cell, zero outside the array."""
    xp = np.pad(x, 1)
    acc = np.zeros_like(x)
    for s in _neighbour_slices(x.ndim):
        acc += xp[s]
    return acc


def rbgs_sweep(code: np.ndarray, x: np.ndarray, b: np.ndarray, scale: float, color: int,
               shift: np.ndarray | None = None) -> None:
    """One Gauss-Seidel half-sweep over the cells with ``(i + j + k) % 2 == color``.

    Solves row ``c`` of ``L x = b`` for ``x_c`` on FLUID cells with ``d_c > 0``
    (``x`` must vanish off FLUID cells, as in :func:`laplacian_matvec_fluid`).
    Cells of one colour only couple to the other colour, so the update is exact
    Gauss-Seidel in any order.

    ``shift`` (grid-shaped, >= 0, zero off FLUID cells) adds a diagonal term: the
    operator is ``scale * ((d + shift) x - sum of the neighbours)``, i.e. ``L +
    diag(scale * shift)`` (the multigrid of ``A + D`` passes ``shift = D / scale``).
    With a shift, FLUID cells with ``d_c == 0`` and ``shift_c > 0`` are updated too.
    """
    idx = np.indices(x.shape).sum(axis=0) % 2 == color
    diag = _diagonal(code, shift, x.dtype)
    upd = idx & (code >= 0) & (diag > 0)
    s = _neighbour_sum(x)
    x[upd] = (b[upd] / x.dtype.type(scale) + s[upd]) / diag[upd]


def _diagonal(code: np.ndarray, shift: np.ndarray | None, dtype) -> np.ndarray:
    """The stencil's diagonal ``d + shift`` (``d`` clipped at 0 off FLUID cells)."""
    d = np.maximum(code, 0).astype(dtype)
    return d if shift is None else d + shift.astype(dtype)


def block_sum(a: np.ndarray, factors) -> np.ndarray:
    """The sum of ``a`` over each coarse cell's children, blocks of ``factors`` (1 or 2 per
    axis; the last block of an odd axis has one child, missing children count 0)."""
    coarse = tuple(-(-n // f) for n, f in zip(a.shape, factors, strict=True))
    padded = np.zeros(tuple(f * n for f, n in zip(factors, coarse, strict=True)), dtype=a.dtype)
    padded[tuple(slice(0, n) for n in a.shape)] = a
    split = [m for n, f in zip(coarse, factors, strict=True) for m in (n, f)]
    return padded.reshape(split).sum(axis=tuple(range(1, 2 * a.ndim, 2)))


def residual_restrict(code_f, x_f, b_f, scale_f: float, code_c, b_c, factors, weight: float,
                      work=None, shift=None):
    """``b_c = weight * sum over children of (b_f - L_f x_f)`` on coarse FLUID cells, else 0.

    ``factors`` is the coarsening factor (1 or 2) per axis; a coarse cell's
    children are ``f*I .. f*I + f - 1`` clipped to the fine grid. ``shift`` as in
    :func:`rbgs_sweep` (the fine operator is ``L_f + diag(scale_f * shift)``).
    """
    r = np.empty_like(x_f)
    laplacian_matvec_fluid(code_f, x_f, r, scale_f)
    if shift is not None:
        r += x_f.dtype.type(scale_f) * shift * x_f
    r = np.where(code_f >= 0, b_f - r, 0)
    blocks = block_sum(r, factors)
    b_c[...] = np.where(code_c >= 0, weight * blocks, 0)


def prolong_add(x_c, code_f, x_f, factors) -> None:
    """``x_f += P x_c``: every FLUID fine cell takes its parent's value."""
    up = x_c
    for axis, f in enumerate(factors):
        up = np.repeat(up, f, axis=axis)
    up = up[tuple(slice(0, n) for n in x_f.shape)]
    x_f += np.where(code_f >= 0, up, 0)


def rbgs_cells(code, x, b, scale: float, cells, shift=None) -> None:
    """Gauss-Seidel update of the listed cells ``cells = (i, j, k)``, all of one colour
    (so no listed cell neighbours another and the order does not matter); ``shift`` as
    in :func:`rbgs_sweep`."""
    ii, jj, kk = cells
    s = _neighbour_sum(x)[ii, jj, kk]
    diag = _diagonal(code, shift, x.dtype)[ii, jj, kk]
    upd = (code[ii, jj, kk] >= 0) & (diag > 0)
    val = (b[ii, jj, kk] / x.dtype.type(scale) + s) / np.where(upd, diag, 1)
    x[ii[upd], jj[upd], kk[upd]] = val[upd]


def coarse_solve(kind: str, F, b, x) -> None:
    """Reference of :func:`dcdm.kernels.cpu_mg.coarse_solve`."""
    import scipy.linalg as sla

    if kind == "cholesky":
        x[...] = sla.cho_solve((F, True), b)
    else:
        x[...] = F @ b


# -- coefficient stencils (face weights, Galerkin coarse levels; see kernels.stencil) ----------


def _coupled_sum(couplings, x: np.ndarray) -> np.ndarray:
    """``sum_n K_{cn} x_n`` for every cell: each axis' couplings link ``c`` and ``c + e_a``."""
    acc = np.zeros_like(x)
    for axis, k in enumerate(couplings):
        lo = (slice(None),) * axis + (slice(0, x.shape[axis] - 1),)
        hi = (slice(None),) * axis + (slice(1, None),)
        acc[lo] += k[lo] * x[hi]
        acc[hi] += k[lo] * x[lo]
    return acc


def coef_matvec(diag, couplings, x, out, scale: float):
    """``out = L x`` for a coefficient stencil: ``scale * (diag x_c - sum_n K_cn x_n)`` where
    ``diag >= 0``, ``x_c`` (an identity row) where ``diag < 0``. Exact for any ``x`` (the
    couplings of non-FLUID cells are zero). ``couplings`` has one array per axis of ``x``."""
    val = x.dtype.type(scale) * (diag * x - _coupled_sum(couplings, x))
    out[...] = np.where(diag < 0, x, val)
    return out


def coef_rbgs_sweep(diag, couplings, x, b, scale: float, color: int) -> None:
    """One Gauss-Seidel half-sweep of ``L x = b`` (a coefficient stencil) over the cells with
    ``(sum of indices) % 2 == color`` and ``diag > 0``; as :func:`rbgs_sweep`."""
    idx = np.indices(x.shape).sum(axis=0) % 2 == color
    upd = idx & (diag > 0)
    s = _coupled_sum(couplings, x)
    x[upd] = (b[upd] / x.dtype.type(scale) + s[upd]) / diag[upd]


def coef_rbgs_cells(diag, couplings, x, b, scale: float, cells) -> None:
    """Gauss-Seidel update of the listed cells (one colour), as :func:`rbgs_cells`."""
    ii, jj, kk = cells
    s = _coupled_sum(couplings, x)[ii, jj, kk]
    d = diag[ii, jj, kk]
    upd = d > 0
    val = (b[ii, jj, kk] / x.dtype.type(scale) + s) / np.where(upd, d, 1)
    x[ii[upd], jj[upd], kk[upd]] = val[upd]


def coef_residual_restrict(diag_f, couplings_f, x_f, b_f, scale_f: float, diag_c, b_c, factors,
                           weight: float, work=None) -> None:
    """``b_c = weight * sum over children of (b_f - L_f x_f)`` where ``diag_c >= 0``, else 0;
    as :func:`residual_restrict` (``x_f`` and ``b_f`` vanish where ``diag_f < 0``)."""
    r = np.empty_like(x_f)
    coef_matvec(diag_f, couplings_f, x_f, r, scale_f)
    r = np.where(diag_f >= 0, b_f - r, 0)
    blocks = block_sum(r, factors)
    b_c[...] = np.where(diag_c >= 0, weight * blocks, 0)


# -- Galerkin coarsening of coefficient stencils (see dcdm.solvers.precond.coarsening) ----------


def galerkin_coarsen(diag, couplings, factors, beta: float, shift=None):
    """``beta P^T A P + P^T D P`` of a 3-D coefficient stencil ``A + D`` (``diag`` includes
    the shift ``D``, or ``shift`` is None), ``P`` piecewise constant over blocks of
    ``factors`` (1 or 2 per axis; 1 only on axes of length 1). Returns ``(diag_c,
    couplings_c)``: ``diag_c = -1`` where no child is active (``diag >= 0``); a coarse
    diagonal whose Laplacian part cancels to rounding of its children's sum is exactly 0."""
    active = diag >= 0
    d = np.where(active, diag, 0.0)
    lap = d if shift is None else d - np.where(active, shift, 0.0)
    internal = 0.0
    coarse_couplings = []
    for axis, k in enumerate(couplings):
        odd = (np.arange(diag.shape[axis]) % 2 == 1).reshape((-1,) + (1,) * (2 - axis))
        crossing = np.where(odd, k, 0.0) if factors[axis] == 2 else np.zeros_like(k)
        internal = internal + block_sum(k - crossing, factors)
        coarse_couplings.append(beta * block_sum(crossing, factors))
    total = block_sum(d, factors)
    diag_c = beta * (block_sum(lap, factors) - 2.0 * internal)
    diag_c = np.where(np.abs(diag_c) <= 1e-12 * beta * total, 0.0, diag_c)
    if shift is not None:
        diag_c = diag_c + block_sum(np.where(active, shift, 0.0), factors)
    diag_c = np.where(block_sum(active.astype(np.int32), factors) > 0, diag_c, -1.0)
    return diag_c, tuple(coarse_couplings)


def galerkin_coarsen_code(code, factors, beta: float, shift=None):
    """:func:`galerkin_coarsen` of the unweighted operator given by its 3-D stencil code
    (``code >= 0`` on FLUID cells, the diagonal count; FLUID neighbours couple with 1),
    plus the diagonal ``shift`` (stencil units) when given."""
    fluid = code >= 0
    diag = np.where(fluid, code.astype(np.float64), -1.0)
    if shift is not None:
        diag = np.where(fluid, diag + shift, diag)
    couplings = []
    for axis in range(3):
        k = np.zeros(code.shape)
        lo = (slice(None),) * axis + (slice(0, code.shape[axis] - 1),)
        hi = (slice(None),) * axis + (slice(1, None),)
        k[lo] = (fluid[lo] & fluid[hi]).astype(np.float64)
        couplings.append(k)
    return galerkin_coarsen(diag, couplings, factors, beta, shift)


# full sweeps as two half-sweeps (only the Numba back-end fuses them)
rbgs_pair, coef_rbgs_pair = half_sweep_pairs(rbgs_sweep, coef_rbgs_sweep)
