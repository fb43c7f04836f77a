"""Physics-informed hard-constraint layers, one global (PI-HC) or a mixture of experts (PI-HC-MoE).

Chalapathi, Du, Krishnapriyan, "Scaling physics-informed hard constraints with
mixture-of-experts", ICLR 2024 (arXiv 2402.13412).

A network emits ``N`` basis functions ``b`` on a grid; the layer returns ``u = b . omega*`` where
``omega*`` makes the PDE residual vanish (in the least-squares sense) at ``m`` points sampled
without replacement in the domain, together with the initial and boundary conditions
(:func:`~dcdm.training.constraints.least_squares.solve_least_squares`: Levenberg-Marquardt
forward, implicit-function backward).

Mixture of experts: a fixed partition of the grid into ``K`` blocks (:class:`Partition`), one
set of weights ``omega_k`` per block, each from its own LM problem over ``m`` points sampled in
its block plus the *global* initial/boundary terms; the output is the piecewise combination
``u = sum_k (b . omega_k) 1_{block k}``. All ``batch x K`` problems are solved together (one
vectorised LM). ``K = 1`` is PI-HC.

A PDE plugs in through the :class:`ConstraintProblem` protocol: it turns the basis (and the
problem's conditioning data, e.g. the initial condition) into per-problem tensors, and evaluates
one problem's residual from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Protocol

import torch
from torch import nn

from .least_squares import solve_least_squares

__all__ = ["ConstraintProblem", "HardConstraint", "Partition"]


class ConstraintProblem(Protocol):
    """What a PDE provides to :class:`HardConstraint`."""

    def interior(self, shape: tuple[int, int]) -> torch.Tensor:
        """bool mask of the grid cells where the PDE residual may be sampled."""

    def terms(self, basis: torch.Tensor, cond: torch.Tensor, points: torch.Tensor
              ) -> tuple[torch.Tensor, ...]:
        """Per-problem tensors, batch ``B * K`` (sample-major), for ``basis`` ``(B, N, n0,
        n1)``, the conditioning ``cond`` ``(B, ...)`` and flat ``points`` ``(B, K, m)``."""

    def residual(self, omega: torch.Tensor, *terms: torch.Tensor) -> torch.Tensor:
        """One problem's residual vector (vmappable)."""


