"""The DCDM network as a (non-linear) preconditioner for flexible CG (``M="neural"``).

``apply(r) = ||r|| f(r / ||r||)``: the network sees a unit-norm residual, as in
training, and the output is scaled back so that the map is positively
homogeneous. It is not linear and not symmetric, so :func:`dcdm.solvers.cg`
refuses it; use ``method="fcg"`` (or ``method="dcdm"``, which builds its own).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .base import Preconditioner, check_array, require_grid

__all__ = ["Neural"]


class Neural(Preconditioner):
    """The learned preconditioner.

    Parameters
    ----------
    model : None, str, path or callable
        As ``model`` of :func:`dcdm.solvers.dcdm`: ``None`` picks the shipped
        weights by the grid's dimensionality.
    network_dtype : {None, "float32", "bfloat16", "float16"}
        As in :func:`dcdm.solvers.dcdm`: the precision of the forward pass only.

    Examples
    --------
    >>> import dcdm
    >>> from dcdm.problems import gallery
    >>> A, b = gallery.smoke((16, 16), obstacles=1)
    >>> dcdm.solve(A, b, method="fcg", M="neural", model=lambda r: r, rtol=1e-6).converged
    True
    """

    name = "neural"
    is_linear = False
    is_spd = False
    preserves_support = False

    def __init__(self, model=None, network_dtype: str | None = None):
        super().__init__()
        from ..dcdm import check_network_dtype

        self.model = model
        self.network_dtype = check_network_dtype(network_dtype)
        self.network_seconds = 0.0
        self.calls = 0

    def _build(self, A) -> None:
        grid = require_grid(A, "M='neural'", ": the network acts on the grid")
        from ..dcdm import _resolve_network

        self._grid = grid
        self._net = _resolve_network(self.model, grid, dtype=self.network_dtype)
        self._shape = grid.shape
        self._fluid = grid.fluid.reshape(-1)
        self._moved: dict[str, Any] = {}

    def _network_for(self, r):
        """The network on ``r``'s device (a loaded network is moved there once)."""
        if isinstance(r, np.ndarray) or not (hasattr(self._net, "to")
                                             and hasattr(self._net, "device")):
            return self._net
        from ..dcdm import _torch_device

        dev = _torch_device(r)
        net = self._moved.get(dev)
        if net is None:
            net = self._moved[dev] = self._net.to(dev)
        return net

    def apply(self, r, out=None):
        if not isinstance(r, np.ndarray):
            check_array(r, "M='neural'")
            return self._apply_device(r, out)
        if out is None:
            out = np.empty_like(r)
        rn = math.sqrt(float(r @ r))
        if rn == 0.0:
            out[...] = 0
            return out
        t = time.perf_counter()
        q = self._net((r / rn).reshape(self._shape))
        self.network_seconds += time.perf_counter() - t
        self.calls += 1
        out[...] = np.asarray(q, dtype=r.dtype).reshape(-1) * rn
        out[~self._fluid] = 0
        return out

    def _apply_device(self, r, out):
        """:meth:`apply` in ``r``'s namespace: the network runs on ``r``'s device."""
        from array_api_compat import array_namespace

        from dcdm import kernels

        xp = array_namespace(r)
        if out is None:
            out = xp.empty_like(r)
        rn = math.sqrt(kernels.dot(r, r))
        if rn == 0.0:
            out[...] = 0
            return out
        net = self._network_for(r)
        t = time.perf_counter()
        q = net(xp.reshape(r / rn, self._shape))
        self.network_seconds += time.perf_counter() - t
        self.calls += 1
        fluid = xp.reshape(self._grid.kernel_arrays(r)[2], (-1,))
        q = xp.reshape(xp.asarray(q, dtype=r.dtype), (-1,)) * rn
        out[...] = xp.where(fluid, q, xp.zeros_like(q))
        return out

    @property
    def stats(self) -> dict[str, Any]:
        s = super().stats
        s.update(network_seconds=self.network_seconds, network_calls=self.calls,
                 model=getattr(self._net, "name", type(self._net).__name__),
                 network_dtype=getattr(self._net, "dtype_name", None))
        return s
