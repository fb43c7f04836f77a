"""The 1-D diffusion-sorption equation as a hard constraint: :class:`SorptionConstraint`.

PDE, constants and reference solver: :mod:`dcdm.training.constraints.diffusion_sorption`. Here
the PDE is written on the network's grid: ``nt`` time levels ``t_j = j T / (nt - 1)`` (rows) by
``nx`` cell centres ``x_i = (i + 1/2) / nx`` (columns), the layout of the reference data.

Residual rows (the paper's, Chalapathi et al. 2024 / its code, with time in units of the span
``tau = t / T``, so every row is O(1)):

- PDE at a sampled interior cell: ``u_tau - T D / R(u) u_xx``; ``u_tau`` by the backward
  (BDF2) difference ``(3 u_j - 4 u_{j-1} + u_{j-2}) / (2 dtau)`` (backward Euler at ``j = 1``),
  ``u_xx`` by the central 3-point difference (so the residual is sampled at
  ``1 <= i <= nx - 2``, ``j >= 1``). The paper's code takes central differences in time; with
  an initial condition that disagrees with the boundary value at ``x = 0`` (every one here),
  the central row at ``t_1`` spans that jump and holds 99.9% of the reference solution's
  residual (39.6 of 39.7 on a 51 x 256 grid), so the loss would be minimised far from it. With
  the backward rows the field that zeroes every row (a BDF2 scheme) is within 0.8% (relative
  L2) of the reference solution, which bounds what the constrained networks can reach;
- initial condition, relative to it: ``(u(0, x_i) - u0_i) / u0_i`` at every cell;
- boundaries at every level: ``u(t, 0) - 1`` and ``u(t, 1) - D u_x(t, 1)``, the boundary
  values and slope by quadratic extrapolation from the three nearest cell centres;
- ridge rows ``ridge * omega`` (the paper's 1e-4).

``R(u)`` is evaluated at ``max(u, 0)`` (an LM trial may step to negative ``u``, where
``u^(n_f - 1)`` is undefined).
"""

from __future__ import annotations

import torch

from .diffusion_sorption import EPS, K_F, N_F, POROSITY, RHO_S, T_END, D

__all__ = ["SorptionConstraint", "grid_residual", "retardation"]

#: quadratic extrapolation from the cell centres at distance 1/2, 3/2, 5/2 (cells) to the face
_VALUE = (1.875, -1.25, 0.375)
_SLOPE = (2.0, -3.0, 1.0)  # times 1/dx, derivative towards the boundary


def retardation(u: torch.Tensor) -> torch.Tensor:
    """Freundlich retardation ``R(u)`` (torch, differentiable), at ``max(u, 0)``."""
    c = (1 - POROSITY) / POROSITY * RHO_S * K_F * N_F
    return 1 + c * (torch.clamp(u, min=0.0) + EPS) ** (N_F - 1)


