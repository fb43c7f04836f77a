"""Hessian-vector products of torch models as operators, and their spectra.

As in PyHessian (Yao et al. 2020). For a mean loss ``L = mean_i l(f(x_i; theta), y_i)``,
three symmetric operators on the selected parameters: ``"hessian"``,
``H v = d(g . v)/dtheta`` with ``g = dL/dtheta`` (double backward; Pearlmutter 1994);
``"gauss_newton"``, ``J^T H_out J v`` (``J`` the Jacobian of the outputs, ``H_out`` the
loss's Hessian in them; Schraudolph 2002; ``J v`` by the double-vjp trick); ``"fisher"``,
the empirical Fisher ``(1/N) sum_i g_i g_i^T v``, ``g_i`` the gradient of ``loss_fn`` on
sample ``i`` alone (by ``vmap(grad)``). Batches are weighted by their sizes. The model runs
in the mode it is in (``model.eval()`` first for a deterministic product with dropout): no
mode switched, no parameter written, buffers cloned for each forward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.sparse.linalg import LinearOperator

from dcdm.kernels.optional import require

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = ["KINDS", "HessianEigen", "HessianOperator", "hessian_density",
           "hessian_eigenvalues", "hessian_operator", "hessian_trace"]

#: the operators :class:`HessianOperator` offers
KINDS = ("hessian", "gauss_newton", "fisher")


def _torch():
    return require("torch", "dcdm.spectrum's Hessian operators")


def _grad(y: Tensor, xs: Any, **options: Any) -> tuple[Tensor, ...] | None:
    """``dy/dxs`` (zeros for the ``xs`` it does not use); None if it uses none."""
    if not y.requires_grad:
        return None
    return _torch().autograd.grad(y, xs, materialize_grads=True, **options)


def _dot(a: Iterable[Tensor], b: Iterable[Tensor]) -> Tensor:
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))


def _batch_size(x: Any) -> int:
    if not isinstance(x, _torch().Tensor) or x.dim() == 0:
        raise TypeError(f"inputs must be a batched torch tensor, got {type(x).__name__}")
    return int(x.shape[0])


def _select(model: nn.Module, params: Any) -> list[str]:
    torch = _torch()
    named = list(model.named_parameters())
    names = [n for n, _ in named]
    if params is None:
        if not (chosen := [n for n, p in named if p.requires_grad]):
            raise ValueError("model has no parameters (with requires_grad=True) to take a "
                             "Hessian in; name the ones wanted with params=[...]")
        return chosen
    ids, wanted = {id(p): n for n, p in named}, set()
    for item in [params] if isinstance(params, (str, torch.Tensor)) else list(params):
        item = ids.get(id(item), item) if isinstance(item, torch.Tensor) else item
        if not isinstance(item, str) or item not in names:
            what = repr(item) if isinstance(item, str) else f"a {type(item).__name__}"
            raise ValueError(f"params: {what} is not a parameter of the model; give names from "
                             f"model.named_parameters() ({names[:6]}...) or the Parameters")
        wanted.add(item)
    if not wanted:
        raise ValueError("params selects no parameters: pass None (all) or some names")
    return [n for n in names if n in wanted]


class HessianOperator:
    """The Hessian (Gauss-Newton, empirical Fisher) of a torch model's loss as an operator.

    ``shape == (P, P)``, ``dtype == float64``, ``matvec(v, out=None)`` on NumPy vectors:
    the selected parameters' flattened values concatenated in ``model.named_parameters()``
    order. Vectors move to the parameters' device and dtype at the edges only (batches to
    the device). Anything :func:`~dcdm.spectrum.lanczos` or ``aslinearoperator`` takes.

    Parameters
    ----------
    model : torch.nn.Module
        Evaluated in its current mode at its current parameters (at each product).
    loss_fn : callable
        ``loss_fn(outputs, targets) -> scalar tensor``, a *mean* over the batch
        (``reduction="mean"``); ``kind="fisher"`` calls it on one sample at a time.
    inputs, targets, data : tensor, tensor, iterable of (inputs, targets)
        One batch, or ``data=`` batches (a ``DataLoader``) read at every product.
    kind : {"hessian", "gauss_newton", "fisher"}
    params : None, or iterable of names or Parameters
        What to differentiate (default all with ``requires_grad``); the rest is fixed.

    Attributes
    ----------
    names, shapes, num_parameters, n_products : list, list, int, int
        The selected parameters in vector order, ``P``, and the products computed so far
        (each one pass over all the data).

    Examples
    --------
    A linear model with the mean squared error: ``H = (2/N) [X 1]^T [X 1]``.

    >>> import numpy as np
    >>> import torch
    >>> x, y = torch.eye(2, 3, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
    >>> H = HessianOperator(torch.nn.Linear(3, 1).double(), torch.nn.MSELoss(), x, y)
    >>> H.shape, H.names, H.shapes
    ((4, 4), ['weight', 'bias'], [(1, 3), (1,)])
    >>> H.matvec(np.array([1.0, 0.0, 0.0, 0.0])).tolist()
    [1.0, 0.0, 0.0, 1.0]
    """

    dtype = np.dtype(np.float64)
    is_symmetric = True  # by construction: a symmetry probe can be skipped

    def __init__(self, model: nn.Module, loss_fn: Callable[[Any, Any], Tensor],
                 inputs: Tensor | None = None, targets: Any = None, *,
                 data: Iterable | None = None, kind: str = "hessian",
                 params: Iterable[str | Tensor] | None = None):
        torch = _torch()
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError("loss_fn must be callable as loss_fn(outputs, targets), got "
                            f"{type(loss_fn).__name__}")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        one = inputs is not None or targets is not None
        if (data is None) != one:
            raise ValueError(("pass either" if one else "no data: pass") + " inputs and "
                             "targets (one batch) or data= (an iterable of (inputs, targets) "
                             "batches, e.g. a DataLoader)" + (", not both" if one else ""))
        if one and (inputs is None or targets is None):
            raise ValueError("inputs and targets go together: "
                             f"{'targets' if targets is None else 'inputs'} is missing")
        if data is not None and (isinstance(data, torch.Tensor) or
                                 not isinstance(data, Iterable)):
            raise TypeError("data must be an iterable of (inputs, targets) batches, got "
                            f"{type(data).__name__}; for one batch pass inputs, targets")
        if data is not None and iter(data) is data:  # one-shot: keep it for every product
            data = list(data)
        self.model, self.loss_fn, self.kind = model, loss_fn, kind
        self._data = [(inputs, targets)] if data is None else data
        self.names = _select(model, params)
        found = dict(model.named_parameters())
        self.shapes = [tuple(found[n].shape) for n in self.names]
        self._sizes = [found[n].numel() for n in self.names]
        self.num_parameters = P = int(sum(self._sizes))
        self.shape = (P, P)
        self._device = found[self.names[0]].device
        self.n_products = 0

    def _leaves(self, grad: bool = True) -> dict[str, Tensor]:
        found = dict(self.model.named_parameters())
        return {n: found[n].detach().requires_grad_(grad) for n in self.names}

    def _forward(self, p: dict[str, Tensor], x: Tensor) -> Any:
        tensors = {n: t.detach() for n, t in self.model.named_parameters()}
        tensors.update({n: b.clone() for n, b in self.model.named_buffers()})
        tensors.update(p)
        return _torch().func.functional_call(self.model, tensors, (x,))

    def _loss(self, outputs: Any, targets: Any) -> Tensor:
        loss = self.loss_fn(outputs, targets)
        if not isinstance(loss, _torch().Tensor) or loss.numel() != 1:
            got = tuple(loss.shape) if hasattr(loss, "shape") else type(loss).__name__
            raise ValueError("loss_fn must return a scalar tensor (the mean over the batch: "
                             f"reduction='mean'), got {got}")
        return loss.reshape(())

    def _batches(self) -> Iterable[tuple[Tensor, Any]]:
        torch = _torch()
        for item in self._data:
            try:
                x, y = item
            except (TypeError, ValueError):
                raise ValueError("each batch of data must be a pair (inputs, targets), got "
                                 f"{type(item).__name__}") from None
            yield (x.to(self._device) if isinstance(x, torch.Tensor) else x,
                   y.to(self._device) if isinstance(y, torch.Tensor) else y)

    def _hessian(self, v: list[Tensor], x: Tensor, y: Any) -> tuple[Tensor, ...] | None:
        p = self._leaves()
        ps = list(p.values())
        g = _grad(self._loss(self._forward(p, x), y), ps, create_graph=True)
        return None if g is None else _grad(_dot(g, v), ps)  # None: loss linear in theta

    def _gauss_newton(self, v: list[Tensor], x: Tensor, y: Any) -> tuple[Tensor, ...] | None:
        torch = _torch()
        p = self._leaves()
        ps, out = list(p.values()), self._forward(p, x)
        if not isinstance(out, torch.Tensor):
            raise TypeError("kind='gauss_newton' needs the model to return one tensor, got "
                            f"{type(out).__name__}")
        o = out.detach().requires_grad_()
        g = _grad(self._loss(o, y), o, create_graph=True)  # dl/do
        u = torch.zeros_like(out, requires_grad=True)
        Jtu = _grad(out, ps, grad_outputs=u, create_graph=True)  # linear in u
        if g is None or Jtu is None:
            return None
        (Jv,) = _grad(_dot(Jtu, v), u, retain_graph=True)
        HJv = _grad(g[0], o, grad_outputs=Jv)  # None: the loss is linear in the outputs
        return None if HJv is None else _grad(out, ps, grad_outputs=HJv[0])

    def _fisher(self, v: list[Tensor], x: Tensor, y: Any) -> list[Tensor]:
        torch = _torch()

        def sample_loss(p: dict[str, Tensor], xi: Tensor, yi: Any) -> Tensor:
            return self._loss(self._forward(p, xi.unsqueeze(0)), yi.unsqueeze(0))

        G = torch.func.vmap(torch.func.grad(sample_loss), in_dims=(None, 0, 0),
                            randomness="different")(self._leaves(False), x, y)
        b = _batch_size(x)
        s = sum(G[n].reshape(b, -1) @ a.reshape(-1) for n, a in zip(self.names, v, strict=True))
        return [torch.tensordot(s, G[n], dims=1) / b for n in self.names]

    def matvec(self, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The product with ``v`` (shape ``(P,)`` or ``(P, 1)``) as float64 NumPy;
        ``ValueError`` for a wrong length (or, at the first product, a bad ``loss_fn``)."""
        torch = _torch()
        x, P = np.asarray(v), self.num_parameters
        if x.shape not in ((P,), (P, 1)):
            raise ValueError(f"v must be a vector of length {P} (the number of selected "
                             f"parameters), got shape {x.shape}")
        found = dict(self.model.named_parameters())
        flat = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
        vs = [c.reshape(s).to(device=found[n].device, dtype=found[n].dtype)
              for c, s, n in zip(flat.split(self._sizes), self.shapes, self.names, strict=True)]
        product = getattr(self, "_" + self.kind)
        acc, total = [torch.zeros_like(a) for a in vs], 0
        with torch.enable_grad():
            for xb, yb in self._batches():
                n = _batch_size(xb)
                for a, h in zip(acc, product(vs, xb, yb) or [], strict=False):
                    a.add_(h.detach(), alpha=n)
                total += n
        if total == 0:
            raise ValueError("data yielded no samples: give at least one non-empty batch")
        self.n_products += 1
        y = torch.cat([a.reshape(-1).to(device="cpu", dtype=torch.float64) for a in acc])
        y = (y / total).numpy().reshape(x.shape)
        if out is None:
            return y
        out[...] = y
        return out

    rmatvec = matvec  # symmetric: for scipy.sparse.linalg.aslinearoperator


def hessian_operator(model: nn.Module, loss_fn: Callable[[Any, Any], Tensor],
                     inputs: Tensor | None = None, targets: Any = None, *,
                     data: Iterable | None = None, kind: str = "hessian",
                     params: Iterable[str | Tensor] | None = None) -> HessianOperator:
    """The :class:`HessianOperator` of ``model`` (same arguments).

    Examples
    --------
    >>> import torch
    >>> x, y = torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
    >>> H = hessian_operator(torch.nn.Linear(2, 1).double(), torch.nn.MSELoss(), x, y)
    >>> H.matvec(np.array([1.0, 0.0, 0.0])).tolist()  # (2/N) [X 1]^T [X 1]
    [1.0, 0.0, 1.0]
    """
    return HessianOperator(model, loss_fn, inputs, targets, data=data, kind=kind, params=params)


def _as_hessian(model: Any, loss_fn: Any, inputs: Any, targets: Any, data: Any, kind: str,
                params: Any) -> HessianOperator:
    if not isinstance(model, HessianOperator):
        return HessianOperator(model, loss_fn, inputs, targets, data=data, kind=kind,
                               params=params)
    extra = [name for name, value in (("loss_fn", loss_fn), ("inputs", inputs),
             ("targets", targets), ("data", data), ("params", params)) if value is not None]
    if extra or kind != "hessian":
        raise ValueError(f"model is already a HessianOperator: drop {extra or ['kind']}")
    return model


def _deflated(H: HessianOperator, Q: np.ndarray, shift: float) -> LinearOperator:
    """``(I - Q^T Q) (H + shift I) (I - Q^T Q)``: ``H + shift`` on the complement of the
    rows of ``Q`` (shifted so that a complement in ``H``'s null space is no zero operator,
    which a symmetry probe could not tell from rounding noise)."""

    def matvec(v: np.ndarray) -> np.ndarray:
        w = v - Q.T @ (Q @ v)
        y = H.matvec(w) + shift * w
        return y - Q.T @ (Q @ y)

    return LinearOperator(H.shape, matvec=matvec, dtype=H.dtype)


@dataclass(frozen=True)
class HessianEigen:
    """The ``k`` largest eigenvalues (``values``, descending), their Ritz residual bounds
    (``residuals``), the eigenvectors (``vectors``: ``P x k``, unit columns, or None), the
    Hessian-vector products used (``n_products``) and whether every bound met ``tol``."""

    values: np.ndarray
    residuals: np.ndarray
    vectors: np.ndarray | None
    n_products: int
    converged: bool


def hessian_eigenvalues(model: nn.Module | HessianOperator, loss_fn: Callable | None = None,
                        inputs: Tensor | None = None, targets: Any = None, k: int = 5, *,
                        data: Iterable | None = None, kind: str = "hessian",
                        params: Iterable[str | Tensor] | None = None, steps: int | None = None,
                        seed: int | None = 0, tol: float = 1e-8,
                        return_vectors: bool = False) -> HessianEigen:
    """The ``k`` largest (algebraic) eigenvalues of a model's Hessian, by Lanczos.

    Full re-orthogonalisation from a seeded Gaussian start (same seed, same result). The
    run stops once the top ``k`` residual bounds ``|beta_m W[m-1, i]|`` are at most
    ``tol * max|theta|`` (checked every 5 steps; the basis grows as it goes), or after
    ``steps`` Lanczos steps (default ``min(P, max(20 k, 300))``), then with
    ``converged=False``. A Krylov space exhausted before ``k``
    values (fewer distinct eigenvalues) is continued on its orthogonal complement;
    otherwise single-vector Lanczos finds a multiple eigenvalue once.

    Parameters
    ----------
    model : torch.nn.Module or HessianOperator
        With an operator, leave ``loss_fn``, the data, ``kind`` and ``params`` unset;
        otherwise these are as for :class:`HessianOperator`.
    k, steps, seed, tol, return_vectors
        How many (``1 <= k <= P``); see above; the start vectors'; the bounds' (relative);
        whether to return the eigenvectors too (in a :class:`HessianEigen`).

    Examples
    --------
    >>> import numpy as np
    >>> import torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Linear(6, 1).double()
    >>> x, y = torch.randn(30, 6, dtype=torch.float64), torch.randn(30, 1, dtype=torch.float64)
    >>> top = hessian_eigenvalues(model, torch.nn.functional.mse_loss, x, y, k=2)
    >>> X = np.hstack([x.numpy(), np.ones((30, 1))])
    >>> bool(np.allclose(top.values, np.linalg.eigvalsh(2 / 30 * X.T @ X)[::-1][:2]))
    True
    >>> top.converged
    True
    """
    from .lanczos import _eigh_tridiagonal, lanczos

    H = _as_hessian(model, loss_fn, inputs, targets, data, kind, params)
    P = H.num_parameters
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= P:
        raise ValueError(f"k must be an integer in 1..{P} (the number of parameters), got {k!r}")
    limit = min(P, max(20 * k, 300)) if steps is None else steps
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol!r}")
    rng, first = np.random.default_rng(seed), H.n_products
    vals, bounds, vecs, done, scale = [], [], [], np.zeros((0, P)), 0.0

    def met(ritz: tuple[np.ndarray, np.ndarray], beta_next: float, need: int) -> bool:
        theta, bound = ritz[0] - shift, np.abs(beta_next * ritz[1][-1])  # ascending
        top = max(scale, float(np.abs(theta).max()))
        return len(theta) >= need and bool(np.all(bound[-need:] <= tol * top))

    while True:
        left, need = P - done.shape[0], k - sum(len(v) for v in vals)
        shift = (scale or 1.0) if done.size else 0.0  # see _deflated
        A = _deflated(H, done, shift) if done.size else H
        v0 = rng.standard_normal(P)
        v0 -= done.T @ (done @ v0)
        # one run, its basis grown as it goes, ended by the bounds (no restart from scratch)
        basis = lanczos(A, min(int(limit), left), v0=v0, stop=lambda a, b, r, need=need: met(
            _eigh_tridiagonal(a, b), r, need))
        exhausted = basis.beta_next == 0.0  # an invariant subspace: T is exact
        theta, bound = basis.ritz()[0] - shift, basis.residual_bounds()
        scale = max(scale, float(np.abs(theta).max()))
        vals.append(theta)
        bounds.append(bound)
        vecs.append(basis.ritz_vectors() if return_vectors else None)
        if not (exhausted and len(theta) < need and basis.m < left):
            break
        done = np.vstack([done, basis.Q])
    theta, bound = np.concatenate(vals), np.concatenate(bounds)
    top = np.argsort(-theta, kind="stable")[:k]
    return HessianEigen(theta[top], bound[top],
                        np.hstack(vecs)[:, top] if return_vectors else None,
                        H.n_products - first, bool(np.all(bound[top] <= tol * scale)))


