"""The DCDM network as a (non-linear) preconditioner for flexible CG (``M="neural"``).

This module is the one link from the solvers to the network code in
:mod:`dcdm.training` (lazily: torch loads when a network is resolved, never on import):
:func:`resolve_network` and :func:`check_network_dtype` serve :func:`dcdm.solvers.dcdm`
as well.

``apply(r) = ||r|| f(r / ||r||)``: the network sees a unit-norm residual, as in
training, and the output is scaled back so that the map is positively
homogeneous. It is not linear and not symmetric, so :func:`dcdm.solvers.cg`
refuses it; use ``method="fcg"`` (or ``method="dcdm"``, which builds its own).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from dcdm import kernels
from dcdm.kernels import arrays

from .base import Preconditioner, check_array, require_grid

__all__ = ["Neural", "check_model", "check_network_dtype", "resolve_network"]


def check_model(model) -> None:
    """``model`` must be None (the shipped weights), a shipped name or checkpoint path (a
    non-empty string or path) or a callable network; a clear error naming it otherwise."""
    if model is None or callable(model) or isinstance(model, os.PathLike):
        return
    if isinstance(model, str):
        if not model.strip():
            raise ValueError(
                "model='' names no network: pass None (the shipped weights), a shipped name "
                "('dcdm-2d', 'dcdm-3d'), a checkpoint path or a callable"
            )
        return
    raise TypeError(
        f"model must be None, a shipped name, a checkpoint path or a callable network, got "
        f"{type(model).__name__} {model!r}"
    )


def check_network_dtype(network_dtype) -> str | None:
    """``network_dtype`` validated (``None``, or a name of
    :data:`dcdm.training.inference.DTYPES`); a ``ValueError`` naming it otherwise."""
    if network_dtype is None:
        return None
    from dcdm.training.inference import check_dtype  # torch: only when asked for

    return check_dtype(network_dtype, "network_dtype")


def resolve_network(model, grid, like=None, dtype: str | None = None) -> Callable:
    """A callable ``f(r_grid) -> q_grid``: shipped weights, a checkpoint path, or a callable.

    With ``like`` a torch tensor or CuPy array, a loaded network is moved (once, here) to
    ``like``'s device, so that each call runs where the solver's vectors are. ``dtype``
    (a checked ``network_dtype``) sets the precision of a network's forward pass.
    """
    check_model(model)
    if callable(model) and not isinstance(model, str) and not hasattr(model, "state_dict"):
        net = model
        if dtype is not None and not hasattr(net, "dtype_name"):
            raise ValueError(
                f"network_dtype={dtype!r} applies to a network, but model is a plain "
                f"{type(model).__name__}: pass model=None (the shipped weights), a shipped "
                "name, a checkpoint path, a DCDMNet or a Network, or drop network_dtype"
            )
    else:  # None, a name, a path, or a torch module: torch loads here, not before
        from dcdm.training.weights import load_network

        options = {} if dtype is None else {"dtype": dtype}
        net = load_network(model, dim=grid.ndim, **options)
    if like is not None and not isinstance(like, np.ndarray) and _movable(net):
        device = arrays.torch_device(like)
        net = net.to(device) if dtype is None else net.to(device, dtype=dtype)
    elif dtype is not None:
        net = net.to(dtype=dtype)
    if hasattr(net, "warmup"):  # trace/compile for this shape now, not inside the first solve
        net.warmup(grid.shape)
    return net


def _movable(net) -> bool:
    """A loaded network (``to(device)`` and ``device``), not a plain callable."""
    return hasattr(net, "to") and hasattr(net, "device")


class Neural(Preconditioner):
    """The learned preconditioner.

    Parameters
    ----------
    model : None, str, path or callable
        As ``model`` of :func:`dcdm.solvers.dcdm`: ``None`` picks the shipped
        weights by the grid's dimensionality.
    network_dtype : {None, "float32", "bfloat16", "float16"}
        As in :func:`dcdm.solvers.dcdm`: the precision of the forward pass only.

    Examples
    --------
    >>> import dcdm
    >>> from dcdm.problems import gallery
    >>> A, b = gallery.smoke((16, 16), obstacles=1)
    >>> dcdm.solve(A, b, method="fcg", M="neural", model=lambda r: r, rtol=1e-6).converged
    True
    """

    name = "neural"
    is_linear = False
    is_spd = False
    preserves_support = False

    def __init__(self, model=None, network_dtype: str | None = None):
        super().__init__()
        check_model(model)
        self.model = model
        self.network_dtype = check_network_dtype(network_dtype)
        self.network_seconds = 0.0
        self.calls = 0

    def _build(self, A) -> None:
        grid = require_grid(A, "M='neural'", ": the network acts on the grid")
        self._grid = grid
        self._net = resolve_network(self.model, grid, dtype=self.network_dtype)
        self._shape = grid.shape
        self._fluid = grid.fluid.reshape(-1)
        self._moved = arrays.DeviceCache(with_dtype=False)

    def _network_for(self, r):
        """The network on ``r``'s device (a loaded network is moved there once)."""
        if isinstance(r, np.ndarray) or not _movable(self._net):
            return self._net
        return self._moved.get(r, lambda: self._net.to(arrays.torch_device(r)))

    def apply(self, r, out=None):
        if not isinstance(r, np.ndarray):
            check_array(r, "M='neural'")
            return self._apply_device(r, out)
        if out is None:
            out = np.empty_like(r)
        rn = math.sqrt(float(r @ r))
        if rn == 0.0:
            out[...] = 0
            return out
        t = time.perf_counter()
        q = self._net((r / rn).reshape(self._shape))
        self.network_seconds += time.perf_counter() - t
        self.calls += 1
        out[...] = np.asarray(q, dtype=r.dtype).reshape(-1) * rn
        out[~self._fluid] = 0
        return out

    def _apply_device(self, r, out):
        """:meth:`apply` in ``r``'s namespace: the network runs on ``r``'s device."""
        xp = array_namespace(r)
        if out is None:
            out = xp.empty_like(r)
        rn = math.sqrt(kernels.dot(r, r))
        if rn == 0.0:
            out[...] = 0
            return out
        net = self._network_for(r)
        t = time.perf_counter()
        q = net(xp.reshape(r / rn, self._shape))
        self.network_seconds += time.perf_counter() - t
        self.calls += 1
        fluid = xp.reshape(self._grid.kernel_arrays(r)[2], (-1,))
        q = xp.reshape(xp.asarray(q, dtype=r.dtype), (-1,)) * rn
        out[...] = xp.where(fluid, q, xp.zeros_like(q))
        return out

    @property
    def stats(self) -> dict[str, Any]:
        s = super().stats
        s.update(network_seconds=self.network_seconds, network_calls=self.calls,
                 model=getattr(self._net, "name", type(self._net).__name__),
                 network_dtype=getattr(self._net, "dtype_name", None))
        return s
