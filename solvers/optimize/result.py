"""What :func:`dcdm.optimize.minimize` returns: a frozen :class:`OptimizeResult` with a
per-iteration history (:class:`IterationRecord`, each with its :class:`TrialRecord` s)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["IterationRecord", "OptimizeResult", "TrialRecord"]


@dataclass(frozen=True)
class TrialRecord:
    """One trial step: the regularisation ``lam``, whether it was accepted, the inner
    solve's iterations and reason (``"direct"`` for a factorisation), the trial's ``f``
    (``nan`` when not evaluated) and why it was rejected (``""`` when accepted)."""

    lam: float
    accepted: bool
    inner_iterations: int
    inner_reason: str
    f: float
    rejected_because: str = ""


@dataclass(frozen=True)
class IterationRecord:
    """One outer iteration: ``f`` and the dual gradient norm at its start, the step size
    parameter (``gamma`` for GNS, ``L`` or ``H`` for the baselines) it started with, and
    its trials."""

    f: float
    grad_norm: float
    step_parameter: float
    trials: tuple[TrialRecord, ...] = ()

    @property
    def inner_iterations(self) -> int:
        return sum(t.inner_iterations for t in self.trials)


@dataclass(frozen=True)
class OptimizeResult:
    """The outcome of :func:`dcdm.optimize.minimize`, in ``scipy.optimize``'s terms.

    Attributes
    ----------
    x, fun, jac : the final iterate, its value and gradient
    success : bool
        ``True`` when the gradient tolerance (or ``f_target``) was met.
    status : int
        0 converged, 1 ``maxiter`` reached, 2 no trial accepted, 3 non-finite values.
    message : str
    nit : int
        Outer iterations taken.
    n_trials, n_inner : int
        Trial steps, and inner Krylov iterations, over the whole run.
    nfev, njev : int
        Evaluations of ``fun`` and ``jac``.
    history : tuple of IterationRecord
    method : str
    """

    x: np.ndarray
    fun: float
    jac: np.ndarray
    success: bool
    status: int
    message: str
    nit: int
    n_trials: int
    n_inner: int
    nfev: int
    njev: int
    history: tuple[IterationRecord, ...] = ()
    method: str = "gns"
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        x = np.array(self.x, copy=True)
        x.flags.writeable = False
        object.__setattr__(self, "x", x)

    @property
    def gammas(self) -> np.ndarray:
        """The step-size parameter at the start of every outer iteration."""
        return np.array([h.step_parameter for h in self.history])

    @property
    def values(self) -> np.ndarray:
        """``f`` at the start of every outer iteration, then the final value."""
        return np.array([h.f for h in self.history] + [self.fun])

    def __repr__(self) -> str:
        return (f"OptimizeResult(method={self.method!r}, success={self.success}, "
                f"fun={self.fun:.6g}, nit={self.nit}, n_trials={self.n_trials}, "
                f"n_inner={self.n_inner}, message={self.message!r})")
