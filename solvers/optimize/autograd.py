"""Objectives written in torch, as the NumPy callables :func:`~dcdm.optimize.minimize` takes.

:func:`torch_objective` wraps ``f(x) -> scalar tensor``: ``fun``, ``jac`` (one backward) and
``hessp`` (the exact Hessian-vector product by double backward, Pearlmutter 1994);
:func:`torch_least_squares` wraps a residual ``r(x) -> tensor`` for ``f = ||r||^p / p`` and
adds the Gauss-Newton product ``||r||^(p-2) J^T J v`` (plus the rank-one term for
``p > 2``, as the GNS reference's "inexact Hessian": everything but ``sum r_i grad^2 r_i``),
``J v`` by forward-mode (``torch.func.jvp``) and ``J^T w`` by a vector-Jacobian product.
Torch is imported when one of these is called; vectors cross as float64 NumPy arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from dcdm.kernels.optional import require

__all__ = ["TorchObjective", "torch_least_squares", "torch_objective"]


def _torch():
    return require("torch", "dcdm.optimize's torch objectives")


@dataclass(frozen=True)
class TorchObjective:
    """``fun``, ``jac``, ``hessp`` (and ``gauss_newton_hessp`` for least squares) on NumPy
    vectors, for :func:`dcdm.optimize.minimize`."""

    fun: Callable[[np.ndarray], float]
    jac: Callable[[np.ndarray], np.ndarray]
    hessp: Callable[[np.ndarray, np.ndarray], np.ndarray]
    gauss_newton_hessp: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def _scalar(f: Callable, x: Any) -> Any:
    out = f(x)
    torch = _torch()
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise ValueError(f"f(x) must return a scalar torch tensor, got "
                         f"{type(out).__name__}{getattr(out, 'shape', '')}")
    return out.reshape(())


def torch_objective(f: Callable[[Any], Any], *, dtype: Any = None,
                    device: Any = None) -> TorchObjective:
    """Wrap a torch objective ``f(x) -> scalar`` (``x`` a 1-D tensor).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> from dcdm import optimize
    >>> obj = optimize.torch_objective(lambda x: (x ** 4).sum() / 4 + (x ** 2).sum() / 2)
    >>> obj.hessp(np.ones(3), np.array([1.0, 0.0, 0.0])).tolist()
    [4.0, 0.0, 0.0]
    """
    torch = _torch()
    dtype = torch.float64 if dtype is None else dtype

    def leaf(x: np.ndarray) -> Any:
        return torch.tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device,
                            requires_grad=True)

    def fun(x: np.ndarray) -> float:
        with torch.no_grad():
            return float(_scalar(f, leaf(x).detach()))

    def jac(x: np.ndarray) -> np.ndarray:
        t = leaf(x)
        (g,) = torch.autograd.grad(_scalar(f, t), t)
        return g.detach().cpu().numpy().astype(np.float64)

    def hessp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
        t = leaf(x)
        (g,) = torch.autograd.grad(_scalar(f, t), t, create_graph=True)
        vt = torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype, device=g.device)
        (hv,) = torch.autograd.grad(g @ vt, t, materialize_grads=True)
        return hv.detach().cpu().numpy().astype(np.float64)

    return TorchObjective(fun, jac, hessp)


def torch_least_squares(residual: Callable[[Any], Any], p: float = 2.0, *, dtype: Any = None,
                        device: Any = None) -> TorchObjective:
    """``f(x) = ||r(x)||^p / p`` for a torch residual ``r``, with its Gauss-Newton product.

    Examples
    --------
    Linear residuals: Gauss-Newton is the exact Hessian ``A^T A`` (``p = 2``).

    >>> import numpy as np
    >>> import torch
    >>> from dcdm import optimize
    >>> A = torch.tensor([[1.0, 2.0], [0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    >>> obj = optimize.torch_least_squares(lambda x: A @ x - 1.0)
    >>> v = np.array([1.0, -1.0])
    >>> bool(np.allclose(obj.gauss_newton_hessp(np.zeros(2), v), obj.hessp(np.zeros(2), v)))
    True
    """
    if not p >= 2:
        raise ValueError(f"p must be >= 2, got {p!r}")
    torch = _torch()
    dtype = torch.float64 if dtype is None else dtype

    def f(x: Any) -> Any:
        return torch.linalg.vector_norm(residual(x)) ** p / p

    base = torch_objective(f, dtype=dtype, device=device)

    def gauss_newton_hessp(x: np.ndarray, v: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)
        vt = torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype, device=device)
        r, jv = torch.func.jvp(residual, (t,), (vt,))
        norm = torch.linalg.vector_norm(r)
        w = norm ** (p - 2) * jv
        if p > 2:
            w = w + (p - 2) * norm ** (p - 4) * (r @ jv) * r
        _, vjp = torch.func.vjp(residual, t)
        (out,) = vjp(w)
        return out.detach().cpu().numpy().astype(np.float64)

    return TorchObjective(base.fun, base.jac, base.hessp, gauss_newton_hessp)
