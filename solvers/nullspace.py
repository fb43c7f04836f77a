"""Constant null spaces of singular (all-Neumann) Poisson-type systems.

A pure-Neumann pressure region (FLUID cells that reach no AIR cell) makes the
operator singular with the constant on that region in its null space. Krylov
methods still converge on such systems if the right-hand side is consistent
(orthogonal to the null space) and the iterates are kept orthogonal to it:
:class:`ConstantNullSpace` does that projection, one region at a time.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from dcdm.kernels import arrays

__all__ = ["ConstantNullSpace", "detect_nullspace"]


class ConstantNullSpace:
    """Null space spanned by the indicator vectors of disjoint index sets.

    Parameters
    ----------
    labels : ndarray of int, shape (n,)
        ``labels[i] = k >= 0`` puts unknown ``i`` in region ``k``; ``-1`` means
        the unknown is in no singular region.

    Examples
    --------
    >>> import numpy as np
    >>> ns = ConstantNullSpace(np.array([0, 0, -1, 1, 1]))
    >>> ns.project(np.array([1.0, 3.0, 5.0, 2.0, 2.0])).tolist()
    [-1.0, 1.0, 5.0, 0.0, 0.0]
    """

    def __init__(self, labels: np.ndarray):
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.labels = labels
        self.n_regions = int(labels.max()) + 1 if labels.size else 0
        if self.n_regions < 1:
            raise ValueError("labels must name at least one region (a label >= 0)")
        self._inside = labels >= 0
        self._counts = np.bincount(labels[self._inside], minlength=self.n_regions)
        self._single = bool(self._inside.all()) and self.n_regions == 1

    @classmethod
    def of_regions(cls, labels: np.ndarray) -> ConstantNullSpace | None:
        """The null space of the regions named by ``labels >= 0`` (any region ids; ``-1``:
        in no region), renumbered ``0..k-1`` in increasing id order; ``None`` if there are
        none.

        Examples
        --------
        >>> ConstantNullSpace.of_regions(np.array([7, -1, 3, 7])).labels.tolist()
        [1, -1, 0, 1]
        >>> ConstantNullSpace.of_regions(np.array([-1, -1])) is None
        True
        """
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        inside = labels >= 0
        if not inside.any():
            return None
        _, compact = np.unique(labels[inside], return_inverse=True)
        out = np.full(labels.shape, -1, dtype=np.int64)
        out[inside] = compact
        return cls(out)

    @property
    def dimension(self) -> int:
        """Number of independent null vectors (one per region)."""
        return self.n_regions

    def means(self, v) -> np.ndarray:
        """Mean of ``v`` over each region."""
        v = np.asarray(v)
        sums = np.bincount(self.labels[self._inside], weights=v[self._inside],
                           minlength=self.n_regions)
        return sums / self._counts

    def project(self, v, out=None):
        """Return ``v`` minus its mean on each region (``out`` may be ``v``).

        ``v`` may be any array-API array (torch, CuPy, ...): the projection then runs
        in its namespace on its device (:class:`_DeviceProjection`).
        """
        if not isinstance(v, np.ndarray):
            return self._on(v).project(v, out)
        if out is None:
            out = v.copy()
        elif out is not v:
            out[...] = v
        if self._single:
            out -= out.mean()
            return out
        m = self.means(out)
        out[self._inside] -= m[self.labels[self._inside]].astype(out.dtype, copy=False)
        return out

    def residual(self, v) -> float:
        """Norm of the component of ``v`` in the null space (0 for a consistent ``v``)."""
        if not isinstance(v, np.ndarray):
            return self._on(v).residual(v)
        m = self.means(v)
        return float(np.sqrt(np.sum(m**2 * self._counts)))

    def _on(self, v) -> _DeviceProjection:
        """The projection's arrays in ``v``'s namespace, on its device, of its dtype (cached)."""
        cache = self.__dict__.setdefault("_device", arrays.DeviceCache())
        return cache.get(v, lambda: _DeviceProjection(self, v))

    def __repr__(self) -> str:
        return f"ConstantNullSpace(regions={self.n_regions}, size={int(self._inside.sum())})"


class _DeviceProjection:
    """:meth:`ConstantNullSpace.project` for the arrays of one namespace and device.

    The region means are reductions in the array's namespace: one masked sum per region
    for a few regions (a tree reduction, as accurate as ``mean``), a scatter-add
    (torch ``index_add_``, CuPy ``bincount``) for many.
    """

    #: up to this many regions, one masked reduction each
    LOOP_REGIONS = 8

    def __init__(self, ns: ConstantNullSpace, like):
        from array_api_compat import array_namespace

        asarray_like = arrays.asarray_like
        self.xp = array_namespace(like)
        self.single = ns._single
        self.n_regions = ns.n_regions
        dtype = arrays.host_dtype(like.dtype)
        self.counts = asarray_like(ns._counts, like, dtype)
        self.inside = asarray_like(ns._inside, like)
        self.labels = asarray_like(np.where(ns._inside, ns.labels, 0), like, np.int64)
        self.masks = None
        if not self.single and self.n_regions <= self.LOOP_REGIONS:
            self.masks = [asarray_like(ns.labels == k, like) for k in range(self.n_regions)]

    def means(self, v):
        xp = self.xp
        if self.single:
            return xp.reshape(xp.mean(v), (1,))
        zero = xp.zeros_like(v)
        if self.masks is not None:
            sums = xp.stack([xp.sum(xp.where(m, v, zero)) for m in self.masks])
        else:
            sums = self._scatter_sums(xp.where(self.inside, v, zero))
        return sums / self.counts

    def _scatter_sums(self, w):
        mod = arrays.library(w)
        if mod == "torch":
            import torch

            out = torch.zeros(self.n_regions, dtype=w.dtype, device=w.device)
            return out.index_add_(0, self.labels, w)
        if mod == "cupy":
            import cupy

            return cupy.bincount(self.labels, weights=w, minlength=self.n_regions).astype(w.dtype)
        xp = self.xp
        return xp.stack([xp.sum(xp.where(self.labels == k, w, xp.zeros_like(w)))
                         for k in range(self.n_regions)])

    def project(self, v, out=None):
        xp = self.xp
        if out is None:
            out = xp.asarray(v, copy=True)
        elif out is not v:
            out[...] = v
        m = self.means(out)
        if self.single:
            out -= m[0]
        else:
            out -= xp.where(self.inside, xp.take(m, self.labels), xp.zeros_like(out))
        return out

    def residual(self, v) -> float:
        m = self.means(v)
        return float(self.xp.sqrt(self.xp.sum(m**2 * self.counts)))


def detect_nullspace(A: sp.sparray | sp.spmatrix,
                     rtol: float | None = None) -> ConstantNullSpace | None:
    """Find constant null vectors of a graph-Laplacian-like sparse matrix.

    A connected component (in the graph of ``A``) whose every row sums to zero, up to
    ``rtol`` times the sum of the row's absolute values (default ``16 eps`` of ``A``'s
    dtype: the rounding of the sum, no more), carries the constant in the null space.
    This covers the pure-Neumann pressure matrices of fluid codes; it finds no other kind
    of null vector. A nearly singular matrix (Neumann + ``1e-13 I``) is not singular.

    Returns
    -------
    ConstantNullSpace or None
        ``None`` when no such component exists.
    """
    A = sp.csr_array(A)
    if rtol is None:
        dtype = A.dtype if np.issubdtype(A.dtype, np.floating) else np.float64
        rtol = 16 * float(np.finfo(dtype).eps)
    rowsum = np.abs(np.asarray(A.sum(axis=1)).ravel())
    rowabs = np.asarray(abs(A).sum(axis=1)).ravel()
    zero = rowsum <= rtol * rowabs
    # isolated rows with a zero diagonal are not a constant null vector a solver can use
    if not zero.any():
        return None
    n, comp = connected_components(A, directed=False)
    bad = np.bincount(comp, weights=~zero, minlength=n) > 0
    empty_rows = np.diff(A.indptr) == 0
    bad |= np.bincount(comp, weights=empty_rows, minlength=n) > 0
    return ConstantNullSpace.of_regions(np.where(bad[comp], -1, comp))
