"""A differentiable sparse SPD solve: :func:`sparse_solve`, ``x = A^{-1} b`` under torch autograd.

Forward: the package's preconditioned CG (:func:`dcdm.solvers.cg`), one column of ``b`` at
a time. Backward: one more CG solve per column, same matrix, same preconditioner (adjoint).

Adjoint
-------
For ``A x = b`` and a loss ``L(x)`` with incoming gradient ``g = dL/dx`` ::

    A^T lambda = g                                 (A symmetric: A lambda = g)
    dL/db      = lambda
    dL/dA_ij   = -lambda_i x_j                     at every stored entry (i, j) of A

summed over the columns of a batched ``b``: a sparse tensor with ``A``'s own pattern and
layout (COO or CSR), never a dense ``n x n`` matrix.

Preconditioner reuse
--------------------
``M`` (``"ic0"``, ``"mic0"``, ``"amg"``, ``"jacobi"``, ``"mg"`` for a grid operator, or a
:class:`~dcdm.solvers.Preconditioner`) is built once, in forward, on the host copy of ``A``;
every forward and adjoint column reuses that object (``A`` is symmetric, so the adjoint
system takes the same preconditioner). The adjoint solve is warm-started from the Galerkin
projection of ``lambda`` onto the span of the forward solutions: with ``W = [x_1 .. x_k]``
and ``A W = [b_1 .. b_k]`` known, ``lambda_0 = W (W^T A W)^+ W^T g`` is the best
approximation of ``lambda`` in that span in the ``A``-norm (never worse than zero), costs no
mat-vec, and is exact when ``g`` is a combination of the ``b``'s (e.g. ``L = x . b``). A
previous adjoint solution is deliberately not reused: backward stays a deterministic
function of ``(A, b, g)`` (``gradcheck`` requires bit-identical repeated backwards).

Devices and precision
---------------------
All numerics run on the host in float64: ``A``'s values are copied once to a SciPy CSR
matrix (detached), ``b`` and the incoming gradient go to NumPy at the edges (``.cpu()``),
and ``x`` and the gradients come back on the inputs' device and dtype. CUDA tensors work;
the solves run on the CPU.

Limitations
-----------
- ``A`` must be symmetric positive definite (checked: symmetric to ``SYMMETRY_RTOL`` = 1e-6
  of its largest entry, positive diagonal, and CG's ``p . A p > 0``). When ``A`` is symmetric
  only to rounding the adjoint solve runs on the exact ``A^T`` (a second host CSR copy), so
  the gradient is the one of the matrix as given, entry by entry.
- A singular ``A`` with a constant null space (all-Neumann pressure matrices) is accepted
  only without a gradient for ``A``: then ``x = A^+ b`` and ``dL/db = A^+ g`` (``b`` and
  ``g`` projected onto the range of ``A``, so a ``b`` that is consistent only to rounding,
  such as a divergence-free velocity's, solves).
- A matrix-free operator (``dcdm.problems.Grid(...).laplacian()``, a SciPy matrix or any
  object of the operator contract) gets no gradient, only ``b`` does; it is trusted to be
  symmetric (only its diagonal's sign is checked).
- ``M`` must be linear and SPD (CG's requirement, and what makes the adjoint reuse valid).
- No double backward (``once_differentiable``). ``rtol``, ``atol`` and ``maxiter`` apply
  to the forward and to the adjoint solves.
- Non-convergence raises :class:`SparseSolveError` (a ``ConvergenceError``, so a
  ``RuntimeError``) naming the pass, the column, the solver's reason and the residual; an
  indefinite ``A`` raises ``ValueError``. A NaN gradient is never returned silently.

``dcdm.training.sparse_solve`` is this function (the package's lazy export).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from dcdm.solvers import (
    PRECONDITIONERS,
    ConvergenceError,
    Preconditioner,
    Reason,
    SolveResult,
    as_operator,
    cg,
    make_preconditioner,
)
from dcdm.solvers.inputs import check_tolerances

__all__ = ["SparseSolveError", "sparse_solve"]

#: how far from symmetric a torch or SciPy ``A`` may be, relative to its largest entry: the
#: rounding of any assembly and finite-difference perturbations of single entries pass,
#: a genuinely non-symmetric matrix does not (CG needs symmetry)
SYMMETRY_RTOL = 1e-6
_FLOATS = (torch.float32, torch.float64)
_SPARSE = (torch.sparse_coo, torch.sparse_csr)


class SparseSolveError(ConvergenceError):
    """A solve of :func:`sparse_solve` did not converge: ``result`` (the failed column's
    :class:`~dcdm.solvers.SolveResult`), ``phase`` (``"forward"`` or ``"backward"``) and
    ``column`` (of ``b`` or of the incoming gradient)."""

    def __init__(self, result: SolveResult, phase: str, column: int, columns: int):
        super().__init__(result)
        self.phase, self.column = phase, column
        what = "forward solve A x = b" if phase == "forward" else (
            "backward (adjoint) solve A lambda = grad_x")
        where = f", column {column} of {columns}" if columns > 1 else ""
        tol = result.stats.get("tolerance", float("nan"))
        self.args = (
            f"sparse_solve: the {what}{where} did not converge: {result.reason.name} "
            f"({result.reason.message}); ||residual|| = {result.residual_norm:.3e} > tolerance "
            f"{tol:.3e} after {result.iterations} iterations. Raise maxiter, loosen rtol/atol "
            "or choose a stronger preconditioner M",
        )


@dataclass
class _System:
    """The host side of ``A``, shared by the forward and backward passes."""

    op: Any  # the operator the solves run on
    P: Preconditioner | None  # built once, in forward
    rtol: float
    atol: float
    maxiter: int | None
    rows: np.ndarray | None = None  # the stored entries (i, j) of a torch A, for dL/dA
    cols: np.ndarray | None = None
    op_T: Any = None  # the adjoint's operator: A^T when A is symmetric only to rounding


def sparse_solve(
    A,
    b: torch.Tensor,
    *,
    M=None,
    rtol: float = 1e-10,
    atol: float = 0.0,
    maxiter: int | None = None,
    x0: torch.Tensor | None = None,
    **options: Any,
) -> torch.Tensor:
    """Solve the SPD system ``A x = b``, differentiably in ``b`` and in ``A``'s values.

    Parameters
    ----------
    A : torch sparse tensor (COO or CSR) or operator
        Symmetric positive definite, float32 or float64, on ``b``'s device; its values may
        require grad. Or an operator (``dcdm.problems.Grid(...).laplacian()``, a SciPy
        matrix, ...; see :func:`~dcdm.solvers.as_operator`): no gradient. Never modified.
    b : torch.Tensor
        ``(n,)``, or ``(n, k)``: ``k`` right-hand sides as columns (solved one by one with
        the one preconditioner). float32 or float64, the dtype of a torch ``A``; any device.
    M : None, "auto", str or Preconditioner
        Linear SPD preconditioner, a name of ``dcdm.solvers.PRECONDITIONERS`` (``"ic0"``,
        ``"mic0"``, ``"amg"``, ``"jacobi"``, ``"mg"`` for a grid operator) or an object;
        ``"auto"`` is ``"mg"`` for grid operators and none otherwise. A name is built once
        per call (in forward) and reused by its backward pass; an already built object is
        reused as it is, so a training loop over fixed operators builds each one once.
    rtol, atol, maxiter : float, float, int or None
        Each column's solve, forward and adjoint, stops when ``||rhs - A y|| <= max(rtol
        ||rhs||, atol)`` or after ``maxiter`` iterations (default ``10 n``).
    x0 : torch.Tensor, optional
        Initial guess for the forward solve, of ``b``'s shape. Not differentiated.
    **options
        Options of the preconditioner named by ``M`` (e.g. ``nu`` for ``"mg"``).

    Returns
    -------
    torch.Tensor
        ``x``, of ``b``'s shape, dtype and device.

    Raises
    ------
    TypeError, ValueError
        Bad input, the argument named (layout, dtype, shape, device, NaN/Inf, a
        non-symmetric or indefinite ``A``, a non-linear ``M``).
    SparseSolveError
        The forward or the backward solve did not converge.

    Examples
    --------
    >>> import torch
    >>> from dcdm.training import sparse_solve
    >>> dense = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> A = dense.to_sparse().requires_grad_()
    >>> b = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    >>> x = sparse_solve(A, b, M="jacobi")
    >>> [round(v, 6) for v in x.tolist()]
    [0.090909, 0.636364]
    >>> x.sum().backward()
    >>> [round(v, 6) for v in b.grad.tolist()]
    [0.181818, 0.272727]
    >>> A.grad.to_dense().round(decimals=6).tolist()  # -lambda_i x_j at each stored (i, j)
    [[-0.016529, -0.115702], [-0.024793, -0.173554]]
    """
    _check_rhs(b)
    n = b.shape[0]
    csr = rows = cols = None
    if isinstance(A, torch.Tensor):
        A = _check_torch_matrix(A, b)
        csr, rows, cols = _host_csr(A)
    op = as_operator(csr if csr is not None else A)
    if op.shape[0] != n:
        raise ValueError(
            f"b has shape {tuple(b.shape)} but A has shape {tuple(op.shape)}; b must be "
            f"({op.shape[0]},) or ({op.shape[0]}, k)"
        )
    rtol, atol, _ = check_tolerances(rtol, atol, maxiter, n)
    op_T = op
    if csr is not None and not _check_spd_matrix(csr):
        op_T = as_operator(csr.T.tocsr())
    elif csr is None and callable(getattr(op, "diagonal", None)):  # zero rows may be legal
        _check_diagonal(np.asarray(op.diagonal()), allow_zero=True)
    if csr is not None and A.requires_grad and getattr(op, "nullspace", None) is not None:
        raise ValueError(
            "A is singular (it has a constant null space), so the gradient with respect to "
            "its values is not defined; pass A.detach() to differentiate with respect to b "
            "only (x = A^+ b)"
        )
    P = _build_preconditioner(M, op, options)
    system = _System(op, P, rtol, atol, maxiter, rows, cols, op_T)
    return _SparseSolve.apply(A if csr is not None else None, b, system, _host_guess(x0, b))


class _SparseSolve(torch.autograd.Function):
    """``x = A^{-1} b`` with the adjoint backward (no double backward)."""

    @staticmethod
    def forward(ctx, A, b, system: _System, X0):
        B = _range_part(system.op, _host_columns(b))
        X = _solve_columns(system, system.op, B, X0, "forward")
        ctx.system, ctx.B, ctx.X = system, B, X
        ctx.b_meta = (tuple(b.shape), b.dtype, b.device)
        if A is not None:
            index = (A.indices(),) if A.layout == torch.sparse_coo else (
                A.crow_indices(), A.col_indices())
            ctx.pattern = (A.layout, A.shape, A.dtype, A.device, index)
        # a copy: the output must not share memory with ctx.X, which backward reads
        return torch.from_numpy(X.reshape(b.shape)).to(device=b.device, dtype=b.dtype,
                                                       copy=True)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_x):
        system, X = ctx.system, ctx.X
        G = _host_columns(grad_x)
        if not np.all(np.isfinite(G)):
            raise ValueError(
                "sparse_solve backward: the incoming gradient (of x) contains NaN or Inf "
                "entries; the loss or a later operation produced them"
            )
        G = _range_part(system.op, G)  # x = A^+ b, so dL/db = A^+ g: g on range(A)
        Lam = _solve_columns(system, system.op_T, G, _galerkin_guess(X, ctx.B, G), "backward")
        grad_A = grad_b = None
        if ctx.needs_input_grad[1]:
            shape, dtype, device = ctx.b_meta
            grad_b = torch.from_numpy(Lam.reshape(shape)).to(device=device, dtype=dtype)
        if ctx.needs_input_grad[0]:
            values = -np.einsum("kc,kc->k", Lam[system.rows], X[system.cols])
            grad_A = _sparse_like(ctx.pattern, values)
        return grad_A, grad_b, None, None


# -- input checks ---------------------------------------------------------------------------
def _check_rhs(b) -> None:
    if not isinstance(b, torch.Tensor):
        raise TypeError(
            f"b must be a torch.Tensor, got {type(b).__name__}; for NumPy arrays use "
            "dcdm.solve (sparse_solve is the differentiable torch front end)"
        )
    if b.layout != torch.strided:
        raise TypeError(f"b must be a dense tensor, got layout {b.layout}; pass b.to_dense()")
    if b.dtype not in _FLOATS:
        raise TypeError(f"b must be float32 or float64, got {b.dtype}; cast it (b.double())")
    if b.dim() not in (1, 2) or b.shape[0] < 1:
        raise ValueError(f"b must be (n,) or (n, k) (columns), got shape {tuple(b.shape)}")
    if not bool(torch.isfinite(b.detach()).all()):
        raise ValueError("b contains NaN or Inf entries")


def _check_torch_matrix(A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Check a torch ``A`` against ``b``; a COO ``A`` comes back coalesced (differentiably:
    duplicate entries share the gradient of their sum)."""
    if A.layout == torch.strided:
        raise TypeError(
            "A is a dense torch tensor; sparse_solve takes a sparse one: pass A.to_sparse() "
            "or A.to_sparse_csr() (or a dcdm operator)"
        )
    if A.layout not in _SPARSE:
        raise TypeError(f"A has layout {A.layout}; convert it with A.to_sparse_csr()")
    if A.dim() != 2 or A.dense_dim() != 0:
        raise ValueError(f"A must be a 2-D sparse matrix of scalars, got shape {tuple(A.shape)}")
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square, got shape {tuple(A.shape)}")
    if A.dtype not in _FLOATS:
        raise TypeError(f"A must be float32 or float64, got {A.dtype}")
    if A.dtype != b.dtype:
        raise TypeError(f"b has dtype {b.dtype} but A has dtype {A.dtype}; cast b.to(A.dtype)")
    if A.device != b.device:
        raise ValueError(
            f"b is on device {b.device} but A is on device {A.device}; move b to A's device "
            "(b.to(A.device))"
        )
    return A.coalesce() if A.layout == torch.sparse_coo else A


