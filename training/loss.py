"""The DCDM training loss (Kaneda et al., ICML 2023, Sec. 3; official ``custom_loss_function``).

For a unit-norm right-hand side ``b`` and the network's output ``f = f(b)`` ::

    alpha = (f . b) / (f . A f)            # exact line search in the A-norm
    loss  = || b - alpha A f ||_2^2        # the residual after one step along f

averaged over the batch. ``alpha`` absorbs the scale *and the sign* of ``f``:
``f`` and ``-3 f`` have the same loss, so a trained network may come out as an
approximate ``-A^{-1}`` (the calibration in ``reference/dcdm.md`` saw
``cos(f(b), b)`` of -0.46 for one net and positive for another). DCDM itself
does not care (its step is a line search), but anything that uses ``f`` as a
preconditioner does (flexible CG needs ``r . M(r) > 0``; an additive
composition with a V-cycle needs the right sign). Two fixes are offered:

``mode="abs"``
    use ``|alpha|`` in place of ``alpha``. For ``f . b > 0`` nothing changes;
    for ``f . b < 0`` the step goes the wrong way and the loss exceeds
    ``||b||^2``, so training is pushed to ``f . b > 0`` (an SPD-like sign) while
    keeping the paper's scale invariance.
``cos_weight > 0``
    add ``cos_weight * mean(relu(-cos(f, b)))``, a penalty that is zero once the
    output points along the residual's half-space.

``scale_weight > 0`` additionally pins the scale: ``scale_weight *
mean(log(|alpha|)^2)`` pulls ``alpha`` to 1, i.e. ``f(b) ~ A^{-1} b`` itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

__all__ = ["MODES", "dcdm_loss", "line_search"]

MODES = ("paper", "abs")


def _dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per-sample dot product over every axis but the first."""
    return (u * v).flatten(1).sum(1)


def line_search(f: torch.Tensor, b: torch.Tensor, Af: torch.Tensor) -> torch.Tensor:
    """``alpha = (f . b) / (f . A f)`` per sample (``(B,)``); 0 where ``f . A f`` vanishes."""
    fAf = _dot(f, Af)
    tiny = torch.finfo(fAf.dtype).tiny
    safe = torch.where(fAf.abs() > tiny, fAf, torch.ones_like(fAf))
    return torch.where(fAf.abs() > tiny, _dot(f, b) / safe, torch.zeros_like(fAf))


def dcdm_loss(
    f: torch.Tensor,
    b: torch.Tensor,
    A: Callable[[torch.Tensor], torch.Tensor],
    *,
    mode: str = "paper",
    cos_weight: float = 0.0,
    scale_weight: float = 0.0,
    fluid: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """The DCDM loss of a batch (see the module docstring).

    Parameters
    ----------
    f : Tensor, ``(B, 1, *grid)``
        Network outputs.
    b : Tensor, ``(B, 1, *grid)``
        Right-hand sides (unit norm, zero off FLUID cells).
    A : callable
        ``A(x)``: the masked grid operator of each sample
        (e.g. ``lambda x: op(x, scene)`` with a :class:`~dcdm.training.torch_ops.GridOperator`);
        it must ignore ``x`` off the FLUID cells, as the solver's masked direction does.
    mode : {"paper", "abs"}
        ``"abs"`` uses ``|alpha|`` (fixes the sign).
    cos_weight, scale_weight : float
        Weights of the sign and scale penalties (0 = the paper's loss).
    fluid : Tensor of bool, ``(B, 1, *grid)``, optional
        FLUID masks; ``f`` is masked before the cosine penalty (needed only then).
    reduction : {"mean", "none"}
        ``"none"`` returns the per-sample losses ``(B,)``.

    Returns
    -------
    Tensor
        Scalar (or ``(B,)``).

    Examples
    --------
    >>> import torch
    >>> b = torch.nn.functional.normalize(torch.randn(4, 1, 8, 8).flatten(1)).view(4, 1, 8, 8)
    >>> float(dcdm_loss(b, b, lambda x: 2.0 * x))  # f = A^{-1} b up to scale: zero loss
    0.0
    >>> round(float(dcdm_loss(-b, b, lambda x: 2.0 * x, mode="abs")), 4)  # wrong sign: ||2b||^2
    4.0
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if f.shape != b.shape:
        raise ValueError(f"f and b must have the same shape, got {tuple(f.shape)} and "
                         f"{tuple(b.shape)}")
    Af = A(f)
    alpha = line_search(f, b, Af)
    if mode == "abs":
        alpha = alpha.abs()
    shape = (-1,) + (1,) * (b.dim() - 1)
    per_sample = (b - alpha.view(shape) * Af).flatten(1).pow(2).sum(1)
    if cos_weight:
        fm = f if fluid is None else f * fluid
        cos = F.cosine_similarity(fm.flatten(1), b.flatten(1), dim=1)
        per_sample = per_sample + cos_weight * F.relu(-cos)
    if scale_weight:
        per_sample = per_sample + scale_weight * torch.log(alpha.abs().clamp_min(1e-30)).pow(2)
    return per_sample.mean() if reduction == "mean" else per_sample
