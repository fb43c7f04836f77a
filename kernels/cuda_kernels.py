"""CUDA kernels on CuPy arrays: stencil mat-vecs, fused vector updates and multigrid.

Each function has the name, signature and result of its namesake in
:mod:`dcdm.kernels.cpu` / :mod:`dcdm.kernels.cpu_mg` and computes what
:mod:`dcdm.kernels.reference` computes (the tests use the reference as the oracle);
the arrays are C-contiguous CuPy arrays on the current device and every kernel runs
on the current stream. The ``coef_*`` kernels take the operator in coefficient form
(``diag`` and one coupling array per axis, in ``x``'s dtype; see
:func:`dcdm.kernels.stencil.face_coefficients`). Reductions (:func:`cg_update`,
:func:`dot`) accumulate in float64, finish on the device in the same launch,
deterministically, and bring only the scalar to the host. The multigrid kernels take 3-D
arrays (a 2-D grid as ``n0 x n1 x 1``, or 2-D arrays) and coarsening factors of 1 or 2 per
axis. Results agree with the reference to rounding (fused multiply-adds, summation order);
float32 denormals flush to zero (``-ftz=true``, as CuPy compiles).

The compiled kernels come from :mod:`dcdm.kernels.cuda_loader` (ahead-of-time fatbins or
NVRTC; see there); :func:`available` is the loader's, re-exported for the dispatch in
:mod:`dcdm.kernels`. Importing this module needs neither CuPy nor a GPU; using a kernel
without them raises an error that says what to install.

Examples
--------
>>> from dcdm.kernels import cuda_kernels
>>> isinstance(cuda_kernels.available(), bool)
True
>>> cuda_kernels.BLOCK
256
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .cuda_loader import SUFFIXES, available, get_kernel, require_device
from .sweeps import half_sweep_pairs

# the kernel set of dcdm.kernels.cpu / cpu_mg / xp, and the loader's check for the dispatch
__all__ = ["available", "axpy", "cg_update", "coef_matvec", "coef_rbgs_cells", "coef_rbgs_pair",
           "coef_rbgs_sweep",
           "coef_residual_restrict", "dot", "laplacian_matvec", "laplacian_matvec_fluid",
           "prolong_add", "rbgs_cells", "rbgs_pair", "rbgs_sweep", "residual_restrict", "xpby"]

BLOCK = 256  # DCDM_BLOCK in common.cuh
REDUCE_BLOCKS = 1024  # DCDM_REDUCE_BLOCKS in common.cuh
PLANE_MAX = 2**31  # the kernels index within one i-plane in 32 bits
_GRID_Y_MAX = 65535
# (device, stream) -> reduction buffers (partials, counter, result)
_WORKSPACES: dict[tuple[int, int], tuple] = {}


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
    ws = _WORKSPACES.get(key)
    if ws is None:
        ws = _WORKSPACES[key] = (cp.zeros(REDUCE_BLOCKS, dtype=np.float64),
                                 cp.zeros(1, dtype=np.uint32),
                                 cp.zeros(1, dtype=np.float64))
    return ws


def _reduce(cp: ModuleType, name: str, like, *args) -> float:
    n = like.size
    if n == 0:
        return 0.0
    ws = _workspace(cp)
    blocks = min(-(-n // BLOCK), REDUCE_BLOCKS)
    get_kernel(cp, name, like)((blocks,), (BLOCK,), (*args, np.int64(n), *ws))
    return float(ws[2].item())  # the one value that crosses to the host


def _elementwise(cp: ModuleType, name: str, like, *args) -> None:
    n = like.size
    if n:
        blocks = min(-(-n // BLOCK), 65536)
        get_kernel(cp, name, like)((blocks,), (BLOCK,), (*args, np.int64(n)))


# -- stencil mat-vecs ------------------------------------------------------------------------


def laplacian_matvec(fp, x, out, scale: float):
    """CUDA version of :func:`dcdm.kernels.reference.laplacian_matvec` (2-D or 3-D)."""
    cp = require_device()
    _arrays(cp, x, x=x, out=out)
    _codes(cp, tuple(n + 2 for n in x.shape), fp=fp)
    T = x.dtype.type
    if x.size == 0:
        return out
    if x.ndim == 3:
        n0, n1, n2 = x.shape
        get_kernel(cp, "laplacian3", x)(_grid(n1 * n2, n0), (BLOCK,),
                                        (fp, x, out, np.int64(n0), np.uint32(n1), np.uint32(n2),
                                         T(scale)))
    elif x.ndim == 2:
        n0, n1 = x.shape
        rows, plane = (1, n0 * n1) if n0 * n1 < PLANE_MAX else (n0, n1)
        get_kernel(cp, "laplacian2", x)(_grid(plane, rows), (BLOCK,),
                                        (fp, x, out, np.int64(rows), np.uint32(plane),
                                         np.uint32(n1), T(scale)))
    else:
        raise ValueError(f"x must be a 2-D or 3-D grid-shaped array, got shape {x.shape}")
    return out


def laplacian_matvec_fluid(code, x, out, scale: float):
    """CUDA version of :func:`dcdm.kernels.reference.laplacian_matvec_fluid` (2-D or 3-D)."""
    cp = require_device()
    _arrays(cp, x, x=x, out=out)
    _codes(cp, x.shape, code=code)
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be a 2-D or 3-D grid-shaped array, got shape {x.shape}")
    if x.size == 0:
        return out
    (n0, n1, n2), _ = _as3d(x.shape)
    get_kernel(cp, "fluid3", x)(_grid(n1 * n2, n0), (BLOCK,),
                                (code, x, out, np.int64(n0), np.uint32(n1), np.uint32(n2),
                                 x.dtype.type(scale)))
    return out


# -- fused vector updates --------------------------------------------------------------------


def cg_update(x, r, p, Ap, alpha: float) -> float:
    """Fused ``x += alpha p; r -= alpha Ap; return r . r`` in one pass (one launch)."""
    cp = require_device()
    _arrays(cp, x, x=x, r=r, p=p, Ap=Ap)
    return _reduce(cp, "cg_update", x, x, r, p, Ap, x.dtype.type(alpha))


def xpby(z, beta: float, p):
    """``p = z + beta p`` in place, one pass; returns ``p``."""
    cp = require_device()
    _arrays(cp, p, z=z, p=p)
    _elementwise(cp, "xpby", p, z, p.dtype.type(beta), p)
    return p


def dot(x, y) -> float:
    """``x . y`` accumulated in float64, as a Python float."""
    cp = require_device()
    _arrays(cp, x, x=x, y=y)
    return _reduce(cp, "dot", x, x, y)


def axpy(alpha: float, x, y):
    """``y += alpha x`` in place, one pass; returns ``y``."""
    cp = require_device()
    _arrays(cp, y, x=x, y=y)
    _elementwise(cp, "axpy", y, y.dtype.type(alpha), x, y)
    return y


# -- multigrid -------------------------------------------------------------------------------


def _shift_args(cp: ModuleType, x, shift) -> tuple[str, tuple]:
    """The kernel suffix and leading arguments for an optional diagonal ``shift``."""
    if shift is None:
        return "", ()
    _arrays(cp, x, shift=shift)
    return "_shift", (shift,)


def rbgs_sweep(code, x, b, scale: float, color: int, shift=None) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.rbgs_sweep` (in place on ``x``)."""
    cp = require_device()
    _arrays(cp, x, x=x, b=b)
    _codes(cp, x.shape, code=code)
    suffix, extra = _shift_args(cp, x, shift)
    if color not in (0, 1):
        raise ValueError(f"color must be 0 or 1, got {color!r}")
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be a 2-D or 3-D grid-shaped array, got shape {x.shape}")
    if x.size == 0:
        return
    (n0, n1, n2), _ = _as3d(x.shape)
    get_kernel(cp, "rbgs3" + suffix, x)(_grid(n1 * ((n2 + 1) // 2), n0), (BLOCK,),
                                        (code, *extra, x, b, x.dtype.type(1.0 / scale),
                                         np.int32(color), np.int64(n0), np.uint32(n1),
                                         np.uint32(n2)))


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
                      work=None, shift=None) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.residual_restrict`.

    The fine residual is computed inside the restriction, once per fine cell, so
    ``work`` is not needed (accepted for the common signature, unused).
    """
    cp = require_device()
    _arrays(cp, x_f, x_f=x_f, b_f=b_f)
    _arrays(cp, b_c, b_c=b_c)
    if b_c.dtype != x_f.dtype:
        raise ValueError(f"b_c has dtype {b_c.dtype}, x_f {x_f.dtype}; they must match")
    _codes(cp, x_f.shape, code_f=code_f)
    _codes(cp, b_c.shape, code_c=code_c)
    suffix, extra = _shift_args(cp, x_f, shift)
    (n0, n1, n2), (N0, N1, N2), shifts = _mg_dims(x_f.shape, b_c.shape, factors)
    if b_c.size == 0:
        return
    T = x_f.dtype.type
    args = (code_f, *extra, x_f, b_f, T(scale_f), np.int64(n0), np.uint32(n1), np.uint32(n2),
            code_c, b_c, np.int64(N0), np.uint32(N1), np.uint32(N2),
            *(np.int32(s) for s in shifts), T(weight))
    get_kernel(cp, "restrict3" + suffix, x_f)(_grid(N1 * N2, N0), (BLOCK,), args)


def prolong_add(x_c, code_f, x_f, factors) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.prolong_add` (``x_f += P x_c``);
    ``code_f`` the int8 stencil code or a coefficient stencil's ``diag`` (``x_f``'s dtype)."""
    cp = require_device()
    _arrays(cp, x_f, x_f=x_f)
    _arrays(cp, x_c, x_c=x_c)
    if x_c.dtype != x_f.dtype:
        raise ValueError(f"x_c has dtype {x_c.dtype}, x_f {x_f.dtype}; they must match")
    coef = getattr(code_f, "dtype", None) != np.int8  # a coefficient stencil's diag
    if coef:
        _arrays(cp, x_f, code_f=code_f)
    else:
        _codes(cp, x_f.shape, code_f=code_f)
    (n0, n1, n2), (_, N1, N2), shifts = _mg_dims(x_f.shape, x_c.shape, factors)
    if x_f.size == 0:
        return
    name = "coef_prolong3" if coef else "prolong3"
    get_kernel(cp, name, x_f)(_grid(n1 * n2, n0), (BLOCK,),
                                    (x_c, code_f, x_f, np.int64(n0), np.uint32(n1), np.uint32(n2),
                                     np.uint32(N1), np.uint32(N2),
                                     *(np.int32(s) for s in shifts)))


def rbgs_cells(code, x, b, scale: float, cells, shift=None) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.rbgs_cells`: Gauss-Seidel update of the
    listed cells ``cells = (ii, jj, kk)`` (int64 CuPy arrays, all cells of one colour)."""
    cp = require_device()
    _arrays(cp, x, x=x, b=b)
    _codes(cp, x.shape, code=code)
    if x.ndim != 3:
        raise ValueError(f"x must be a 3-D grid-shaped array, got shape {x.shape}")
    suffix, extra = _shift_args(cp, x, shift)
    m = _check_cells(cp, cells)
    if m == 0:
        return
    n0, n1, n2 = x.shape
    get_kernel(cp, "rbgs_cells3" + suffix, x)((min(-(-m // BLOCK), 65536),), (BLOCK,),
                                     (code, *extra, x, b, x.dtype.type(1.0 / scale),
                                      *(cp.ascontiguousarray(a) for a in cells), np.int64(m),
                                      np.int64(n0), np.uint32(n1), np.uint32(n2)))


def _check_cells(cp: ModuleType, cells) -> int:
    """Check a cell list ``(ii, jj, kk)`` of 1-D int64 CuPy arrays; return its length."""
    if len(cells) != 3:
        raise ValueError(f"cells must be three index arrays (ii, jj, kk), got {len(cells)}")
    for name, a in zip(("ii", "jj", "kk"), cells, strict=True):
        if (not isinstance(a, cp.ndarray) or a.dtype != np.int64 or a.ndim != 1
                or a.shape != cells[0].shape):
            raise TypeError(f"cells ({name}) must be 1-D int64 CuPy arrays of one length")
    return cells[0].size


# -- coefficient stencils (face weights, Galerkin coarse levels) ------------------------------


def _coef_args(cp: ModuleType, x, diag, couplings, perm) -> tuple:
    """``(diag, k0, k1, k2)`` for the kernels, checked against ``x``: the couplings permuted
    like the dimensions (``perm`` of :func:`_as3d`); an axis ``x`` lacks (size 1, never
    read) gets ``diag`` in place of a coupling array."""
    _arrays(cp, x, diag=diag)
    if not isinstance(couplings, (tuple, list)) or len(couplings) != x.ndim:
        got = len(couplings) if isinstance(couplings, (tuple, list)) else type(couplings)
        raise ValueError(f"couplings must hold one array per axis of x ({x.ndim}), got {got}")
    _arrays(cp, x, **{f"couplings[{a}]": k for a, k in enumerate(couplings)})
    ks = (*couplings, *(diag,) * (3 - x.ndim))
    return (diag, *(ks[a] for a in perm))


def _dims(x) -> tuple:
    """The 3-D kernels' dimensions of ``x`` (2-D or 3-D) and the axis permutation."""
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be a 2-D or 3-D grid-shaped array, got shape {x.shape}")
    return _as3d(x.shape)


def coef_matvec(diag, couplings, x, out, scale: float):
    """CUDA version of :func:`dcdm.kernels.reference.coef_matvec` (2-D or 3-D)."""
    cp = require_device()
    _arrays(cp, x, x=x, out=out)
    (n0, n1, n2), perm = _dims(x)
    args = _coef_args(cp, x, diag, couplings, perm)
    if x.size:
        get_kernel(cp, "coef3", x)(_grid(n1 * n2, n0), (BLOCK,),
                                   (*args, x, out, np.int64(n0), np.uint32(n1), np.uint32(n2),
                                    x.dtype.type(scale)))
    return out


def coef_rbgs_sweep(diag, couplings, x, b, scale: float, color: int) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.coef_rbgs_sweep` (in place on ``x``)."""
    cp = require_device()
    _arrays(cp, x, x=x, b=b)
    if color not in (0, 1):
        raise ValueError(f"color must be 0 or 1, got {color!r}")
    (n0, n1, n2), perm = _dims(x)
    args = _coef_args(cp, x, diag, couplings, perm)
    if x.size:
        get_kernel(cp, "coef_rbgs3", x)(_grid(n1 * ((n2 + 1) // 2), n0), (BLOCK,),
                                        (*args, x, b, x.dtype.type(1.0 / scale), np.int32(color),
                                         np.int64(n0), np.uint32(n1), np.uint32(n2)))


def coef_residual_restrict(diag_f, couplings_f, x_f, b_f, scale_f: float, diag_c, b_c, factors,
                           weight: float, work=None) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.coef_residual_restrict` (the fine
    residual is computed inside the restriction: ``work`` is accepted, unused)."""
    cp = require_device()
    _arrays(cp, x_f, x_f=x_f, b_f=b_f)
    _arrays(cp, b_c, b_c=b_c, diag_c=diag_c)
    if b_c.dtype != x_f.dtype:
        raise ValueError(f"b_c has dtype {b_c.dtype}, x_f {x_f.dtype}; they must match")
    (n0, n1, n2), (N0, N1, N2), shifts = _mg_dims(x_f.shape, b_c.shape, factors)
    args = _coef_args(cp, x_f, diag_f, couplings_f, _as3d(x_f.shape)[1])
    if b_c.size == 0:
        return
    T = x_f.dtype.type
    get_kernel(cp, "coef_restrict3", x_f)(
        _grid(N1 * N2, N0), (BLOCK,),
        (*args, x_f, b_f, T(scale_f), np.int64(n0), np.uint32(n1), np.uint32(n2), diag_c, b_c,
         np.int64(N0), np.uint32(N1), np.uint32(N2), *(np.int32(s) for s in shifts), T(weight)))


def coef_rbgs_cells(diag, couplings, x, b, scale: float, cells) -> None:
    """CUDA version of :func:`dcdm.kernels.reference.coef_rbgs_cells` (3-D; ``cells`` as in
    :func:`rbgs_cells`)."""
    cp = require_device()
    _arrays(cp, x, x=x, b=b)
    if x.ndim != 3:
        raise ValueError(f"x must be a 3-D grid-shaped array, got shape {x.shape}")
    args = _coef_args(cp, x, diag, couplings, (0, 1, 2))
    m = _check_cells(cp, cells)
    if m == 0:
        return
    n0, n1, n2 = x.shape
    get_kernel(cp, "coef_rbgs_cells3", x)((min(-(-m // BLOCK), 65536),), (BLOCK,),
                                          (*args, x, b, x.dtype.type(1.0 / scale),
                                           *(cp.ascontiguousarray(a) for a in cells),
                                           np.int64(m), np.int64(n0), np.uint32(n1),
                                           np.uint32(n2)))


# full sweeps as two half-sweeps (only the Numba back-end fuses them)
rbgs_pair, coef_rbgs_pair = half_sweep_pairs(rbgs_sweep, coef_rbgs_sweep)
