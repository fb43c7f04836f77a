"""No preconditioning (``M="none"``): :class:`Identity`, ``M r = r``."""

from __future__ import annotations

from .base import Preconditioner

__all__ = ["Identity"]


class Identity(Preconditioner):
    """No preconditioning: ``M r = r``.

    Examples
    --------
    >>> import numpy as np
    >>> Identity().build(None).apply(np.arange(3.0)).tolist()
    [0.0, 1.0, 2.0]
    """

    name = "none"
    preserves_support = True

    def apply(self, r, out=None):
        if out is None:
            return r.copy() if hasattr(r, "copy") else r * 1
        out[...] = r
        return out
