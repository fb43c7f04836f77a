"""The last ``k`` search directions of a conjugate-direction loop: :class:`Directions`.

Flexible CG (``fcg.py``) and DCDM (``dcdm.py``) keep each new direction A-orthogonal to
the last ``k`` ones explicitly (Notay 2000; Kaneda et al. 2023)::

    q -= sum_{j in last k} (q . A p_j) / (p_j . A p_j) p_j

This ring buffer holds ``p_j``, ``A p_j`` and ``p_j . A p_j`` for them: ``2 (k + 1)``
vectors, allocated once per solve.
"""

from __future__ import annotations

from typing import Any

from dcdm import kernels

__all__ = ["Directions"]


class Directions:
    """Ring buffer of the last ``k`` search directions ``p_j``, ``A p_j``, ``p_j . A p_j``.

    A step uses it as: ``p, Ap = dirs.next_slot()``; fill ``p``;
    ``dirs.orthogonalise(p)``; ``Ap = A p``; ``dirs.commit(p . Ap)``.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.diag([1.0, 2.0])
    >>> dirs = Directions(1, np.zeros(2), np)
    >>> p, Ap = dirs.next_slot()
    >>> p[...] = [1.0, 1.0]; Ap[...] = A @ p; dirs.commit(float(p @ Ap))
    >>> q = np.array([1.0, 0.0]); dirs.orthogonalise(q)
    >>> abs(float(q @ A @ np.array([1.0, 1.0]))) < 1e-15
    True
    """

    def __init__(self, k: int, like, xp):
        self.k = k
        self.p = [xp.empty_like(like) for _ in range(k + 1)]
        self.Ap = [xp.empty_like(like) for _ in range(k + 1)]
        self.pAp = [0.0] * (k + 1)
        self.count = 0

    def next_slot(self) -> tuple[Any, Any]:
        """The buffers ``(p, A p)`` of the next direction (the oldest one's, reused)."""
        s = self.count % (self.k + 1)
        return self.p[s], self.Ap[s]

    def orthogonalise(self, q) -> None:
        """``q -= sum_j (q . A p_j) / (p_j . A p_j) p_j`` over the stored directions."""
        s = self.count % (self.k + 1)
        for back in range(1, min(self.k, self.count) + 1):
            j = (s - back) % (self.k + 1)
            if self.pAp[j] > 0:
                kernels.axpy(-kernels.dot(q, self.Ap[j]) / self.pAp[j], self.p[j], q)

    def commit(self, pAp: float) -> None:
        """Keep the direction in the next slot, with ``p . A p = pAp`` (> 0)."""
        self.pAp[self.count % (self.k + 1)] = pAp
        self.count += 1
