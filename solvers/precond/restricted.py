"""A grid preconditioner serving a :class:`~dcdm.solvers.restriction.RestrictedOperator`:
built on the full operator, applied through the restriction's scatter and gather."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Preconditioner

__all__ = ["RestrictedPreconditioner"]


class RestrictedPreconditioner(Preconditioner):
    """``P^T M P`` for a preconditioner ``M`` of the full operator (the scatter ``P`` of a
    :class:`~dcdm.solvers.restriction.RestrictedOperator`): linear and SPD when ``M`` is,
    on the kept unknowns. ``make_preconditioner`` builds it for the names that need a grid.
    """

    cpu_only = True  # the scatter and gather are NumPy

    def __init__(self, inner: Preconditioner, restriction: Any):
        super().__init__()
        self.inner, self.restriction = inner, restriction
        self.name = inner.name
        self.is_linear, self.is_spd = inner.is_linear, inner.is_spd
        self.preserves_support = True

    def build(self, A) -> Preconditioner:
        super().build(A)
        self.setup_time = self.inner.setup_time
        return self

    def apply(self, r, out=None):
        self._require_numpy(r)
        R = self.restriction
        full = self.__dict__.get("_full")
        if full is None:  # one full-length vector, reused: its entries off R.index stay 0
            full = self._full = np.zeros(R.base.shape[0], dtype=R.dtype)
        z = np.asarray(self.inner.apply(R.scatter(r, out=full))).take(R.index)
        if out is None:
            return z.astype(r.dtype, copy=False)
        out[...] = z
        return out

    @property
    def stats(self) -> dict[str, Any]:
        return {**self.inner.stats, "restricted_to": int(self.restriction.index.size)}
