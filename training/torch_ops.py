"""The grid pressure operator in torch (batched, differentiable), for the training loss.

It is :func:`dcdm.kernels.reference.laplacian_matvec_fluid` written with
padding and slicing: for ``x`` that is zero on every non-FLUID cell, ::

    (A x)_c = scale * (d_c x_c - sum of the face neighbours of c)   on FLUID cells c
    (A x)_c = 0                                                     elsewhere

with ``d_c`` the stencil code (number of non-SOLID neighbours, see
:attr:`dcdm.problems.Grid.stencil_code`). On such ``x`` it equals
:func:`dcdm.kernels.reference.laplacian_matvec` (the non-FLUID identity rows
give ``x_c = 0``). :func:`masked_laplacian` zeroes ``x`` off the FLUID cells
first, so it is the operator the solver applies to a direction it has masked.

Batched: ``x`` is ``(B, *grid)`` or ``(B, 1, *grid)`` and the stencil codes are
either one grid (shared by the batch) or one per sample, ``(B, *grid)``, so a
batch may mix scenes of the same size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["GridOperator", "fluid_mask", "masked_laplacian"]


def _neighbour_sum(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """Sum of the ``2 * ndim`` face neighbours over the last ``ndim`` axes, zero outside."""
    xp = F.pad(x, [1, 1] * ndim)
    lead = (slice(None),) * (x.dim() - ndim)
    acc = None
    for axis in range(ndim):
        for lo in (0, 2):
            s = [slice(1, -1)] * ndim
            s[axis] = slice(lo, lo + x.shape[x.dim() - ndim + axis])
            term = xp[(*lead, *s)]
            acc = term if acc is None else acc + term
    return acc


def _as_batch(x: torch.Tensor, ndim: int) -> tuple[torch.Tensor, bool]:
    """``(B, 1, *grid)`` -> ``(B, *grid)``; remembers whether to put the channel back."""
    if x.dim() == ndim + 2:
        if x.shape[1] != 1:
            raise ValueError(f"expected one channel, got shape {tuple(x.shape)}")
        return x[:, 0], True
    if x.dim() != ndim + 1:
        raise ValueError(
            f"x must be (B, *grid) or (B, 1, *grid) for a {ndim}-D grid, got {tuple(x.shape)}"
        )
    return x, False


def fluid_mask(code: torch.Tensor) -> torch.Tensor:
    """Boolean FLUID mask from stencil codes (``code >= 0``)."""
    return code >= 0


def masked_laplacian(x: torch.Tensor, code: torch.Tensor, scale: float = 1.0,
                     ndim: int | None = None) -> torch.Tensor:
    """``A (mask * x)`` for a batch of grid vectors (see the module docstring).

    Parameters
    ----------
    x : Tensor, ``(B, *grid)`` or ``(B, 1, *grid)``
        float32 or float64.
    code : Tensor of int, ``grid`` or ``(B, *grid)``
        Stencil codes (:attr:`dcdm.problems.Grid.stencil_code`).
    scale : float
        ``1 / spacing**2``.
    ndim : {2, 3}, optional
        Grid dimensionality; inferred (per-sample codes when ``code`` has the
        batch size in front and matches ``x``) when not given.

    Returns
    -------
    Tensor
        Same shape and dtype as ``x``; zero off the FLUID cells.

    Examples
    --------
    >>> import numpy as np, torch
    >>> from dcdm.problems import scenes
    >>> g = scenes.smoke((8, 8), obstacles=1, seed=0)
    >>> x = g.mask(np.random.default_rng(0).standard_normal(g.shape))
    >>> ours = masked_laplacian(torch.from_numpy(x)[None], torch.tensor(g.stencil_code))
    >>> bool(np.allclose(ours[0].numpy(), g.laplacian().matvec(x.ravel()).reshape(g.shape)))
    True
    """
    if ndim is None:
        per_sample = (code.dim() in (3, 4) and code.shape[0] == x.shape[0]
                      and (x.shape == code.shape
                           or (x.dim() == code.dim() + 1 and x.shape[1] == 1
                               and x.shape[2:] == code.shape[1:])))
        ndim = code.dim() - 1 if per_sample else code.dim()
    if ndim not in (2, 3) or code.dim() not in (ndim, ndim + 1):
        raise ValueError(
            f"code of shape {tuple(code.shape)} does not match x of shape {tuple(x.shape)}: "
            "give one grid's codes or one per sample"
        )
    xb, channel = _as_batch(x, ndim)
    if xb.shape[-ndim:] != code.shape[-ndim:]:
        raise ValueError(f"grid shapes differ: x {tuple(xb.shape)}, code {tuple(code.shape)}")
    if code.dim() == ndim + 1 and code.shape[0] != xb.shape[0]:
        raise ValueError(f"{code.shape[0]} per-sample codes for a batch of {xb.shape[0]}")
    fluid = code >= 0
    xm = torch.where(fluid, xb, torch.zeros((), dtype=xb.dtype, device=xb.device))
    diag = code.clamp(min=0).to(xb.dtype)
    out = scale * (diag * xm - fluid.to(xb.dtype) * _neighbour_sum(xm, ndim))
    return out[:, None] if channel else out


class GridOperator:
    """The operators of a list of same-size scenes, held as one stacked code tensor.

    Parameters
    ----------
    codes : array_like of int, ``(S, *grid)``
        Stencil codes of ``S`` scenes.
    scale : float
        ``1 / spacing**2`` (shared).
    device : str or torch.device
        Where the codes live.

    Examples
    --------
    >>> import torch
    >>> from dcdm.problems import scenes
    >>> grids = [scenes.smoke((8, 8), obstacles=1, seed=s) for s in (0, 1)]
    >>> A = GridOperator.from_grids(grids)
    >>> x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    >>> A(x, torch.tensor([0, 1, 1])).shape
    torch.Size([3, 1, 8, 8])
    """

    def __init__(self, codes, scale: float = 1.0, device: str | torch.device = "cpu"):
        codes = torch.tensor(np.asarray(codes, dtype=np.int8), device=device)
        if codes.dim() not in (3, 4):
            raise ValueError(
                f"codes must be (S, *grid) for 2-D/3-D grids, got {tuple(codes.shape)}"
            )
        self.codes = codes
        self.scale = float(scale)

    @classmethod
    def from_grids(cls, grids, device: str | torch.device = "cpu") -> GridOperator:
        """Stack the stencil codes of ``grids`` (same shape and spacing)."""
        grids = list(grids)
        if len({g.shape for g in grids}) != 1 or len({g.spacing for g in grids}) != 1:
            raise ValueError("all scenes of a GridOperator must share shape and spacing")
        return cls(np.stack([g.stencil_code for g in grids]), 1.0 / grids[0].spacing**2, device)

    @property
    def ndim(self) -> int:
        return self.codes.dim() - 1

    def fluid(self, scene: torch.Tensor) -> torch.Tensor:
        """FLUID masks ``(B, 1, *grid)`` of the scenes ``scene`` (a ``(B,)`` index tensor)."""
        return (self.codes[scene] >= 0)[:, None]

    def __call__(self, x: torch.Tensor, scene: torch.Tensor) -> torch.Tensor:
        """``A_s (mask_s * x_s)`` for each sample ``s`` of the batch, ``scene[s]`` its scene."""
        return masked_laplacian(x, self.codes[scene], self.scale, ndim=self.ndim)
