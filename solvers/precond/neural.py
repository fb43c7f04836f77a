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

from .base import Preconditioner, require_grid

__all__ = ["Neural"]


class Neural(Preconditioner):
    """The learned preconditioner.

    Parameters
    ----------
    model : None, str, path or callable
        As ``model`` of :func:`dcdm.solvers.dcdm`: ``None`` picks the shipped
        weights by the grid's dimensionality.

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

    def __init__(self, model=None):
        super().__init__()
        self.model = model
        self.network_seconds = 0.0
        self.calls = 0

    def _build(self, A) -> None:
        grid = require_grid(A, "M='neural'", ": the network acts on the grid")
        from ..dcdm import _resolve_network

        self._net = _resolve_network(self.model, grid)
        self._shape = grid.shape
        self._fluid = grid.fluid.reshape(-1)

    def apply(self, r, out=None):
        if not isinstance(r, np.ndarray):
            raise TypeError(f"M='neural' runs on NumPy arrays for now, got {type(r).__name__}")
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

    @property
    def stats(self) -> dict[str, Any]:
        s = super().stats
        s.update(network_seconds=self.network_seconds, network_calls=self.calls,
                 model=getattr(self._net, "name", type(self._net).__name__))
        return s
