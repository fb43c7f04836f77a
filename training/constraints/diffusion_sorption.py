"""Reference finite-volume solver and data set for 1-D diffusion-sorption (PDEBench constants).

The PDE on ``x in (0, 1)``, ``t in (0, T]``, ``T = 500`` (PDEBench's diffusion-sorption
problem, a contaminant diffusing through soil with Freundlich sorption)::

    u_t = D / R(u) * u_xx,
    R(u) = 1 + (1 - phi) / phi * rho_s * k * n_f * (max(u, 0) + eps)^(n_f - 1),
    u(t, 0) = 1,  u(t, 1) = D * u_x(t, 1),  u(0, x) = u0(x) > 0,

with ``D = 5e-4``, ``phi = 0.29``, ``rho_s = 2880``, ``k = 3.5e-4``, ``n_f = 0.874``.
Since ``n_f < 1`` the retardation ``R`` blows up like ``u^(n_f - 1)`` as ``u -> 0``;
``eps = 1e-6`` caps it (``R(0) ~ 13.3``), and negative trial states of the integrator's
Newton iterations are clipped to 0 so ``R`` stays real.

Discretisation (cell-centred finite volumes, method of lines). ``nx`` uniform cells,
``dx = 1 / nx``, centres ``x_i = (i + 1/2) dx``; ``F = u_x`` on the faces::

    du_i/dt = D / R(u_i) * (F_{i+1/2} - F_{i-1/2}) / dx,
    F_{i+1/2} = (u_{i+1} - u_i) / dx                     (interior faces),
    F_{-1/2}  = (u_0 - 1) / (dx / 2)                      (Dirichlet value at x = 0),
    F_{nx-1/2} = (u_b - u_{nx-1}) / (dx / 2),  u_b = D * (u_b - u_{nx-1}) / (dx / 2).

With ``c = 2 D / dx`` the Cauchy relation gives ``u_b = -c / (1 - c) * u_{nx-1}`` and
``D * F_{nx-1/2} = u_b``. The scheme is second order in space on smooth solutions.
Integrated in time by ``scipy.integrate.solve_ivp(method="BDF")`` with the analytic
tridiagonal Jacobian ``J = diag(D/R) L + diag(-D R'/R^2 * (L u + b))`` (a sparse matrix;
``(L u + b)_i = (F_{i+1/2} - F_{i-1/2}) / dx``, ``b`` the Dirichlet term of cell 0).

Caveat: ``u = D u_x`` at ``x = 1`` is a Robin condition of the wrong sign for the heat
equation: it admits a boundary mode ``~ sinh(x / D)`` growing like ``exp(t / (D R))``,
which no grid with ``dx > 2 D`` resolves. There the discrete relation gives ``u_b < 0``, a
stable outflow sink on the last cell (``c <= 0.26`` for ``nx <= 256``, close to
``u(1) = 0``); it strengthens as ``dx -> 2 D``, is singular at ``nx = 1000`` and unstable
beyond, so :func:`solve_fv` refuses ``nx > NX_MAX = 999``.

The random initial conditions (:func:`random_initial_conditions`) are our own choice.

Examples
--------
>>> import numpy as np
>>> u = solve_fv(np.full(32, 0.1), t_end=50.0, nt=3)
>>> u.shape, bool(np.all(u[0] == 0.1)), bool(0 < u.min() and u.max() <= 1)
((3, 32), True, True)
"""

from __future__ import annotations

import io
import json
import logging
import numbers
import os
import zipfile
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.integrate import solve_ivp

from dcdm.kernels.optional import maybe

from ..atomic import write_atomically

__all__ = [  # noqa: RUF022 (constants first, then functions)
    "D", "EPS", "K_F", "NX_MAX", "N_F", "POROSITY", "RHO_S", "T_END",
    "load_or_make_dataset", "make_dataset", "random_initial_conditions",
    "retardation", "retardation_prime", "solve_fv",
]

log = logging.getLogger(__name__)

D = 5e-4  #: effective diffusion coefficient
POROSITY = 0.29  #: porosity phi
RHO_S = 2880.0  #: bulk density rho_s
K_F = 3.5e-4  #: Freundlich parameter k
N_F = 0.874  #: Freundlich exponent n_f
EPS = 1e-6  #: added to u in R(u) so that R stays finite as u -> 0
T_END = 500.0  #: final time of the PDEBench problem
NX_MAX = 999  #: largest nx with dx > 2 D (the Cauchy boundary relation is singular at 2 D)
_COEF = (1.0 - POROSITY) / POROSITY * RHO_S * K_F * N_F
_DATASET_VERSION = 1  # bump when the scheme or the initial conditions change


