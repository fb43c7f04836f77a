"""The DCDM convolutional network (Kaneda et al., ICML 2023, Sec. 3; official ``src/train.py``).

The paper's N=64 layout, written for 2-D and 3-D (``C`` = channels, every conv
``kernel``-wide with zero "same" padding; ``R(.)`` = ReLU conv)::

    h  = Conv(1 -> C)(r)                                  # linear
    a  = R(h); b = R(a); a = R(b) + a; b = R(a)           # convs_before = 4 at full res
    c  = AvgPool(2)(b)
    d  = R(c); c = R(d) + c;  (x3)                        # convs_coarse = 6 at half res
    u  = Upsample(2, nearest)(c) + b                      # skip from the fine level
    e  = R(u); u = R(e) + u;  (x2)                        # convs_after = 4 at full res
    q  = Conv1x1(C -> 1)(u)                               # linear per-cell head

Residual adds come after the ReLU (``a = relu(conv(b)) + a``), as in the Keras
code. A stage of ``k`` convs is built from residual pairs; the full-resolution
stage before the pool starts with one plain conv (the paper's ``la = C(first)``)
and an odd remainder ends with one plain conv. With ``levels = L > 1`` the
pool/stage pattern repeats: the encoder runs a ``convs_before`` stage at each
of the ``L`` finer levels, the coarsest level a ``convs_coarse`` stage, and
each decoder level adds the skip and runs a ``convs_after`` stage.

Any grid size works: the input is zero-padded at the high end of every axis to
a multiple of ``2**levels`` and the output cropped back. Zero padding is the
network's view of "outside the domain" anyway (residuals are zero off FLUID
cells).

Parameter counts with the defaults: 32,657 in 2-D and 97,457 in 3-D (the
paper's 64^3 model).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig

__all__ = ["DCDMNet", "ModelConfig"]


class _Stage(nn.Module):
    """``k`` ReLU convs with residual adds after every second one (see the module docstring)."""

    def __init__(self, conv, channels: int, k: int, lead: bool):
        super().__init__()
        self.lead = lead and k > 0
        self.convs = nn.ModuleList(conv(channels) for _ in range(k))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        convs = list(self.convs)
        if self.lead:
            a = F.relu(convs.pop(0)(a))
        while len(convs) >= 2:
            b = F.relu(convs.pop(0)(a))
            a = F.relu(convs.pop(0)(b)) + a
        if convs:
            a = F.relu(convs.pop(0)(a))
        return a


class DCDMNet(nn.Module):
    """The DCDM CNN: ``(B, 1, *grid) -> (B, 1, *grid)``, any grid size, 2-D or 3-D.

    Parameters
    ----------
    config : ModelConfig, optional
        Architecture (default: the paper's 2-D layout).
    **overrides
        Fields of :class:`ModelConfig` to set instead of passing ``config``.

    Examples
    --------
    >>> import torch
    >>> net = DCDMNet(dim=2)
    >>> net.param_count()
    32657
    >>> net(torch.zeros(1, 1, 13, 7)).shape
    torch.Size([1, 1, 13, 7])
    """

    def __init__(self, config: ModelConfig | None = None, **overrides: int):
        super().__init__()
        if config is None:
            config = ModelConfig(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        c, k, dim = config.channels, config.kernel, config.dim
        Conv = nn.Conv2d if dim == 2 else nn.Conv3d

        def conv(cin: int, cout: int | None = None) -> nn.Module:
            return Conv(cin, c if cout is None else cout, k, padding=k // 2)

        self.first = conv(1)
        self.down = nn.ModuleList(
            _Stage(conv, c, config.convs_before, lead=True) for _ in range(max(config.levels, 1))
        )
        self.coarse = _Stage(conv, c, config.convs_coarse, lead=False)
        self.up = nn.ModuleList(
            _Stage(conv, c, config.convs_after, lead=False) for _ in range(config.levels)
        )
        self.head = Conv(c, 1, 1)
        self._pool = F.avg_pool2d if dim == 2 else F.avg_pool3d

    @property
    def dim(self) -> int:
        return self.config.dim

    def param_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim, levels = self.config.dim, self.config.levels
        if x.dim() != dim + 2 or x.shape[1] != 1:
            raise ValueError(
                f"DCDMNet({dim}-D) expects input of shape (B, 1, {', '.join('n' * dim)}), "
                f"got {tuple(x.shape)}"
            )
        shape = x.shape[2:]
        m = 2**levels
        pad = [(-n) % m for n in shape]
        if any(pad):
            # F.pad takes (last-axis lo, hi, ..., first-axis lo, hi)
            spec: list[int] = []
            for p in reversed(pad):
                spec += [0, p]
            x = F.pad(x, spec)
        h = self.first(x)
        if levels == 0:
            h = self.down[0](h)
            h = self.coarse(h)
        else:
            skips = []
            for level in range(levels):
                h = self.down[level](h)
                skips.append(h)
                h = self._pool(h, 2)
            h = self.coarse(h)
            for level in reversed(range(levels)):
                h = F.interpolate(h, scale_factor=2, mode="nearest") + skips[level]
                h = self.up[level](h)
        out = self.head(h)
        if any(pad):
            out = out[(slice(None), slice(None), *(slice(0, n) for n in shape))]
        return out
