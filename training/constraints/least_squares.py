"""Batched Levenberg-Marquardt with an implicit-function backward: :func:`solve_least_squares`.

The hard-constraint layers (Chalapathi, Du, Krishnapriyan, ICLR 2024, arXiv 2402.13412) find the
weights ``omega`` of ``N`` basis functions that make a PDE residual vanish at sampled points:

    omega* = argmin_omega F(omega; theta),   F = 1/2 ||r(omega; theta)||^2,

where ``theta`` are the tensors the network produced (basis values and derivatives at the
points). Here a batch of such problems (samples x experts, all with the same number of rows) is
solved together.

Forward: Levenberg-Marquardt (Nielsen's damping update). Each step solves the ``N x N`` normal
equations ``(J^T J + mu I) delta = -J^T r`` by a batched dense Cholesky factorisation (``N`` is
16-64, so a dense factorisation is the right solver; the package's sparse CG is for the large
systems of :func:`dcdm.training.sparse_solve`). ``J`` comes from ``torch.func.jacfwd``
(``N`` forward-mode products), vectorised over the batch by ``torch.func.vmap``. A problem
has converged when ``||J^T r||_inf <= tol``; it also stops (not converged) when an accepted
step no longer moves ``omega`` (rounding level); the others go on (masked) until all stop or
``maxiter``. Rejected steps only raise the damping, so a tiny step is never taken for
convergence.

Backward (implicit function theorem). At a stationary point ``g(omega*, theta) = grad_omega F =
0``; differentiating, ``H d omega* = -(d_theta g) d theta`` with ``H = d_omega g`` the exact
Hessian of ``F`` (``J^T J + sum_i r_i hess r_i``). For an incoming ``v = dL/d omega*``::

    H lambda = v                                  (N x N, one batched solve)
    dL/d theta = -(d_theta g)^T lambda            (one vector-Jacobian product)

``H`` is symmetric; it is factorised by Cholesky when positive definite (a strict minimiser)
and by LU otherwise; a singular or non-finite ``H`` raises :class:`ImplicitGradientError`,
never a silent NaN. The LM iterations themselves are not differentiated (the adjoint costs one
Hessian and one solve, whatever the number of LM steps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.func import grad, hessian, jacfwd, vjp, vmap

__all__ = ["ImplicitGradientError", "LMInfo", "levenberg_marquardt", "solve_least_squares"]

Residual = Callable[..., torch.Tensor]
#: relative step below which an accepted LM step counts as stagnation (stops, not converged)
_STALL = 1e-14
#: relative size of the rounding in 1/2 ||r||^2 (a few hundred ulps of a sum of many squares)
_ROUNDING = 256 * torch.finfo(torch.float64).eps


class ImplicitGradientError(RuntimeError):
    """The implicit-function backward cannot be formed (singular or non-finite Hessian)."""


@dataclass(frozen=True)
class LMInfo:
    """Outcome of a batched Levenberg-Marquardt solve (one entry per problem).

    Attributes
    ----------
    converged : torch.Tensor
        bool, ``(batch,)``: the stopping test was met.
    iterations : torch.Tensor
        int, ``(batch,)``: LM steps taken (accepted or not).
    objective : torch.Tensor
        ``(batch,)``: ``1/2 ||r||^2`` at the returned ``omega``.
    gradient_norm : torch.Tensor
        ``(batch,)``: ``||J^T r||_inf`` at the returned ``omega``.
    """

    converged: torch.Tensor
    iterations: torch.Tensor
    objective: torch.Tensor
    gradient_norm: torch.Tensor


def _check(omega0: torch.Tensor, terms: Sequence[torch.Tensor], tol: float, maxiter: int) -> None:
    if not isinstance(omega0, torch.Tensor) or omega0.ndim != 2:
        raise ValueError(f"omega0 must be a (batch, N) tensor, got {_describe(omega0)}")
    if not omega0.is_floating_point():
        raise TypeError(f"omega0 must be a floating-point tensor, got {omega0.dtype}")
    if not torch.isfinite(omega0).all():
        raise ValueError("omega0 contains NaN or Inf")
    for i, t in enumerate(terms):
        if not isinstance(t, torch.Tensor) or t.ndim == 0 or t.shape[0] != omega0.shape[0]:
            raise ValueError(
                f"terms[{i}] must be a tensor with the batch ({omega0.shape[0]}) as its first "
                f"dimension, got {_describe(t)}"
            )
        if not torch.isfinite(t).all():
            raise ValueError(f"terms[{i}] contains NaN or Inf")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if int(maxiter) != maxiter or maxiter < 1:
        raise ValueError(f"maxiter must be a positive integer, got {maxiter}")


def _describe(x) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__


def _objective(residual: Residual) -> Callable[..., torch.Tensor]:
    def F(omega, *terms):
        r = residual(omega, *terms)
        return 0.5 * torch.sum(r * r)

    return F


def levenberg_marquardt(
    residual: Residual,
    omega0: torch.Tensor,
    terms: Sequence[torch.Tensor] = (),
    *,
    tol: float = 1e-6,
    maxiter: int = 50,
    damping: float = 1e-3,
) -> tuple[torch.Tensor, LMInfo]:
    """Minimise ``1/2 ||residual(omega, *terms)||^2`` for a batch of problems (no gradient).

    Parameters
    ----------
    residual : callable
        ``residual(omega, *terms) -> r`` for ONE problem: ``omega`` ``(N,)``, each term without
        the batch dimension, ``r`` ``(rows,)``. Written with torch operations that
        ``torch.func.vmap`` and ``jacfwd`` support (no in-place updates, no ``.item()``).
    omega0 : torch.Tensor
        ``(batch, N)`` starting weights.
    terms : sequence of torch.Tensor
        Per-problem data, each ``(batch, ...)``.
    tol : float
        A problem has converged when ``||J^T r||_inf <= tol`` (the gradient of ``1/2
        ||r||^2``); reported per problem in ``info.converged``.
    maxiter : int
        At most this many LM steps.
    damping : float
        Initial ``mu`` relative to ``max diag(J^T J)`` (Nielsen's ``tau``).

    Returns
    -------
    omega : torch.Tensor
        ``(batch, N)``, detached.
    info : LMInfo

    Examples
    --------
    >>> import torch
    >>> def r(w, x, y):                      # fit y = w0 exp(w1 x)
    ...     return w[0] * torch.exp(w[1] * x) - y
    >>> x = torch.linspace(0, 1, 20, dtype=torch.float64)[None]
    >>> y = 2.0 * torch.exp(-1.5 * x)
    >>> w, info = levenberg_marquardt(r, torch.ones(1, 2, dtype=torch.float64), (x, y))
    >>> [round(v, 6) for v in w[0].tolist()], bool(info.converged[0])
    ([2.0, -1.5], True)
    """
    terms = tuple(terms)
    _check(omega0, terms, tol, maxiter)
    batched_r = vmap(residual)
    batched_J = vmap(jacfwd(residual, argnums=0))
    with torch.no_grad():
        omega = omega0.detach().clone()
        terms = tuple(t.detach() for t in terms)
        n = omega.shape[1]
        eye = torch.eye(n, dtype=omega.dtype, device=omega.device)
        r = batched_r(omega, *terms)
        cost = 0.5 * (r * r).sum(1)
        J = batched_J(omega, *terms)
        g = torch.einsum("bmn,bm->bn", J, r)
        JtJ = J.transpose(1, 2) @ J
        mu = damping * JtJ.diagonal(dim1=1, dim2=2).amax(1).clamp_min(torch.finfo(omega.dtype).tiny)
        nu = torch.full_like(mu, 2.0)
        stop = g.abs().amax(1) <= tol
        steps = torch.zeros(omega.shape[0], dtype=torch.long, device=omega.device)
        for _ in range(int(maxiter)):
            active = ~stop
            if not active.any():
                break
            steps += active.long()
            K, fail = torch.linalg.cholesky_ex(JtJ + mu[:, None, None] * eye)
            live = torch.nonzero(active & (fail == 0))[:, 0]
            accept = torch.zeros_like(active)
            rho = torch.zeros_like(mu)
            if live.numel():
                delta = -torch.cholesky_solve(g[live, :, None], K[live])[..., 0]
                trial = omega[live] + delta
                sub = tuple(t[live] for t in terms)
                r_new = batched_r(trial, *sub)
                J_new = batched_J(trial, *sub)
                g_new = torch.einsum("bmn,bm->bn", J_new, r_new)
                cost_new = 0.5 * (r_new * r_new).sum(1)
                gain = cost[live] - cost_new
                predicted = 0.5 * (delta * (mu[live, None] * delta - g[live])).sum(1)
                # Near the minimiser the decrease of 1/2||r||^2 drowns in its rounding; there
                # a step that keeps the cost (to rounding) and lowers ||J^T r|| is taken.
                noise = _ROUNDING * cost[live]
                flat = (predicted <= noise) & (gain.abs() <= noise) & (
                    g_new.abs().amax(1) < g[live].abs().amax(1))
                good = torch.isfinite(cost_new) & (((predicted > 0) & (gain > 0)) | flat)
                rho[live] = torch.where(flat, 1.0, gain / predicted)  # flat: a model-like step
                take = live[good]
                accept[take] = True
                omega[take], r[take], cost[take] = trial[good], r_new[good], cost_new[good]
                J[take], g[take] = J_new[good], g_new[good]
                JtJ[take] = J_new[good].transpose(1, 2) @ J_new[good]
                # stagnation: an accepted step that no longer moves omega (rounding level)
                still = delta[good].abs().amax(1) <= _STALL * (1 + trial[good].abs().amax(1))
                stop[take[still]] = True
            # Nielsen: shrink mu after a good step, grow it geometrically after a bad one
            shrink = torch.nan_to_num(torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3), nan=1.0)
            mu = torch.where(accept, mu * shrink, mu * nu)
            nu = torch.where(accept, torch.full_like(nu, 2.0), nu * 2)
            stop = stop | (g.abs().amax(1) <= tol)
    gnorm = g.abs().amax(1)
    info = LMInfo(converged=gnorm <= tol, iterations=steps, objective=cost, gradient_norm=gnorm)
    return omega, info


class _ImplicitLeastSquares(torch.autograd.Function):
    @staticmethod
    def forward(ctx, residual, options, omega0, *terms):
        omega, info = levenberg_marquardt(residual, omega0, terms, **options)
        ctx.residual = residual
        ctx.save_for_backward(omega, *terms)
        ctx.mark_non_differentiable(info.converged)
        return omega, info.converged

    @staticmethod
    def backward(ctx, v, _):
        omega, *terms = ctx.saved_tensors
        F = _objective(ctx.residual)
        need = ctx.needs_input_grad[3:]
        if not any(need):
            return (None, None, None, *(None for _ in terms))
        with torch.enable_grad():
            H = vmap(hessian(F, argnums=0))(omega, *terms)
            lam = _solve_symmetric(H, v)

            def stationarity(*t):
                return vmap(grad(F, argnums=0))(omega, *t)

            _, pullback = vjp(stationarity, *terms)
            grads = pullback(-lam)
        return (None, None, None, *(gr if nd else None for gr, nd in zip(grads, need, strict=True)))


def _solve_symmetric(H: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Solve ``H lambda = v`` per batch item: Cholesky where SPD, LU where only non-singular."""
    if not torch.isfinite(H).all():
        raise ImplicitGradientError(
            "the Hessian of 1/2 ||r||^2 at the least-squares solution is not finite; the "
            "implicit gradient is undefined (check the residual for NaN/Inf at omega*)"
        )
    H = 0.5 * (H + H.transpose(1, 2))
    K, fail = torch.linalg.cholesky_ex(H)
    lam = torch.empty_like(v)
    spd = fail == 0
    if spd.any():
        lam[spd] = torch.cholesky_solve(v[spd, :, None], K[spd])[..., 0]
    if (~spd).any():
        sol, info = torch.linalg.solve_ex(H[~spd], v[~spd])
        bad = (info != 0) | ~torch.isfinite(sol).all(1)
        if bad.any():
            which = torch.nonzero(~spd)[:, 0][bad].tolist()
            raise ImplicitGradientError(
                f"the Hessian of 1/2 ||r||^2 is singular for batch item(s) {which}: omega* is "
                "not an isolated stationary point, so the implicit gradient is undefined (add "
                "ridge rows to the residual or more sampled points)"
            )
        lam[~spd] = sol
    return lam


def solve_least_squares(
    residual: Residual,
    terms: Sequence[torch.Tensor],
    omega0: torch.Tensor,
    *,
    tol: float = 1e-6,
    maxiter: int = 50,
    damping: float = 1e-3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``omega* = argmin 1/2 ||residual(omega, *terms)||^2``, differentiable in ``terms``.

    The forward pass is :func:`levenberg_marquardt`; the backward pass is the implicit function
    theorem at ``omega*`` (module docstring): one batched ``N x N`` solve with the exact Hessian.

    Parameters
    ----------
    residual, omega0, tol, maxiter, damping
        As in :func:`levenberg_marquardt`.
    terms : sequence of torch.Tensor
        ``(batch, ...)`` each; those that require grad receive one.

    Returns
    -------
    omega : torch.Tensor
        ``(batch, N)``, differentiable with respect to ``terms``.
    converged : torch.Tensor
        bool ``(batch,)``; the implicit gradient assumes ``omega*`` is stationary, so a caller
        training through it should watch this.

    Raises
    ------
    ImplicitGradientError
        In backward, when the Hessian at ``omega*`` is singular or not finite.

    Examples
    --------
    >>> import torch
    >>> def r(w, A, y):                      # linear least squares: omega* = A^+ y
    ...     return A @ w - y
    >>> A = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]], dtype=torch.float64)
    >>> y = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    >>> w, ok = solve_least_squares(r, (A, y), torch.zeros(1, 2, dtype=torch.float64))
    >>> w.sum().backward()
    >>> torch.allclose(y.grad, torch.linalg.pinv(A[0]).sum(0, keepdim=True))
    True
    """
    options = {"tol": tol, "maxiter": maxiter, "damping": damping}
    omega, converged = _ImplicitLeastSquares.apply(residual, options, omega0, *terms)
    return omega, converged
