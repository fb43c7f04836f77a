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

``mode="energy"`` (this package's default, not the paper's)
    the fraction of the A-norm error that one DCDM step along ``f`` leaves.
    With ``e = A^{-1} b`` (precomputed per sample) the exact line search gives
    ``||e - alpha f||_A^2 / ||e||_A^2 = 1 - (f.b)^2 / ((f.Af)(e.b))``, which is
    what DCDM's step actually minimises; the signed form used here,
    ``1 - (f.b)|f.b| / ((f.Af)(e.b))``, also prefers ``f . b > 0``. It lies in
    ``[0, 2]`` and equals 1 for a useless direction (``f . b = 0``).

    Why: the paper's 2-norm loss exceeds 1 for smooth / low-mode right-hand
    sides unless ``f`` is already a good inverse (the A-norm line search does
    not minimise the 2-norm residual), so an untrained 3-D net at 32^3 finds
    the trivial minimum ``f . b = 0`` (loss exactly 1) and stays there. This
    is what happened to every 3-D run with the paper loss; with the energy
    loss the same net and data learn (``docs/MODEL_CARD.md``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

__all__ = ["MODES", "dcdm_loss", "line_search"]

MODES = ("paper", "abs", "energy")


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
    e: torch.Tensor | None = None,
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
    mode : {"paper", "abs", "energy"}
        ``"abs"`` uses ``|alpha|`` (fixes the sign); ``"energy"`` is the A-norm
        error left by one step (needs ``e``).
    cos_weight, scale_weight : float
        Weights of the sign and scale penalties (0 = the paper's loss).
    fluid : Tensor of bool, ``(B, 1, *grid)``, optional
        FLUID masks; ``f`` is masked before the cosine penalty (needed only then).
    e : Tensor, ``(B, 1, *grid)``, optional
        The solutions ``A^{-1} b`` (required by ``mode="energy"``).
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
    >>> abs(float(dcdm_loss(b, b, lambda x: 2.0 * x))) < 1e-12  # f = A^{-1} b up to scale
    True
    >>> round(float(dcdm_loss(-b, b, lambda x: 2.0 * x, mode="abs")), 4)  # wrong sign: ||2b||^2
    4.0
    >>> abs(float(dcdm_loss(3 * b, b, lambda x: 2.0 * x, mode="energy", e=b / 2))) < 1e-6
    True
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if f.shape != b.shape:
        raise ValueError(f"f and b must have the same shape, got {tuple(f.shape)} and "
                         f"{tuple(b.shape)}")
    Af = A(f)
    if mode == "energy":
        per_sample = _energy(f, b, Af, e)
        return _penalties(per_sample, f, b, Af, cos_weight, scale_weight, fluid, reduction)
    alpha = line_search(f, b, Af)
    if mode == "abs":
        alpha = alpha.abs()
    shape = (-1,) + (1,) * (b.dim() - 1)
    per_sample = (b - alpha.view(shape) * Af).flatten(1).pow(2).sum(1)
    return _penalties(per_sample, f, b, Af, cos_weight, scale_weight, fluid, reduction)


def _energy(f: torch.Tensor, b: torch.Tensor, Af: torch.Tensor,
            e: torch.Tensor | None) -> torch.Tensor:
    """``1 - (f.b)|f.b| / ((f.Af)(e.b))`` per sample; 1 where ``f.Af`` vanishes."""
    if e is None:
        raise ValueError("mode='energy' needs the solutions e = A^{-1} b (argument e)")
    if e.shape != b.shape:
        raise ValueError(f"e and b must have the same shape, got {tuple(e.shape)} and "
                         f"{tuple(b.shape)}")
    fb, fAf, eb = _dot(f, b), _dot(f, Af), _dot(e, b)
    tiny = torch.finfo(fAf.dtype).tiny
    ok = (fAf > tiny) & (eb > tiny)
    ratio = fb * fb.abs() / torch.where(ok, fAf * eb, torch.ones_like(fAf))
    return 1.0 - torch.where(ok, ratio, torch.zeros_like(ratio))


def _penalties(per_sample, f, b, Af, cos_weight, scale_weight, fluid, reduction):
    """Add the optional sign and scale penalties; reduce."""
    if cos_weight:
        fm = f if fluid is None else f * fluid
        cos = F.cosine_similarity(fm.flatten(1), b.flatten(1), dim=1)
        per_sample = per_sample + cos_weight * F.relu(-cos)
    if scale_weight:
        alpha = line_search(f, b, Af)
        per_sample = per_sample + scale_weight * torch.log(alpha.abs().clamp_min(1e-30)).pow(2)
    return per_sample.mean() if reduction == "mean" else per_sample