def _host_csr(A: torch.Tensor) -> tuple[sp.csr_array, np.ndarray, np.ndarray]:
    """A float64 SciPy CSR copy of a torch ``A`` (values detached, on the host), and the
    row and column of each stored value (in ``values()`` order)."""
    n = A.shape[0]
    D = A.detach().to("cpu")
    values = D.values().to(torch.float64).numpy()
    if not np.all(np.isfinite(values)):
        raise ValueError("A contains NaN or Inf entries; fix the assembly before solving")
    if D.layout == torch.sparse_coo:
        rows, cols = D.indices().numpy()
        csr = sp.csr_array((values, (rows, cols)), shape=(n, n))
    else:
        crow, cols = D.crow_indices().numpy(), D.col_indices().numpy()
        rows = np.repeat(np.arange(n), np.diff(crow))
        csr = sp.csr_array((values, cols, crow), shape=(n, n))
    csr.sum_duplicates()
    return csr, rows.astype(np.intp), cols.astype(np.intp)


def _check_spd_matrix(csr: sp.csr_array) -> bool:
    """Cheap necessary conditions of SPD: symmetric to :data:`SYMMETRY_RTOL` of the largest
    entry, and a positive diagonal (CG finds the rest). Returns whether ``A`` is exactly
    symmetric."""
    scale = float(np.abs(csr.data).max()) if csr.nnz else 0.0
    asym = csr - csr.T
    worst = float(np.abs(asym.data).max()) if asym.nnz else 0.0
    if worst > SYMMETRY_RTOL * scale:
        raise ValueError(
            f"A is not symmetric (max |A - A^T| = {worst:.3e}, max |A| = {scale:.3e}); "
            "sparse_solve needs a symmetric positive-definite A (symmetrise: (A + A.T) / 2)"
        )
    _check_diagonal(csr.diagonal())
    return worst == 0.0