def _real_array(u, name: str) -> np.ndarray:
    arr = np.asarray(u)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                 or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _positive(value, name: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return value


def retardation(u) -> np.ndarray:
    """The Freundlich retardation factor ``R(u)``.

    Parameters
    ----------
    u : array_like of float
        Concentrations; negative values are treated as 0.

    Returns
    -------
    numpy.ndarray
        ``1 + (1 - phi)/phi * rho_s * k * n_f * (max(u, 0) + eps)^(n_f - 1)``, float64,
        same shape as ``u``.

    Examples
    --------
    >>> float(retardation(1.0).round(4))
    3.1569
    """
    return _retardation(_real_array(u, "u"))


def _retardation(u: np.ndarray) -> np.ndarray:
    return 1.0 + _COEF * (np.maximum(u, 0.0) + EPS) ** (N_F - 1.0)


def retardation_prime(u) -> np.ndarray:
    """The derivative ``dR/du`` (0 where ``u < 0``, consistent with the clipping in R).

    Parameters
    ----------
    u : array_like of float
        Concentrations.

    Returns
    -------
    numpy.ndarray
        ``(1 - phi)/phi * rho_s * k * n_f * (n_f - 1) * (u + eps)^(n_f - 2)``, float64.

    Examples
    --------
    >>> float(retardation_prime(1.0).round(4))
    -0.2718
    """
    return _retardation_prime(_real_array(u, "u"))


def _retardation_prime(u: np.ndarray) -> np.ndarray:
    value = _COEF * (N_F - 1.0) * (np.maximum(u, 0.0) + EPS) ** (N_F - 2.0)
    return np.where(u < 0.0, 0.0, value)


def _operator(nx: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Diagonals of ``L`` and ``b[0]`` with ``(F_{i+1/2} - F_{i-1/2}) / dx = (L u + b)_i``."""
    dx = 1.0 / nx
    c = 2.0 * D / dx
    off = np.full(nx - 1, 1.0 / dx**2)
    diag = np.full(nx, -2.0 / dx**2)
    diag[0] = -3.0 / dx**2  # the Dirichlet face sits dx/2 away: weight 2/dx
    diag[-1] = -(1.0 + 2.0 / (1.0 - c)) / dx**2  # (u_b - u)/(dx/2) = -2u / (dx (1 - c))
    return off, diag, 2.0 / dx**2


def solve_fv(u0, *, t_end: float = T_END, nt: int = 51, rtol: float = 1e-8,
             atol: float = 1e-10, sorption: bool = True) -> np.ndarray:
    """Solve diffusion-sorption from ``u0`` by finite volumes and BDF (see the module doc).

    Parameters
    ----------
    u0 : array_like of float, shape (nx,)
        Positive cell values at ``x_i = (i + 1/2) / nx``, ``3 <= nx <= NX_MAX``.
    t_end : float
        Final time (> 0).
    nt : int
        Number of output times ``linspace(0, t_end, nt)`` (>= 2).
    rtol, atol : float
        Tolerances of ``solve_ivp`` (``rtol > 0``, ``atol >= 0``).
    sorption : bool
        ``False`` sets ``R = 1`` (linear diffusion, for tests and baselines).

    Returns
    -------
    numpy.ndarray, shape (nt, nx)
        The solution at the output times; row 0 is ``u0``.

    Raises
    ------
    RuntimeError
        If the integrator fails or returns non-finite values.

    Examples
    --------
    >>> import numpy as np
    >>> u = solve_fv(np.linspace(0.2, 0.05, 64), t_end=100.0, nt=5)
    >>> u.shape, bool(u[-1, 0] > u[0, 0])
    ((5, 64), True)
    """
    u0 = _real_array(u0, "u0")
    if u0.ndim != 1:
        raise ValueError(f"u0 must be 1-D (one value per cell), got shape {u0.shape}")
    nx = u0.shape[0]
    if not 3 <= nx <= NX_MAX:
        raise ValueError(f"u0 must have 3 <= nx <= {NX_MAX} cells (dx > 2 D keeps the Cauchy "
                         f"boundary relation stable), got nx = {nx}")
    if not np.all(np.isfinite(u0)):
        raise ValueError("u0 must be finite (it contains NaN or Inf)")
    if not np.all(u0 > 0):
        raise ValueError(f"u0 must be > 0 everywhere, got min {u0.min():.3g}")
    t_end = _positive(t_end, "t_end")
    nt = _int(nt, "nt", 2)
    rtol = _positive(rtol, "rtol")
    atol = _positive(atol, "atol", allow_zero=True)
    if not isinstance(sorption, bool):
        raise TypeError(f"sorption must be a bool, got {type(sorption).__name__}")

    off, diag, b0 = _operator(nx)
    L = sp.diags([off, diag, off], [-1, 0, 1], format="csr")
    jac_linear = (D * L).tocsc()

    def div(u: np.ndarray) -> np.ndarray:
        out = L @ u
        out[0] += b0
        return out

    def rhs(_t: float, u: np.ndarray) -> np.ndarray:
        scale = D / _retardation(u) if sorption else D
        return scale * div(u)

    def jac(_t: float, u: np.ndarray) -> sp.csc_matrix:
        if not sorption:
            return jac_linear
        R = _retardation(u)
        g = D / R
        dg = -D * _retardation_prime(u) / R**2
        # row i of diag(g) L: g_i times the row's entries
        return sp.diags([g[1:] * off, g * diag + dg * div(u), g[:-1] * off], [-1, 0, 1],
                        format="csc")

    times = np.linspace(0.0, t_end, nt)
    sol = solve_ivp(rhs, (0.0, t_end), u0, method="BDF", t_eval=times, jac=jac,
                    rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"solve_fv: the BDF integrator failed: {sol.message}")
    u = np.ascontiguousarray(np.asarray(sol.y).T)
    if u.shape != (nt, nx) or not np.all(np.isfinite(u)):
        raise RuntimeError(f"solve_fv: the integrator returned an invalid solution (shape "
                           f"{u.shape}, expected {(nt, nx)}; {np.sum(~np.isfinite(u))} "
                           "non-finite values); try smaller rtol/atol")
    u[0] = u0
    return u


def random_initial_conditions(n: int, nx: int = 256, *, rng: np.random.Generator,
                              low: float = 0.02, high: float = 0.2,
                              modes: int = 6, blend: float = 0.0) -> np.ndarray:
    """Smooth random positive fields on the cell centres, each spanning ``[low, high]``.

    Each field is ``sum_k a_k k^(-3/2) cos(pi k x + phase_k)``, ``k = 1..modes``,
    ``a_k ~ N(0, 1)``, ``phase_k ~ U(0, 2 pi)``, then mapped affinely so its minimum over
    the cells is ``low`` and its maximum ``high``. This is our choice: PDEBench's own
    generator differs. With ``blend > 0`` the field is then blended into the boundary values
    over a width ``blend``: ``u0 <- w_l + (1 - w_l) u0`` with ``w_l = exp(-x / blend)`` (so
    ``u0 -> 1`` at ``x = 0``, the Dirichlet value) and ``u0 <- (1 - w_r) u0 + w_r low`` with
    ``w_r = exp(-(1 - x) / blend)`` (small at the outflow, where the Cauchy condition drains
    the last cell): an initial condition compatible with the boundary conditions, without the
    initial corner singularity (the values then lie in ``(0, 1]``).

    Parameters
    ----------
    n : int
        Number of fields (>= 1).
    nx : int
        Cells (>= 3); values at ``x_i = (i + 1/2) / nx``.
    rng : numpy.random.Generator
        The source of randomness (deterministic given its seed).
    low, high : float
        The range, ``0 < low < high``.
    modes : int
        Number of Fourier modes (>= 2).
    blend : float
        Width of the blend into the boundary values (0: none).

    Returns
    -------
    numpy.ndarray, shape (n, nx)

    Examples
    --------
    >>> import numpy as np
    >>> u0 = random_initial_conditions(4, 32, rng=np.random.default_rng(0))
    >>> u0.shape, float(u0.min().round(3)), float(u0.max().round(3))
    ((4, 32), 0.02, 0.2)
    """
    n = _int(n, "n", 1)
    nx = _int(nx, "nx", 3)
    modes = _int(modes, "modes", 2)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__}")
    low, high = _positive(low, "low"), _positive(high, "high")
    blend = _positive(blend, "blend", allow_zero=True)
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    x = (np.arange(nx) + 0.5) / nx
    k = np.arange(1, modes + 1)
    amp = rng.standard_normal((n, modes)) * k ** -1.5
    phase = rng.uniform(0.0, 2.0 * np.pi, (n, modes))
    f = np.einsum("nk,nkx->nx", amp, np.cos(np.pi * k[None, :, None] * x + phase[..., None]))
    fmin = f.min(axis=1, keepdims=True)
    span = f.max(axis=1, keepdims=True) - fmin
    span = np.where(span > 0, span, 1.0)  # a flat field (measure zero) maps to low
    u0 = low + (high - low) * (f - fmin) / span
    if blend:
        w_left, w_right = np.exp(-x / blend), np.exp(-(1.0 - x) / blend)
        u0 = (1.0 - w_right) * (w_left + (1.0 - w_left) * u0) + w_right * low
    return u0


def make_dataset(n: int, *, nx: int = 256, nt: int = 51, seed: int = 0, blend: float = 0.0,
                 progress: bool = False) -> dict[str, np.ndarray]:
    """``n`` random initial conditions and their trajectories on ``[0, T_END]``.

    Parameters
    ----------
    n : int
        Number of trajectories (>= 1).
    nx : int
        Cells (``3 <= nx <= NX_MAX``).
    nt : int
        Output times (>= 2).
    seed : int
        Seed of ``np.random.default_rng`` for the initial conditions.
    blend : float
        Blend the initial conditions into the boundary values over this width (see
        :func:`random_initial_conditions`; 0: none).
    progress : bool
        Show a tqdm progress bar (if tqdm is installed).

    Returns
    -------
    dict
        ``"u0"`` (n, nx), ``"u"`` (n, nt, nx), ``"x"`` (nx,) cell centres, ``"t"`` (nt,);
        all float64.

    Examples
    --------
    >>> data = make_dataset(2, nx=16, nt=3)
    >>> {k: v.shape for k, v in data.items()}
    {'u0': (2, 16), 'u': (2, 3, 16), 'x': (16,), 't': (3,)}
    """
    n, nx, nt, seed = _int(n, "n", 1), _int(nx, "nx", 3), _int(nt, "nt", 2), _int(seed, "seed", 0)
    if nx > NX_MAX:
        raise ValueError(f"nx must be <= {NX_MAX} (see solve_fv), got {nx}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    u0 = random_initial_conditions(n, nx, rng=np.random.default_rng(seed), blend=blend)
    u = np.empty((n, nt, nx))
    tqdm = maybe("tqdm.auto") if progress else None  # the progress bar is a nicety
    rows = range(n) if tqdm is None else tqdm.tqdm(range(n), desc="diffusion-sorption")
    for i in rows:
        u[i] = solve_fv(u0[i], nt=nt)
    return {"u0": u0, "u": u, "x": (np.arange(nx) + 0.5) / nx, "t": np.linspace(0, T_END, nt)}


def load_or_make_dataset(path: str | os.PathLike, n: int, *, nx: int = 256, nt: int = 51,
                         seed: int = 0, blend: float = 0.0,
                         progress: bool = False) -> dict[str, np.ndarray]:
    """:func:`make_dataset`, cached in an ``.npz`` file.

    The file is reused only if it was made with the same ``n``, ``nx``, ``nt``, ``seed``,
    constants and scheme version; otherwise (or if it cannot be read) the data set is
    regenerated and the file replaced. Writes go to a temporary file in the same folder,
    then ``os.replace``: a kill never leaves a torn file at ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        The cache file (its folder is created if missing).
    n, nx, nt, seed, blend, progress
        As in :func:`make_dataset`.

    Returns
    -------
    dict
        As :func:`make_dataset`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     a = load_or_make_dataset(pathlib.Path(d) / "ds.npz", 2, nx=16, nt=3)
    ...     b = load_or_make_dataset(pathlib.Path(d) / "ds.npz", 2, nx=16, nt=3)
    >>> bool((a["u"] == b["u"]).all())
    True
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    n, nx, nt, seed = _int(n, "n", 1), _int(nx, "nx", 3), _int(nt, "nt", 2), _int(seed, "seed", 0)
    meta = np.array(json.dumps({
        "version": _DATASET_VERSION, "n": n, "nx": nx, "nt": nt, "seed": seed,
        "blend": float(blend), "D": D,
        "porosity": POROSITY, "rho_s": RHO_S, "k_f": K_F, "n_f": N_F, "eps": EPS,
        "t_end": T_END}))
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["meta"]) == str(meta):
                    return {k: f[k] for k in ("u0", "u", "x", "t")}
            log.info("%s was made with other parameters: regenerating", path)
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("cannot read %s (%s): regenerating", path, exc)
    data = make_dataset(n, nx=nx, nt=nt, seed=seed, blend=blend, progress=progress)
    buffer = io.BytesIO()
    np.savez(buffer, meta=meta, **data)
    write_atomically(path, buffer.getvalue())
    return data