def _derivatives(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(f_tau, f_xx)`` of fields ``(..., nt, nx)``; ``f_xx`` is zero in the edge columns."""
    nt, nx = f.shape[-2:]
    first = f[..., 1:2, :] - f[..., :1, :]
    bdf2 = 1.5 * f[..., 2:, :] - 2 * f[..., 1:-1, :] + 0.5 * f[..., :-2, :]
    f_tau = torch.cat([torch.zeros_like(first), first, bdf2], dim=-2) * (nt - 1)
    inner = (f[..., 2:] - 2 * f[..., 1:-1] + f[..., :-2]) * nx**2
    return f_tau, torch.nn.functional.pad(inner, (1, 1))


def _boundaries(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left value, right value and right slope of fields ``(..., nt, nx)``, each ``(..., nt)``."""
    nx = f.shape[-1]
    left = sum(c * f[..., i] for i, c in enumerate(_VALUE))
    right = sum(c * f[..., -1 - i] for i, c in enumerate(_VALUE))
    slope = sum(c * f[..., -1 - i] for i, c in enumerate(_SLOPE)) * nx
    return left, right, slope


def _pde(u, u_tau, u_xx):
    return u_tau - T_END * D / retardation(u) * u_xx


def grid_residual(u: torch.Tensor, u0: torch.Tensor, weight: float = 1.0,
                  labels: torch.Tensor | None = None) -> torch.Tensor:
    """Every residual row of fields ``u`` ``(B, nt, nx)`` on the whole grid: ``(B, rows)``.

    The rows of :class:`SorptionConstraint` (without ridge; initial and boundary rows times
    ``weight``) at every interior cell, every initial cell and every boundary level: the
    training loss is their norm.

    With ``labels`` (``(nt, nx)``, the expert of every cell), ``u`` holds the experts' own
    fields ``(B, K, nt, nx)`` and each row comes from the expert that owns its cell, its
    derivatives taken of that expert's field: the piecewise combination of the basis'
    derivative terms, as the paper's code re-weights them, so that the jump between two
    experts' fields at a block edge is not differentiated.
    """
    if labels is not None:
        B, K, nt, nx = u.shape
        rows = grid_residual(u.reshape(B * K, nt, nx), u0.repeat_interleave(K, 0), weight)
        owner = labels.to(u.device).reshape(-1)[_row_cells(nt, nx, u.device)]
        return rows.reshape(B, K, -1).gather(1, owner.expand(B, 1, -1))[:, 0]
    u_tau, u_xx = _derivatives(u)
    pde = _pde(u, u_tau, u_xx)[:, 1:, 1:-1].reshape(u.shape[0], -1)
    return torch.cat([pde, weight * _conditions(u[:, 0], _boundaries(u), u0)], dim=1)


def _row_cells(nt: int, nx: int, device) -> torch.Tensor:
    """The flat cell (``t * nx + x``) of every row of :func:`grid_residual`, in its order."""
    t = torch.arange(nt, device=device)[:, None] * nx
    x = torch.arange(nx, device=device)[None, :]
    return torch.cat([(t[1:] + x[:, 1:-1]).reshape(-1), x[0], t[:, 0], t[:, 0] + nx - 1])


def _conditions(initial, edges, u0) -> torch.Tensor:
    """Initial rows (relative to ``u0``) and the two boundary rows of each level."""
    left, right, slope = edges
    return torch.cat([(initial - u0) / u0, left - 1, right - D * slope], dim=-1)


class SorptionConstraint:
    """Diffusion-sorption rows for :class:`~dcdm.training.constraints.layer.HardConstraint`.

    Parameters
    ----------
    ridge : float
        Weight of the ridge rows ``ridge * omega`` (paper: 1e-4).
    weight : float
        Weight of the initial and boundary rows relative to the PDE rows (paper: 1).

    Notes
    -----
    ``cond`` is the initial condition ``u0`` ``(B, nx)``, positive.
    """

    def __init__(self, ridge: float = 1e-4, weight: float = 1.0):
        if not ridge >= 0:
            raise ValueError(f"ridge must be >= 0, got {ridge}")
        if not weight > 0:
            raise ValueError(f"weight must be > 0, got {weight}")
        self.ridge, self.weight = float(ridge), float(weight)

    def interior(self, shape: tuple[int, int]) -> torch.Tensor:
        nt, nx = shape
        mask = torch.zeros(nt, nx, dtype=torch.bool)
        mask[1:, 1:-1] = True
        return mask

    def terms(self, basis: torch.Tensor, cond: torch.Tensor, points: torch.Tensor
              ) -> tuple[torch.Tensor, ...]:
        """Per (sample, expert) tensors, batch ``B * K`` (sample-major), for ``points``
        ``(B, K, m)`` flat cell indices: the basis, its ``tau`` and ``xx`` derivatives at the
        points, the basis at ``t = 0``, ``u0``, and the boundary values and slope."""
        B, N, _, nx = basis.shape
        if cond.shape != (B, nx):
            raise ValueError(f"cond (the initial condition) must be ({B}, {nx}), got "
                             f"{tuple(cond.shape)}")
        K, m = points.shape[1:]
        b_tau, b_xx = _derivatives(basis)
        fields = torch.stack([basis, b_tau, b_xx], dim=1).reshape(B, 1, 3, N, -1)
        index = points[:, :, None, None, :].expand(B, K, 3, N, m)
        sampled = torch.gather(fields.expand(B, K, 3, N, fields.shape[-1]), 4, index)
        edges = torch.stack(_boundaries(basis), dim=1).transpose(2, 3)  # (B, 3, nt, N)
        ic = basis[:, :, 0, :].transpose(1, 2)

        def per_expert(t: torch.Tensor) -> torch.Tensor:  # the sample's rows for each expert
            return t[:, None].expand(B, K, *t.shape[1:]).reshape(B * K, *t.shape[1:])

        return (sampled.transpose(3, 4).reshape(B * K, 3, m, N), per_expert(ic),
                per_expert(cond), per_expert(edges))

    def residual(self, omega: torch.Tensor, sampled: torch.Tensor, ic: torch.Tensor,
                 u0: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        u, u_tau, u_xx = sampled @ omega            # (3, m)
        conditions = _conditions(ic @ omega, edges @ omega, u0)
        return torch.cat([_pde(u, u_tau, u_xx), self.weight * conditions, self.ridge * omega])