@dataclass(frozen=True)
class Partition:
    """A fixed uniform partition of a 2-D grid into ``blocks[0] x blocks[1]`` experts.

    Parameters
    ----------
    blocks : tuple of int
        Experts along each axis (the paper's diffusion-sorption set-up: ``(1, 4)``, four
        blocks along ``x``). Block edges are ``round(i * n / k)``.

    Examples
    --------
    >>> p = Partition((1, 2))
    >>> p.labels((2, 4)).tolist()
    [[0, 0, 1, 1], [0, 0, 1, 1]]
    """

    blocks: tuple[int, int] = (1, 1)

    def __post_init__(self):
        if len(self.blocks) != 2 or any(int(k) != k or k < 1 for k in self.blocks):
            raise ValueError(f"blocks must be two positive integers, got {self.blocks}")

    @property
    def experts(self) -> int:
        return self.blocks[0] * self.blocks[1]

    def labels(self, shape: tuple[int, int]) -> torch.Tensor:
        """The expert of every cell, ``(n0, n1)`` long tensor."""
        if any(k > n for k, n in zip(self.blocks, shape, strict=True)):
            raise ValueError(f"a partition into {self.blocks} blocks needs a grid at least that "
                             f"large, got {tuple(shape)}")
        idx = [torch.div(torch.arange(n) * k, n, rounding_mode="floor")
               for n, k in zip(shape, self.blocks, strict=True)]
        return idx[0][:, None] * self.blocks[1] + idx[1][None, :]

    def sample(self, mask: torch.Tensor, m: int, batch: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """``m`` distinct flat indices of ``mask``'s cells per expert and batch item.

        Returns a long tensor ``(batch, experts, m)``; each row is drawn without replacement
        from the cells of that expert's block where ``mask`` is true.
        """
        labels = self.labels(tuple(mask.shape)).reshape(-1)
        flat = mask.reshape(-1)
        out = torch.empty(batch, self.experts, m, dtype=torch.long)
        for k in range(self.experts):
            cells = torch.nonzero(flat & (labels == k))[:, 0]
            if cells.numel() < m:
                raise ValueError(f"points={m} exceeds the {cells.numel()} admissible cells of "
                                 f"expert {k}; sample fewer points or use fewer experts")
            for i in range(batch):
                out[i, k] = cells[torch.randperm(cells.numel(), generator=generator)[:m]]
        return out

    def combine(self, fields: torch.Tensor) -> torch.Tensor:
        """Piecewise combination: ``(batch, experts, n0, n1)`` -> ``(batch, n0, n1)``."""
        labels = self.labels(tuple(fields.shape[-2:])).to(fields.device)
        index = labels.expand(fields.shape[0], 1, *labels.shape)
        return torch.gather(fields, 1, index)[:, 0]


class HardConstraint(nn.Module):
    """``u = b . omega*``, the basis weights fitted to the PDE at sampled points (PI-HC / MoE).

    Parameters
    ----------
    problem : ConstraintProblem
        The PDE (e.g. :class:`~dcdm.training.constraints.sorption.SorptionConstraint`).
    points : int
        Sampled residual points per expert (resampled at every call).
    partition : Partition, optional
        The experts; ``None`` (one global solve, PI-HC) is ``Partition((1, 1))``.
    tol, maxiter, damping : float, int, float
        Levenberg-Marquardt settings (:func:`~dcdm.training.constraints.least_squares.
        levenberg_marquardt`).
    generator : torch.Generator, optional
        Source of the point sampling (seeded runs).

    Notes
    -----
    ``forward`` returns ``(u, info)``: ``info`` holds ``omega`` ``(B, K, N)``, ``converged``
    ``(B, K)`` (so training can watch the LM solves), the sampled ``points`` and the experts'
    own fields ``b . omega_k`` over the whole grid, ``fields`` ``(B, K, n0, n1)``.
    """

    def __init__(self, problem: ConstraintProblem, points: int, *,
                 partition: Partition | None = None, tol: float = 1e-6, maxiter: int = 50,
                 damping: float = 1e-3, generator: torch.Generator | None = None):
        super().__init__()
        if isinstance(points, bool) or not isinstance(points, Integral) or points < 1:
            raise ValueError(f"points must be a positive integer, got {points!r}")
        self.problem = problem
        self.points = int(points)
        self.partition = partition if partition is not None else Partition((1, 1))
        self.options = {"tol": tol, "maxiter": maxiter, "damping": damping}
        self.generator = generator

    def forward(self, basis: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """``(u, info)`` for ``basis`` ``(B, N, n0, n1)`` and the problem's ``cond`` (e.g. the
        initial conditions ``(B, n1)``); ``u`` is ``(B, n0, n1)`` (see the class notes)."""
        if basis.ndim != 4:
            raise ValueError(f"basis must be (batch, N, n0, n1), got {tuple(basis.shape)}")
        B, N, n0, n1 = basis.shape
        K = self.partition.experts
        mask = self.problem.interior((n0, n1))
        points = self.partition.sample(mask, self.points, B, self.generator).to(basis.device)
        # one LM problem per (sample, expert), each with its expert's points
        terms = self.problem.terms(basis, cond, points)
        omega0 = torch.ones(B * K, N, dtype=basis.dtype, device=basis.device)
        omega, converged = solve_least_squares(self.problem.residual, terms, omega0,
                                               **self.options)
        omega = omega.reshape(B, K, N)
        fields = torch.einsum("bnij,bkn->bkij", basis, omega)
        u = self.partition.combine(fields)
        return u, {"omega": omega, "converged": converged.reshape(B, K), "points": points,
                   "fields": fields}