def _check_diagonal(d: np.ndarray, allow_zero: bool = False) -> None:
    bad = np.flatnonzero(~(d >= 0) if allow_zero else ~(d > 0))
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"A is not positive definite: its diagonal entry A[{i}, {i}] = {d[i]:.6g} is not "
            f"positive ({bad.size} such entries); sparse_solve needs an SPD A"
        )


def _build_preconditioner(M, op, options: dict) -> Preconditioner | None:
    """``M`` built once on ``op`` (None: no preconditioner); refuses a non-linear one."""
    if isinstance(M, str) and M.lower() == "auto":
        M = "mg" if getattr(op, "grid", None) is not None else None
    if M is None:
        if options:
            raise TypeError(
                f"sparse_solve() got unexpected keyword argument(s) {sorted(options)}; "
                "preconditioner options need M to be a preconditioner name"
            )
        return None
    record = PRECONDITIONERS.get(M.lower()) if isinstance(M, str) else None
    P = None if record is not None and not record.for_cg else make_preconditioner(
        M, op, **options)
    if P is None or not (P.is_linear and P.is_spd):
        raise ValueError(
            f"M={getattr(P, 'name', M)!r} is not a linear SPD preconditioner; sparse_solve runs "
            "CG and reuses M for the adjoint solve, which both need one (e.g. 'mg', 'ic0', "
            "'amg', 'jacobi')"
        )
    return P


