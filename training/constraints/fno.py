"""A 2-D Fourier neural operator (Li et al., ICLR 2021, arXiv 2010.08895): :class:`FNO2d`.

The basis network of the hard-constraint layers (Chalapathi et al., ICLR 2024, use an FNO with
5 Fourier layers, 8 modes, width 64). Each Fourier layer is ``x <- act(K x + W x)``: ``K``
multiplies the lowest ``modes`` Fourier coefficients of each axis by learned complex
``width x width`` matrices (the rest are dropped), ``W`` is a 1 x 1 convolution. A lifting 1 x 1
convolution maps the input channels to ``width``, a two-layer 1 x 1 projection maps ``width``
to the output channels. Non-periodic inputs are zero-padded by ``padding`` cells at the far end
of both axes before the Fourier layers and cropped after (as in the original FNO code for
non-periodic problems).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["FNO2d", "SpectralConv2d"]


class SpectralConv2d(nn.Module):
    """Multiply the lowest ``modes`` Fourier modes of each axis by learned complex matrices.

    Parameters
    ----------
    channels : int
        Input and output channels.
    modes : tuple of int
        Modes kept along axis 0 (both signs) and axis 1 (non-negative, ``rfft``).
    """

    def __init__(self, channels: int, modes: tuple[int, int]):
        super().__init__()
        self.modes = (int(modes[0]), int(modes[1]))
        scale = 1.0 / channels
        shape = (2, channels, channels, *self.modes)  # two corners: +/- frequencies on axis 0
        self.weight = nn.Parameter(scale * torch.randn(*shape, dtype=torch.cfloat))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n0, n1 = x.shape[-2:]
        m0, m1 = min(self.modes[0], n0 // 2), min(self.modes[1], n1 // 2 + 1)
        X = torch.fft.rfft2(x, norm="ortho")
        w = self.weight.to(X.dtype)
        out = torch.zeros(*X.shape[:1], w.shape[2], *X.shape[2:], dtype=X.dtype, device=X.device)
        out[:, :, :m0, :m1] = torch.einsum("bixy,ioxy->boxy", X[:, :, :m0, :m1],
                                           w[0, :, :, :m0, :m1])
        out[:, :, -m0:, :m1] = torch.einsum("bixy,ioxy->boxy", X[:, :, -m0:, :m1],
                                            w[1, :, :, :m0, :m1])
        return torch.fft.irfft2(out, s=(n0, n1), norm="ortho")


class FNO2d(nn.Module):
    """Fourier neural operator on a 2-D grid: ``(batch, in, n0, n1) -> (batch, out, n0, n1)``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and the output fields.
    width : int
        Channels inside the Fourier layers.
    modes : tuple of int
        Fourier modes kept per axis.
    layers : int
        Number of Fourier layers.
    padding : int
        Zero padding (cells) appended along both axes for non-periodic data.

    Examples
    --------
    >>> import torch
    >>> net = FNO2d(3, 16, width=8, modes=(4, 4), layers=2)
    >>> net(torch.zeros(2, 3, 11, 32)).shape
    torch.Size([2, 16, 11, 32])
    """

    def __init__(self, in_channels: int, out_channels: int, *, width: int = 32,
                 modes: tuple[int, int] = (8, 8), layers: int = 4, padding: int = 8):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                            ("width", width), ("layers", layers)):
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if len(modes) != 2 or min(modes) < 1:
            raise ValueError(f"modes must be two positive integers, got {modes}")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = int(padding)
        self.lift = nn.Conv2d(in_channels, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(layers))
        hidden = 2 * width
        self.project = nn.Sequential(nn.Conv2d(width, hidden, 1), nn.GELU(),
                                     nn.Conv2d(hidden, out_channels, 1))
        # a smaller last layer keeps the initial outputs O(1) whatever the width
        nn.init.normal_(self.project[2].weight, std=1.0 / math.sqrt(hidden))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.lift.in_channels:
            raise ValueError(
                f"x must be (batch, {self.lift.in_channels}, n0, n1), got {tuple(x.shape)}"
            )
        n0, n1 = x.shape[-2:]
        h = self.lift(x)
        if self.padding:
            h = nn.functional.pad(h, (0, self.padding, 0, self.padding))
        last = len(self.spectral) - 1
        for i, (K, W) in enumerate(zip(self.spectral, self.pointwise, strict=True)):
            h = K(h) + W(h)
            if i < last:
                h = nn.functional.gelu(h)
        h = h[..., :n0, :n1]
        return self.project(h)
