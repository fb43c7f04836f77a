"""Full red-black sweeps made of two half-sweeps, for the back-ends without a fused kernel.

:mod:`dcdm.kernels.cpu_mg` runs a full sweep in one pass over memory; the NumPy reference,
the array-API kernels and the CUDA kernels run colour ``first`` and then the other with
their own half-sweep. This module builds those two-call versions once, from a module's
``rbgs_sweep`` and ``coef_rbgs_sweep``.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["half_sweep_pairs"]


def half_sweep_pairs(rbgs_sweep: Callable, coef_rbgs_sweep: Callable
                     ) -> tuple[Callable, Callable]:
    """``(rbgs_pair, coef_rbgs_pair)`` calling the given half-sweeps twice: colour ``first``,
    then ``1 - first`` (the signatures of :func:`dcdm.kernels.cpu_mg.rbgs_pair` and
    :func:`dcdm.kernels.cpu_mg.coef_rbgs_pair`)."""

    def rbgs_pair(code, x, b, scale: float, first: int, shift=None) -> None:
        rbgs_sweep(code, x, b, scale, first, shift=shift)
        rbgs_sweep(code, x, b, scale, 1 - first, shift=shift)

    def coef_rbgs_pair(diag, couplings, x, b, scale: float, first: int) -> None:
        coef_rbgs_sweep(diag, couplings, x, b, scale, first)
        coef_rbgs_sweep(diag, couplings, x, b, scale, 1 - first)

    rbgs_pair.__doc__ = "One full red-black sweep: colour ``first``, then the other."
    coef_rbgs_pair.__doc__ = ("One full red-black sweep of a coefficient stencil: colour "
                              "``first``, then the other.")
    return rbgs_pair, coef_rbgs_pair