def _host_guess(x0, b: torch.Tensor) -> np.ndarray | None:
    if x0 is None:
        return None
    x0 = x0 if isinstance(x0, torch.Tensor) else torch.as_tensor(np.asarray(x0, np.float64))
    if tuple(x0.shape) != tuple(b.shape):
        raise ValueError(
            f"x0 has shape {tuple(x0.shape)} but b has shape {tuple(b.shape)}; give x0 b's shape"
        )
    X0 = _host_columns(x0)
    if not np.all(np.isfinite(X0)):
        raise ValueError("x0 contains NaN or Inf entries")
    return X0


# -- the solves ------------------------------------------------------------------------------
def _host_columns(v: torch.Tensor) -> np.ndarray:
    """A private float64 host copy of ``v`` as an ``(n, k)`` array."""
    host = v.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.array(host.reshape(host.shape[0], -1), copy=True)


def _range_part(op, B: np.ndarray) -> np.ndarray:
    """The columns of ``B`` projected onto the range of a singular ``op`` (as they are if
    ``op`` has no null space): ``A^+ b`` ignores the null-space part, which rounding alone
    puts into a nearly consistent ``b`` (a divergence-free velocity's right-hand side)."""
    nullspace = getattr(op, "nullspace", None)
    if nullspace is None:
        return B
    return np.stack([nullspace.project(B[:, c]) for c in range(B.shape[1])], axis=1)