def hessian_trace(model: nn.Module | HessianOperator, loss_fn: Callable | None = None,
                  inputs: Tensor | None = None, targets: Any = None, *,
                  data: Iterable | None = None, kind: str = "hessian",
                  params: Iterable[str | Tensor] | None = None, probes: int = 99,
                  seed: int | None = 0, method: str = "hutch++") -> Any:
    """Stochastic trace of a model's Hessian from ``probes`` products: the ``TraceEstimate``
    of :func:`~dcdm.spectrum.hutchpp` (default) or :func:`~dcdm.spectrum.hutchinson`
    (``value``; ``std`` for Hutchinson). Arguments as :func:`hessian_eigenvalues`.

    Examples
    --------
    >>> import torch
    >>> x, y = torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
    >>> model, mse = torch.nn.Linear(2, 1, bias=False).double(), torch.nn.MSELoss()
    >>> round(hessian_trace(model, mse, x, y, probes=6).value, 12)  # H = I
    2.0
    """
    from .trace import hutchinson, hutchpp

    H = _as_hessian(model, loss_fn, inputs, targets, data, kind, params)
    if method == "hutch++":
        return hutchpp(H, matvecs=probes, seed=seed)
    if method == "hutchinson":
        return hutchinson(H, probes=probes, seed=seed)
    raise ValueError(f"method must be 'hutch++' or 'hutchinson', got {method!r}")


def hessian_density(model: nn.Module | HessianOperator, loss_fn: Callable | None = None,
                    inputs: Tensor | None = None, targets: Any = None, *,
                    data: Iterable | None = None, kind: str = "hessian",
                    params: Iterable[str | Tensor] | None = None, steps: int = 50,
                    probes: int = 10, seed: int | None = 0) -> Any:
    """Spectral density of a model's Hessian by :func:`~dcdm.spectrum.slq` (``probes`` runs
    of ``steps`` Lanczos steps); returns its ``SpectralDensity``. Arguments as
    :func:`hessian_eigenvalues`.

    Examples
    --------
    >>> import torch
    >>> x, y = torch.eye(2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
    >>> model, mse = torch.nn.Linear(2, 1, bias=False).double(), torch.nn.MSELoss()
    >>> round(hessian_density(model, mse, x, y, steps=2, probes=3).trace(), 12)  # H = I
    2.0
    """
    from .density import slq

    H = _as_hessian(model, loss_fn, inputs, targets, data, kind, params)
    return slq(H, steps=steps, probes=probes, seed=seed)
