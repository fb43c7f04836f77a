"""The stopping rule, defined once for every solver and benchmark: :class:`StoppingRule`.

::

    ||b - A x||_2 <= max(rtol * ||b||_2, atol)

on the true residual, ``b`` the caller's. A recursive residual that meets the tolerance
is only a candidate: the solvers confirm it on the true residual
(:meth:`StoppingRule.judge`), and restarts from a true residual that keeps failing to drop
end the solve as ``STAGNATION``. At exit :meth:`StoppingRule.final` holds every method to
the one invariant: a converged reason means the true residual meets the tolerance.

Singular systems: the iterations run on ``b`` projected onto the range of ``A`` (the
null-space component ``n`` of ``b`` cannot be reduced), and ``||b - A x||^2 =
||P b - A x||^2 + n^2``. While ``n <= tol / 2`` the projected residual is driven to
``sqrt(tol^2 - n^2)``, so the true one meets ``tol``; a larger ``n`` is an inconsistent
right-hand side: the projected system is solved to ``rtol`` and the solve ends as
``INCONSISTENT_RHS`` unless the true residual happens to meet ``tol``.
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
    null : float
        Norm of ``b``'s component in the null space of a singular ``A`` (0 otherwise).

    Attributes
    ----------
    tol : float
        The target of the iterated (projected) residual.
    true_tol : float
        ``max(rtol ||b||, atol)``, the bound on the true residual.

    Examples
    --------
    >>> rule = StoppingRule(1e-6, 0.0, 2.0)
    >>> rule.tol, rule.first(1e-7).name, rule.first(1.0)
    (2e-06, 'CONVERGED_RTOL', None)
    """

    #: confirmations in a row that failed to cut the true residual by 10%: stagnation
    STALLS = 3

    def __init__(self, rtol: float, atol: float, bnorm: float, null: float = 0.0):
        self.rtol, self.atol, self.bnorm, self.null = rtol, atol, bnorm, null
        self.true_tol = max(rtol * bnorm if bnorm else 0.0, atol)  # inf * 0 is not 0
        if null == 0.0:
            self.tol = self.true_tol
        elif null <= 0.5 * self.true_tol:
            self.tol = math.sqrt(self.true_tol**2 - null**2)
        else:  # inconsistent: the least-squares solution, to rtol of the projected b
            self.tol = max(rtol * math.sqrt(max(bnorm**2 - null**2, 0.0)), atol)
        self.restarts = 0
        self._stalls = 0
        self._last_true = math.inf

    def converged_reason(self) -> Reason:
        """``CONVERGED_RTOL`` or ``CONVERGED_ATOL``: whichever term sets the tolerance."""
        if (self.rtol * self.bnorm if self.bnorm else 0.0) >= self.atol:
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

    def final(self, reason: Reason, true_norm: float) -> Reason:
        """The reason a solve reports, given the loop's and the true residual at exit: a
        converged reason stands only if ``true_norm <= true_tol``; otherwise
        ``INCONSISTENT_RHS`` (a singular system whose ``b`` has too large a null-space
        component), ``NAN_OR_INF`` or ``UNCONFIRMED``."""
        if not reason.converged or true_norm <= self.true_tol:
            return reason
        if not math.isfinite(true_norm):
            return Reason.NAN_OR_INF
        return Reason.INCONSISTENT_RHS if self.null > 0.0 else Reason.UNCONFIRMED
