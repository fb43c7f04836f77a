"""The stopping rule, defined once for every solver and benchmark: :class:`StoppingRule`.

::

    ||b - A x||_2 <= max(rtol * ||b||_2, atol)

on the true residual. For a singular system ``b`` is first projected onto the range of
``A`` (its null-space component cannot be reduced), and that projected ``b`` is the one
in the rule. A recursive residual that meets the tolerance is only a candidate: the
solvers confirm it on the true residual (:meth:`StoppingRule.judge`), and restarts
from a true residual that keeps failing to drop end the solve as ``STAGNATION``.
"""

from __future__ import annotations

import math

from .result import Reason

__all__ = ["StoppingRule", "positive"]


def positive(value: float, indefinite: Reason) -> Reason | None:
    """The verdict on a curvature ``p . A p`` or ``r . M r`` that must be positive:
    None when it is, ``NAN_OR_INF`` when it is not finite, else ``indefinite``."""
    if not math.isfinite(value):
        return Reason.NAN_OR_INF
    if value <= 0.0:
        return indefinite
    return None


class StoppingRule:
    """``||b - A x|| <= max(rtol ||b||, atol)`` and the verdicts the loops share.

    Parameters
    ----------
    rtol, atol : float
        Validated tolerances (:func:`~dcdm.solvers.inputs.check_tolerances`).
    bnorm : float
        ``||b||`` of the right-hand side the rule measures against.

    Examples
    --------
    >>> rule = StoppingRule(1e-6, 0.0, 2.0)
    >>> rule.tol, rule.first(1e-7).name, rule.first(1.0)
    (2e-06, 'CONVERGED_RTOL', None)
    """

    #: confirmations in a row that failed to cut the true residual by 10%: stagnation
    STALLS = 3

    def __init__(self, rtol: float, atol: float, bnorm: float):
        self.rtol, self.atol, self.bnorm = rtol, atol, bnorm
        self.tol = max(rtol * bnorm, atol)
        self.restarts = 0
        self._stalls = 0
        self._last_true = math.inf

    def converged_reason(self) -> Reason:
        """``CONVERGED_RTOL`` or ``CONVERGED_ATOL``: whichever term sets the tolerance."""
        if self.rtol * self.bnorm >= self.atol:
            return Reason.CONVERGED_RTOL
        return Reason.CONVERGED_ATOL

    def first(self, rnorm: float) -> Reason | None:
        """The verdict on the initial residual: ``NAN_OR_INF``, converged, or None (go on)."""
        if not math.isfinite(rnorm):
            return Reason.NAN_OR_INF
        if rnorm <= self.tol:
            return self.converged_reason()
        return None

    def judge(self, true_norm: float) -> Reason | None:
        """The verdict on a true residual computed because the recursive one met the
        tolerance: converged, ``NAN_OR_INF``, ``STAGNATION`` when :attr:`STALLS`
        confirmations in a row failed to cut it by 10% (the rounding floor of the working
        precision), or None: go on from the true residual."""
        if not math.isfinite(true_norm):
            return Reason.NAN_OR_INF
        if true_norm <= self.tol:
            return self.converged_reason()
        self._stalls = self._stalls + 1 if true_norm >= 0.9 * self._last_true else 0
        self._last_true = min(true_norm, self._last_true)
        self.restarts += 1
        if self._stalls >= self.STALLS:
            return Reason.STAGNATION
        return None