def _solve_columns(system: _System, op, B: np.ndarray, X0: np.ndarray | None,
                   phase: str) -> np.ndarray:
    """Solve ``A X = B`` column by column with the one preconditioner; raise on failure."""
    X, k = np.empty_like(B), B.shape[1]
    for c in range(k):
        guess = None if X0 is None else np.ascontiguousarray(X0[:, c])
        res = cg(op, np.ascontiguousarray(B[:, c]), guess, M=system.P,
                 rtol=system.rtol, atol=system.atol, maxiter=system.maxiter)
        if res.reason == Reason.INDEFINITE_OPERATOR:
            raise ValueError(
                f"A is not positive definite: CG found p . A p <= 0 in the {phase} solve; "
                "sparse_solve needs an SPD A"
            )
        if not res.converged:
            raise SparseSolveError(res, phase, c, k)
        X[:, c] = res.x
    return X


def _galerkin_guess(W: np.ndarray, AW: np.ndarray, G: np.ndarray) -> np.ndarray | None:
    """``W c`` with ``(W^T A W) c = W^T G``: the A-norm best approximation of ``A^{-1} G`` in
    the span of ``W``'s columns (``AW = A W`` known, so no mat-vec). Directions with a
    negligible ``W^T A W`` eigenvalue (dependent columns) are dropped. BLAS runs on one
    thread here: OpenBLAS's threads would spin on after these products against the adjoint
    CG's Numba kernels (measured: the first adjoint solve at 64^3 took 1.9x the forward's
    time with the same iteration count)."""
    with threadpool_limits(limits=1, user_api="blas"):
        S = W.T @ AW
        w, V = np.linalg.eigh((S + S.T) / 2)
        if w.size == 0 or w[-1] <= 0:
            return None
        keep = w > 1e-12 * w[-1]
        V, w = V[:, keep], w[keep]
        guess = W @ (V @ ((V.T @ (W.T @ G)) / w[:, None]))
    return guess if np.all(np.isfinite(guess)) else None


def _sparse_like(pattern, values: np.ndarray) -> torch.Tensor:
    """A sparse tensor with ``A``'s layout, pattern, dtype and device, holding ``values``."""
    layout, shape, dtype, device, index = pattern
    vals = torch.from_numpy(values).to(device=device, dtype=dtype)
    if layout == torch.sparse_coo:
        return torch.sparse_coo_tensor(index[0], vals, shape, is_coalesced=True,
                                       check_invariants=False)
    return torch.sparse_csr_tensor(index[0], index[1], vals, shape, check_invariants=False)
